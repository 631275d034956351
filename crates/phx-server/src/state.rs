//! Application state shared through the endpoint: one value per type.
//!
//! Phoenix apps reach their repo, config and services through module names; a Rust app
//! hands them to the endpoint once ([`EndpointBuilder::state`](crate::EndpointBuilder::state))
//! and every channel reads them with [`ChannelContext::state`](crate::ChannelContext::state).
//! Values are keyed by type, like `http::Extensions`: wrap two values of one type in
//! newtypes to keep both.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Values keyed by their type, shared read-only by every socket of an endpoint.
#[derive(Clone, Default)]
pub(crate) struct State {
    values: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("values", &self.values.len())
            .finish()
    }
}

impl State {
    /// Adds (or replaces) the value of type `T`. Only while building: the map is shared
    /// once the endpoint runs.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.values).insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was given.
    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Repo(&'static str);

    #[test]
    fn values_are_found_by_type() {
        let mut state = State::default();
        state.insert(Repo("pg"));
        state.insert(42_u32);
        assert_eq!(state.get::<Repo>().map(|r| r.0), Some("pg"));
        assert_eq!(state.get::<u32>(), Some(&42));
        assert!(state.get::<String>().is_none());
        state.insert(Repo("memory"));
        assert_eq!(state.get::<Repo>().map(|r| r.0), Some("memory"));
    }
}
