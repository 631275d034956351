//! Topic → channel routes: exact topics or `prefix*` patterns, first declared wins (docs/protocol.md §3.2).

use std::fmt;
use std::sync::Arc;

use super::ErasedChannel;

/// Makes a fresh channel instance for each join.
pub(crate) type ChannelFactory = Arc<dyn Fn() -> Box<dyn ErasedChannel> + Send + Sync>;

#[derive(Clone)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

/// The channel routes of one socket.
#[derive(Clone, Default)]
pub(crate) struct Router {
    /// Each route with the pattern as written (the metrics' `route` label).
    routes: Vec<(Pattern, String, ChannelFactory)>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let patterns: Vec<String> = self
            .routes
            .iter()
            .map(|(p, _, _)| match p {
                Pattern::Exact(t) => t.clone(),
                Pattern::Prefix(t) => format!("{t}*"),
            })
            .collect();
        f.debug_struct("Router").field("routes", &patterns).finish()
    }
}

impl Router {
    pub(crate) fn add(&mut self, pattern: &str, factory: ChannelFactory) {
        let label = pattern.to_owned();
        let pattern = match pattern.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(pattern.to_owned()),
        };
        self.routes.push((pattern, label, factory));
    }

    /// The first route matching `topic`: its pattern as written, and its factory.
    pub(crate) fn route(&self, topic: &str) -> Option<(&str, &ChannelFactory)> {
        self.routes.iter().find_map(|(pattern, label, factory)| {
            let hit = match pattern {
                Pattern::Exact(t) => t == topic,
                Pattern::Prefix(p) => topic.starts_with(p.as_str()),
            };
            hit.then_some((label.as_str(), factory))
        })
    }
}
