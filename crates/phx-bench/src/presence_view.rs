//! One storm client's presence view, kept the way phoenix.js' `Presence` keeps it
//! (docs/protocol.md §6.4: metas matched by `phx_ref`, diffs queued until the first state) but
//! reduced to what convergence needs: which refs are held and how many metas each user has.
//!
//! With N clients each seeing N users, the generator parses N² presence entries on the
//! same cores as the server, so frames are read without building a `serde_json::Value`:
//! a visitor walks the presence map and hands each `(key, phx_ref)` pair over borrowed.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use dashmap::DashMap;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Every phx_ref seen by any client, numbered densely: all clients see the same refs,
/// so each client's view can be a bitset instead of a map of strings (N clients × N
/// users would otherwise be N² strings in this process).
static REFS: LazyLock<DashMap<Box<str>, u32>> = LazyLock::new(DashMap::new);
static NEXT_REF: AtomicUsize = AtomicUsize::new(0);

fn ref_index(phx_ref: &str) -> usize {
    if let Some(i) = REFS.get(phx_ref) {
        return *i as usize;
    }
    *REFS
        .entry(phx_ref.into())
        .or_insert_with(|| NEXT_REF.fetch_add(1, Ordering::Relaxed) as u32) as usize
}

/// `[join_ref, ref, topic, event, payload]` with only the event and payload kept.
#[derive(Deserialize)]
struct Header<'a>(
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] &'a RawValue,
);

#[derive(Deserialize)]
struct Diff<'a> {
    #[serde(borrow)]
    joins: &'a RawValue,
    #[serde(borrow)]
    leaves: &'a RawValue,
}

#[derive(Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    metas: Vec<Meta<'a>>,
}

#[derive(Deserialize)]
struct Meta<'a> {
    #[serde(borrow)]
    phx_ref: Cow<'a, str>,
}

/// Walks a presence map `{key: {"metas": [{"phx_ref": r, …}, …], …}, …}` and calls the
/// closure with (user number, ref index) for every meta; keys that are not `u<number>`
/// (not ours) come as `usize::MAX`.
struct Metas<'f, F>(&'f mut F);

impl<'de, F: FnMut(usize, usize)> DeserializeSeed<'de> for Metas<'_, F> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, F: FnMut(usize, usize)> Visitor<'de> for Metas<'_, F> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a presence map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            let user = key
                .strip_prefix('u')
                .and_then(|n| n.parse().ok())
                .unwrap_or(usize::MAX);
            let entry: Entry<'de> = map.next_value()?;
            for meta in entry.metas {
                (self.0)(user, ref_index(&meta.phx_ref));
            }
        }
        Ok(())
    }
}

fn each_meta(map: &RawValue, mut f: impl FnMut(usize, usize)) {
    let mut de = serde_json::Deserializer::from_str(map.get());
    // A malformed map counts as nothing: the view then never converges, which the
    // storm reports.
    let _ = Metas(&mut f).deserialize(&mut de);
}

/// One client's view.
#[derive(Default)]
pub struct View {
    held: Vec<u64>,
    metas_per_user: Vec<u16>,
    users: usize,
    extra_metas: usize,
    /// Diffs that came before the first `presence_state` (raw frames, parsed again).
    pending: Vec<Vec<u8>>,
    has_state: bool,
}

impl View {
    fn join(&mut self, user: usize, r: usize) {
        if user == usize::MAX {
            return;
        }
        let (word, bit) = (r / 64, 1u64 << (r % 64));
        if self.held.len() <= word {
            self.held.resize(word + 1, 0);
        }
        if self.held[word] & bit != 0 {
            return; // the same meta again: idempotent, as in phoenix.js
        }
        self.held[word] |= bit;
        if self.metas_per_user.len() <= user {
            self.metas_per_user.resize(user + 1, 0);
        }
        let count = &mut self.metas_per_user[user];
        // u16 keeps N views of N users small; 65 535 metas for one user is not a
        // converged view anyway.
        *count = count.saturating_add(1);
        if *count == 1 {
            self.users += 1;
        } else {
            self.extra_metas += 1;
        }
    }

