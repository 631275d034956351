//! File uploads (docs/chat.md, "Uploads"): what a message's attachment is, and how the
//! room channel looks one up. The HTTP side and the storage live beside this file:
//!
//! - `sniff`: the type from the bytes (PNG, JPEG, GIF, WebP, PDF, UTF-8 text, ZIP only);
//! - `name`: the sanitised display name and its `Content-Disposition` encoding;
//! - `thumb`: bounded image decoding and 320 × 320 PNG thumbnails;
//! - `quota`: bytes kept per user;
//! - `store`: files and metadata under `UPLOAD_DIR`, the [`AttachmentLookup`];
//! - `http`: `POST /api/uploads`, `GET /uploads/<id>` and `/uploads/<id>/thumb`.

pub mod http;
pub mod name;
pub mod quota;
pub mod sniff;
pub mod store;
pub mod thumb;

use serde::{Deserialize, Serialize};

/// One uploaded file as messages carry it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// Random id (the file's name on disk and in its URL).
    pub id: String,
    /// The sanitised original name, for display and `Content-Disposition` only.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Detected from the content, never from the name.
    pub content_type: String,
    /// `/uploads/<id>`.
    pub url: String,
    /// `/uploads/<id>/thumb` for images, `None` otherwise.
    pub thumb_url: Option<String>,
}

/// Resolves an upload id given in `new_msg` to its attachment, if `user_id` uploaded it.
pub trait AttachmentLookup: Send + Sync + 'static {
    /// The attachment `id`, when it exists and belongs to `user_id`.
    fn attachment(&self, id: &str, user_id: i64) -> Option<Attachment>;
}
