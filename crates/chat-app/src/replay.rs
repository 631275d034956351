//! What a join reply brings (docs/chat.md, "Join" and "Changes while away"): the recent
//! messages, or what a rejoining page missed since `after_id`, plus the messages it holds
//! that changed since `after_seq`, and the room's change sequence now.

use serde::Serialize;

use crate::store::{Store, StoreError, StoredMessage};
use crate::validate::{CHANGES_MAX, RECENT_ON_JOIN, REPLAY_MAX};

/// The history part of a join reply.
#[derive(Debug, Serialize)]
pub struct Replay {
    /// Recent top-level messages, or every message after `after_id`.
    pub messages: Vec<StoredMessage>,
    /// More than [`REPLAY_MAX`] were missed: `messages` are the recent ones instead.
    pub gap: bool,
    /// Messages up to `after_id` changed after `after_seq`, in change order.
    pub changed: Vec<StoredMessage>,
    /// More than [`CHANGES_MAX`] changed: the page reloads what it shows.
    pub refetch: bool,
    /// The room's change sequence, read before everything else here: whatever is
    /// changed later comes as a broadcast or in the next rejoin's `changed`.
    pub seq: i64,
}

/// The history part of the join reply of `room`.
pub async fn replay(
    store: &dyn Store,
    room: &str,
    after_id: Option<i64>,
    after_seq: Option<i64>,
) -> Result<Replay, StoreError> {
    let seq = store.seq(room).await?;
    if let Some(after_id) = after_id {
        let missed = store.after(room, after_id, REPLAY_MAX + 1).await?;
        if missed.len() <= REPLAY_MAX as usize {
            let (changed, refetch) = match after_seq {
                Some(after_seq) => {
                    let changed = store
                        .changed(room, after_seq, after_id, CHANGES_MAX + 1)
                        .await?;
                    if changed.len() > CHANGES_MAX as usize {
                        (Vec::new(), true)
                    } else {
                        (changed, false)
                    }
                }
                None => (Vec::new(), false),
            };
            return Ok(Replay {
                messages: missed,
                gap: false,
                changed,
                refetch,
                seq,
            });
        }
    }
    Ok(Replay {
        messages: store.recent(room, RECENT_ON_JOIN).await?,
        // The page replaces what it shows: no changes to bring.
        gap: after_id.is_some(),
        changed: Vec::new(),
        refetch: false,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, MemoryStore};

    #[tokio::test]
    async fn a_rejoin_gets_what_it_missed_and_what_changed() {
        let store = MemoryStore::new();
        let first = store.insert("r", "u", "one").await.unwrap();
        let empty = replay(&store, "r", None, None).await.unwrap();
        assert_eq!((empty.messages.len(), empty.seq), (1, first.id));
        let edit = Change::Edit {
            body: "one, edited".into(),
            mentions: vec![],
        };
        let edited = store
            .change("r", first.id, "u", edit)
            .await
            .unwrap()
            .unwrap();
        let second = store.insert("r", "u", "two").await.unwrap();
        let back = replay(&store, "r", Some(first.id), Some(first.id))
            .await
            .unwrap();
        assert_eq!(back.messages, vec![second.clone()]);
        assert_eq!(back.changed, vec![edited.clone()]);
        assert!(!back.refetch && !back.gap);
        assert_eq!(back.seq, second.id.max(edited.seq));
        // Without after_seq: no changes asked for.
        let old_page = replay(&store, "r", Some(first.id), None).await.unwrap();
        assert!(old_page.changed.is_empty());
    }
}