    fn leave(&mut self, user: usize, r: usize) {
        let (word, bit) = (r / 64, 1u64 << (r % 64));
        let Some(w) = self.held.get_mut(word) else {
            return; // unknown meta: ignored, as in phoenix.js
        };
        let Some(count) = self.metas_per_user.get_mut(user) else {
            return;
        };
        if *w & bit == 0 || *count == 0 {
            return;
        }
        *w &= !bit;
        *count -= 1;
        if *count == 0 {
            self.users -= 1;
        } else {
            self.extra_metas -= 1;
        }
    }

    fn apply_diff(&mut self, payload: &RawValue) {
        let Ok(diff) = serde_json::from_str::<Diff<'_>>(payload.get()) else {
            return;
        };
        // phoenix.js' syncDiff applies the joins, then the leaves.
        each_meta(diff.joins, |u, r| self.join(u, r));
        each_meta(diff.leaves, |u, r| self.leave(u, r));
    }

    /// Applies one text frame if it is a `presence_state` or `presence_diff`.
    pub fn handle(&mut self, frame: &[u8]) {
        let Ok(Header(_, _, _, event, payload)) = serde_json::from_slice::<Header<'_>>(frame)
        else {
            return;
        };
        match &*event {
            "presence_state" => {
                // A fresh view per connection, so syncState against the old state comes
                // to the same thing as starting over from this one.
                let pending = std::mem::take(&mut self.pending);
                *self = Self {
                    has_state: true,
                    ..Self::default()
                };
                each_meta(payload, |u, r| self.join(u, r));
                for raw in pending {
                    if let Ok(Header(_, _, _, _, p)) = serde_json::from_slice::<Header<'_>>(&raw) {
                        self.apply_diff(p);
                    }
                }
            }
            "presence_diff" if self.has_state => self.apply_diff(payload),
            "presence_diff" => self.pending.push(frame.to_vec()),
            _ => {}
        }
    }

    /// Every one of the `n` users is present, each with exactly one meta.
    pub fn converged(&self, n: usize) -> bool {
        self.users == n && self.extra_metas == 0
    }
}

#[cfg(test)]
mod tests {
    use super::View;

    fn diff(joins: &str, leaves: &str) -> Vec<u8> {
        format!(
            r#"[null,null,"presence:t","presence_diff",{{"joins":{{{joins}}},"leaves":{{{leaves}}}}}]"#
        )
        .into_bytes()
    }

    #[test]
    fn diffs_before_the_state_are_applied_after_it() {
        let mut v = View::default();
        v.handle(&diff(r#""u1":{"metas":[{"phx_ref":"vA"}]}"#, ""));
        assert!(!v.converged(2));
        v.handle(
            br#"["1",null,"presence:t","presence_state",{"u0":{"metas":[{"phx_ref":"vB","x":1}]}}]"#,
        );
        assert!(v.converged(2));
    }

    #[test]
    fn joins_are_idempotent_and_leaves_match_by_ref() {
        let mut v = View::default();
        v.handle(br#"["1",null,"presence:t","presence_state",{}]"#);
        let join = diff(r#""u0":{"metas":[{"phx_ref":"vC"}]}"#, "");
        v.handle(&join);
        v.handle(&join);
        assert!(v.converged(1));
        // A second meta for the same user: not converged (one meta per user expected).
        v.handle(&diff(r#""u0":{"metas":[{"phx_ref":"vD"}]}"#, ""));
        assert!(!v.converged(1));
        // Leaves of unknown refs or users change nothing; the known one is removed.
        v.handle(&diff("", r#""u0":{"metas":[{"phx_ref":"nope"}]}"#));
        v.handle(&diff("", r#""u9":{"metas":[{"phx_ref":"vD"}]}"#));
        assert!(!v.converged(1));
        v.handle(&diff("", r#""u0":{"metas":[{"phx_ref":"vD"}]}"#));
        assert!(v.converged(1));
    }

    #[test]
    fn malformed_frames_are_ignored() {
        let mut v = View::default();
        for junk in [&b"[]"[..], b"{", b"[1,2,3,\"presence_diff\",{\"joins\":5}]"] {
            v.handle(junk);
        }
        assert!(v.converged(0));
    }
}
