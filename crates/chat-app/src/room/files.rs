//! Attachments in the room channel: the upload ids a `new_msg` names, claimed for the
//! message all or none and given back when it is not stored, and the `attachments`
//! event that signs fresh file URLs (docs/chat.md, "Uploads").

use phx_server::Payload;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{reason, Refused, RoomChannel, ATTACHMENTS_REFRESH_MAX};
use crate::uploads::{Attachment, ClaimError};
use crate::validate;

#[derive(Deserialize)]
struct Refresh {
    ids: Option<Value>,
}

impl RoomChannel {
    /// The upload ids of a `new_msg`: at most [`validate::ATTACHMENTS_MAX`] strings,
    /// duplicates once; only a signed-in user on a server with uploads may send any.
    pub(super) fn attachment_ids(&self, raw: Option<&Value>) -> Result<Vec<String>, Refused> {
        let ids = match raw {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(ids)) if ids.is_empty() => return Ok(Vec::new()),
            Some(Value::Array(ids)) => ids,
            Some(_) => return Err(reason("attachments must be a list of upload ids")),
        };
        if ids.len() > validate::ATTACHMENTS_MAX {
            return Err(reason(format!(
                "at most {} attachments per message",
                validate::ATTACHMENTS_MAX
            )));
        }
        if self.attachments.is_none() {
            return Err(reason("uploads are not enabled"));
        }
        // Guests cannot upload, so no upload id is theirs.
        if self.user_id.is_none() {
            return Err(reason("unknown attachment"));
        }
        let mut found: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            let Value::String(id) = id else {
                return Err(reason("attachments must be a list of upload ids"));
            };
            if !found.contains(id) {
                found.push(id.clone());
            }
        }
        Ok(found)
    }

    /// Claims every upload of `ids` for a message of this room with `client_id`: all of
    /// them, or none (those claimed before a refusal are given back).
    pub(super) async fn claim(
        &self,
        ids: &[String],
        client_id: Option<&str>,
    ) -> Result<Vec<Attachment>, Refused> {
        let (Some(files), Some(user)) = (&self.attachments, self.user_id) else {
            return Ok(Vec::new());
        };
        let mut claimed: Vec<Attachment> = Vec::with_capacity(ids.len());
        for id in ids {
            match files.claim(id, user, &self.room, client_id).await {
                Ok(attachment) => claimed.push(attachment),
                Err(refusal) => {
                    let done: Vec<String> = claimed.iter().map(|a| a.id.clone()).collect();
                    self.release(&done, client_id, &[]).await;
                    if let ClaimError::Storage = refusal {
                        return Err(reason("unavailable"));
                    }
                    return Err(reason(refusal.to_string()));
                }
            }
        }
        Ok(claimed)
    }

    /// Gives back the claims on `ids` for `client_id`, except those in `keep`.
    pub(super) async fn release(
        &self,
        ids: &[String],
        client_id: Option<&str>,
        keep: &[Attachment],
    ) {
        let Some(files) = &self.attachments else {
            return;
        };
        for id in ids.iter().filter(|id| !keep.iter().any(|a| &a.id == *id)) {
            files.release(id, &self.room, client_id).await;
        }
    }

    /// `attachments` `{"ids"}`: fresh signed attachments for the uploads among `ids`
    /// posted in this room (or this user's own not posted yet); others are left out.
    pub(super) async fn refresh(&self, p: Payload) -> Result<Value, Refused> {
        let Some(files) = &self.attachments else {
            return Err(reason("uploads are not enabled"));
        };
        let Some(Value::Array(ids)) = p.parse::<Refresh>().and_then(|r| r.ids) else {
            return Err(reason("ids must be a list of upload ids"));
        };
        if ids.len() > ATTACHMENTS_REFRESH_MAX {
            return Err(reason(format!(
                "at most {ATTACHMENTS_REFRESH_MAX} ids at once"
            )));
        }
        let mut found = Vec::new();
        for id in ids.iter().filter_map(Value::as_str) {
            if found.iter().any(|a: &Attachment| a.id == id) {
                continue;
            }
            if let Some(mut attachment) = files.visible_in(id, &self.room, self.user_id).await {
                files.sign(&mut attachment, &self.viewer);
                found.push(attachment);
            }
        }
        Ok(json!({ "attachments": found }))
    }
}
