//! File uploads (docs/chat.md, "Uploads"): what a message's attachment is, and what the
//! room channel asks of uploads. The HTTP side and the storage live beside this file:
//!
//! - `sniff`: the type from the bytes (PNG, JPEG, GIF, WebP, PDF, UTF-8 text, ZIP only);
//! - `name`: the sanitised display name and its `Content-Disposition` encoding;
//! - `thumb`: bounded image decoding and 320 × 320 PNG thumbnails;
//! - `quota`: bytes kept per user;
//! - `admission`: receiving slots per user, per address and per node, bytes in flight;
//! - `body`: receiving one body within its size, deadline and minimum rate;
//! - `signed`: short-lived signed URLs, the only way to fetch a file;
//! - `store`: files and metadata under `UPLOAD_DIR`, claims, removal;
//! - `files`: the uploads as the room channel sees them ([`Attachments`]), and the
//!   sweeper of uploads never posted;
//! - `http`: `POST /api/uploads`, `GET /uploads/<signed>` and `/uploads/<signed>/thumb`.

pub mod admission;
pub mod body;
pub mod files;
pub mod http;
pub mod name;
pub mod quota;
pub mod signed;
pub mod sniff;
pub mod store;
pub mod thumb;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use signed::Viewer;
pub use store::ClaimError;

/// One uploaded file as messages carry it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// Random id (the file's name on disk; what `new_msg` attaches).
    pub id: String,
    /// The sanitised original name, for display and `Content-Disposition` only.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Detected from the content, never from the name.
    pub content_type: String,
    /// The file's URL, signed for who it is sent to (see `signed`).
    pub url: String,
    /// The thumbnail's URL (signed likewise) for images that have one, `None` otherwise.
    pub thumb_url: Option<String>,
    /// When `url` and `thumb_url` stop working (RFC 3339 UTC); absent in what is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls_expire_at: Option<String>,
}

/// What the room channel asks of uploads: attach them to a message, give them back when
/// the message was not stored, remove them with their message, and sign their URLs for
/// each reader.
#[async_trait]
pub trait Attachments: Send + Sync + 'static {
    /// Attaches `owner`'s upload `id` to a message in `room` with `client_id` (see
    /// `store::UploadStore::claim`): the attachment, unsigned.
    async fn claim(
        &self,
        id: &str,
        owner: i64,
        room: &str,
        client_id: Option<&str>,
    ) -> Result<Attachment, ClaimError>;
    /// Undoes a claim: the message was not stored.
    async fn release(&self, id: &str, room: &str, client_id: Option<&str>);
    /// Removes the upload's files (its message was deleted).
    async fn delete(&self, id: &str);
    /// Upload `id` if it was posted in `room`, or is `viewer`'s own upload not posted
    /// yet: the attachment, unsigned (the `attachments` event).
    async fn visible_in(&self, id: &str, room: &str, owner: Option<i64>) -> Option<Attachment>;
    /// Sets `attachment`'s URLs to ones signed for `viewer`.
    fn sign(&self, attachment: &mut Attachment, viewer: &Viewer);
}
