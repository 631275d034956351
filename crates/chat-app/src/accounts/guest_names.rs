//! A guest name is held by one guest at a time in a room (docs/chat.md, "Guest
//! names").
//!
//! Why: two guests present in a room under one name could not be told apart by name,
//! and a page deciding "mine" by name took the other's messages for its own. Author ids
//! fix the page; this keeps the names in a room's timeline and presence distinct.
//! Per room, not per server: a name is what a room shows, and a common first name
//! should not be locked out of every room by one guest somewhere else.
//!
//! [`GuestNames`] is this node's table: (room, folded name) → the guest (author id)
//! holding it and how many of its channels hold it. A name is held while its guest has
//! the room joined here, and for [`GuestNames::hold`] after its last channel there ends
//! if the guest connected with a `guest_key` (same key, same guest id: a reconnect or a
//! reload gets its name back; a guest without a key gets a new id per connection, so
//! holding its name longer would only lock it out). Exact on one node. Other nodes'
//! guests are seen through the room's presence (the room channel reads it in a
//! cluster), as far as presence has replicated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::names;

/// Default [`GuestNames::hold`].
pub const HOLD: Duration = Duration::from_secs(120);
/// Released names kept (for their hold) at most; past it they are forgotten, oldest
/// first. Names in use are bounded by the joined channels themselves.
pub const MAX_RELEASED: usize = 65_536;

struct Holder {
    guest_id: String,
    /// Room channels of this guest joined under the name, on this node.
    channels: usize,
    /// Connected with a `guest_key` (a stable id): the name outlives its channels.
    keyed: bool,
    /// When its last channel ended.
    released: Option<Instant>,
}

/// The guest names held on this node.
pub struct GuestNames {
    /// (room, folded name) → its holder.
    held: Mutex<HashMap<(String, String), Holder>>,
    hold: Duration,
    clustered: bool,
}

impl std::fmt::Debug for GuestNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestNames")
            .field("held", &self.len())
            .field("hold", &self.hold)
            .field("clustered", &self.clustered)
            .finish()
    }
}

/// A held name: released (its channel count lowered) when dropped, so a channel that
/// ends in any way gives its name back.
#[derive(Debug)]
pub struct HeldName {
    names: Arc<GuestNames>,
    key: (String, String),
    guest_id: String,
}

impl Drop for HeldName {
    fn drop(&mut self) {
        self.names
            .release(&self.key, &self.guest_id, Instant::now());
    }
}

impl GuestNames {
    /// A table whose released names stay held for `hold` (keyed guests).
    pub fn new(hold: Duration) -> Self {
        Self {
            held: Mutex::new(HashMap::new()),
            hold,
            clustered: false,
        }
    }

    /// On a node of a cluster: joins also read the room's presence for other nodes'
    /// guests (see the module docs).
    pub fn in_cluster(mut self, clustered: bool) -> Self {
        self.clustered = clustered;
        self
    }

    /// Whether joins must also read the room's presence.
    pub fn clustered(&self) -> bool {
        self.clustered
    }

    /// How long a keyed guest's name stays theirs after their last channel ended.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// Names in the table (held or within their hold).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Holder>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `name` in `room` for guest `guest_id` (`keyed`: it came from a
    /// `guest_key`) at `now`, unless another guest holds it there: `None` then.
    pub fn claim(
        self: &Arc<Self>,
        room: &str,
        name: &str,
        guest_id: &str,
        keyed: bool,
        now: Instant,
    ) -> Option<HeldName> {
        let key = (room.to_owned(), names::fold(name));
        let mut held = self.lock();
        if let Some(holder) = held.get_mut(&key) {
            if holder.guest_id == guest_id {
                holder.channels += 1;
                holder.released = None;
                holder.keyed |= keyed;
                return Some(self.held_name(key, guest_id));
            }
            let kept = holder.channels > 0
                || (holder.keyed
                    && holder
                        .released
                        .is_some_and(|at| now.saturating_duration_since(at) < self.hold));
            if kept {
                return None;
            }
        }
        if held.len() >= MAX_RELEASED && !held.contains_key(&key) {
            self.forget_released(&mut held, now);
        }
        held.insert(
            key.clone(),
            Holder {
                guest_id: guest_id.to_owned(),
                channels: 1,
                keyed,
                released: None,
            },
        );
        Some(self.held_name(key, guest_id))
    }

    fn held_name(self: &Arc<Self>, key: (String, String), guest_id: &str) -> HeldName {
        HeldName {
            names: self.clone(),
            key,
            guest_id: guest_id.to_owned(),
        }
    }

    fn release(&self, key: &(String, String), guest_id: &str, now: Instant) {
        let mut held = self.lock();
        let Some(holder) = held.get_mut(key) else {
            return;
        };
        if holder.guest_id != guest_id {
            return; // taken over after its hold: not ours to release
        }
        holder.channels = holder.channels.saturating_sub(1);
        if holder.channels == 0 {
            if holder.keyed && !self.hold.is_zero() {
                holder.released = Some(now);
            } else {
                held.remove(key);
            }
        }
    }

