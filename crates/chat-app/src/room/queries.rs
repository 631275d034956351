//! Reading more than the join brought: a thread's replies (`thread`) and `search`.

use std::time::Instant;

use phx_server::Payload;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{reason, store_failed, Refused, RoomChannel};
use crate::validate;

#[derive(Deserialize)]
struct Thread {
    parent_id: Option<Value>,
    before_id: Option<Value>,
    limit: Option<Value>,
}

impl RoomChannel {
    /// `thread`: a top-level message and a page of its replies, oldest first.
    pub(super) async fn thread(&self, p: Payload) -> Result<Value, Refused> {
        let Some(thread) = p.parse::<Thread>() else {
            return Err(reason("thread takes an object"));
        };
        let parent_id =
            validate::message_id(thread.parent_id.as_ref(), "parent_id").map_err(reason)?;
        let before_id = validate::before_id(thread.before_id.as_ref()).map_err(reason)?;
        let limit = validate::history_limit(thread.limit.as_ref()).map_err(reason)?;
        let failed = |e| store_failed(e, "thread", &self.room);
        let parent = self
            .store
            .message(&self.room, parent_id)
            .await
            .map_err(failed)?
            .filter(|m| m.parent_id.is_none())
            .ok_or_else(|| reason("not found"))?;
        let replies = self
            .store
            .replies(&self.room, parent_id, before_id, limit)
            .await
            .map_err(failed)?;
        let mut parent = parent;
        self.sign(&mut parent);
        Ok(json!({ "parent": parent, "messages": self.signed(replies) }))
    }

    /// `search`: this room's messages matching a query, newest first (`crate::search`).
    pub(super) async fn search(&self, p: Payload) -> Result<Value, Refused> {
        let request = p
            .parse::<Value>()
            .ok_or_else(|| reason("search takes an object"))
            .and_then(|v| crate::search::parse(&v).map_err(reason))?;
        if !self
            .searches
            .try_acquire(self.search_key.as_str(), Instant::now())
        {
            return Err(reason(crate::search::too_many()));
        }
        let found = self
            .store
            .search(&self.room, &request.query, request.before_id, request.limit)
            .await
            .map_err(|e| store_failed(e, "search", &self.room))?;
        Ok(json!({ "messages": self.signed(found) }))
    }
}