    /// Drops released names past their hold; if the table is still at
    /// [`MAX_RELEASED`], every released name, oldest first, down to half of it.
    fn forget_released(&self, held: &mut HashMap<(String, String), Holder>, now: Instant) {
        held.retain(|_, h| {
            h.channels > 0
                || h.released
                    .is_some_and(|at| now.saturating_duration_since(at) < self.hold)
        });
        if held.len() < MAX_RELEASED {
            return;
        }
        let mut released: Vec<(Instant, (String, String))> = held
            .iter()
            .filter_map(|(key, h)| h.released.map(|at| (at, key.clone())))
            .collect();
        released.sort();
        let excess = held.len().saturating_sub(MAX_RELEASED / 2);
        for (_, key) in released.into_iter().take(excess) {
            held.remove(&key);
        }
        tracing::warn!(
            held = held.len(),
            "guest names: {MAX_RELEASED} names held, released names forgotten early"
        );
    }
}

/// Whether a room's presence list (`{key: {"metas": [{"username", …}]}}`) has a guest
/// other than `me` (their presence key) under a name that folds like `name`: another
/// node's guest, in a cluster.
pub fn present_elsewhere(presence: &serde_json::Value, me: &str, name: &str) -> bool {
    let fold = names::fold(name);
    presence.as_object().is_some_and(|entries| {
        entries
            .iter()
            .filter(|(key, _)| key.starts_with("guest:") && key.as_str() != me)
            .flat_map(|(_, entry)| entry["metas"].as_array().into_iter().flatten())
            .filter_map(|meta| meta["username"].as_str())
            .any(|other| names::fold(other) == fold)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_name_is_one_guests_in_a_room_under_look_alikes_too() {
        let names = Arc::new(GuestNames::new(HOLD));
        let t0 = Instant::now();
        let zed = names.claim("lobby", "zed", "a", true, t0).unwrap();
        let again = names.claim("lobby", "Zed", "a", true, t0).unwrap();
        assert!(names.claim("lobby", "zed", "b", true, t0).is_none());
        assert!(names.claim("lobby", "ＺＥＤ", "b", false, t0).is_none());
        // Another room: another name table.
        let elsewhere = names.claim("other", "zed", "b", true, t0).unwrap();
        drop(zed);
        assert!(
            names.claim("lobby", "zed", "b", true, t0).is_none(),
            "one channel left"
        );
        drop(again);
        // Keyed: held for HOLD after the last channel, then free.
        assert!(names.claim("lobby", "zed", "b", true, t0 + SEC).is_none());
        let back = names
            .claim("lobby", "zed", "a", true, t0 + 2 * SEC)
            .unwrap();
        drop(back);
        let late = t0 + 2 * SEC + HOLD;
        let bea = names.claim("lobby", "zed", "b", false, late).unwrap();
        // Not keyed: free as soon as the channel ends.
        drop(bea);
        drop(elsewhere);
        assert_eq!(names.len(), 1, "b's keyed name in other, within its hold");
        names.claim("lobby", "zed", "c", false, late).unwrap();
    }

    #[test]
    fn a_release_by_the_former_holder_does_not_free_the_new_ones_name() {
        let names = Arc::new(GuestNames::new(SEC));
        let t0 = Instant::now();
        let old = names.claim("r", "amy", "a", true, t0).unwrap();
        // A stale guard: its holder lost the name after the hold (cannot happen while the
        // guard lives, but the release must check whose name it is).
        let key = ("r".to_owned(), names::fold("amy"));
        names.lock().get_mut(&key).unwrap().channels = 0;
        names.lock().get_mut(&key).unwrap().released = Some(t0);
        let _new = names.claim("r", "amy", "b", false, t0 + 2 * SEC).unwrap();
        drop(old);
        assert!(names.claim("r", "amy", "c", false, t0 + 3 * SEC).is_none());
    }

    #[test]
    fn another_nodes_guest_is_seen_in_presence() {
        let presence = serde_json::json!({
            "guest:a": {"metas": [{"username": "Zed", "guest": true}]},
            "user:7": {"metas": [{"username": "ann", "guest": false}]},
        });
        assert!(present_elsewhere(&presence, "guest:b", "zed"));
        assert!(!present_elsewhere(&presence, "guest:a", "zed"), "myself");
        assert!(!present_elsewhere(&presence, "guest:b", "amy"));
        assert!(
            !present_elsewhere(&presence, "guest:b", "ann"),
            "users: the store's check"
        );
        assert!(!present_elsewhere(&serde_json::json!([]), "guest:b", "zed"));
    }

    #[test]
    fn released_names_are_bounded() {
        let names = Arc::new(GuestNames::new(HOLD));
        let t0 = Instant::now();
        for i in 0..MAX_RELEASED + 10 {
            drop(names.claim("r", &format!("g{i}"), &format!("id{i}"), true, t0));
        }
        assert!(names.len() <= MAX_RELEASED, "{}", names.len());
        let live = names.claim("r", "live", "x", true, t0).unwrap();
        assert!(names.claim("r", "live", "y", true, t0).is_none());
        drop(live);
    }
}
