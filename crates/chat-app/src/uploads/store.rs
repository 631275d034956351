//! Uploaded files on disk, under the configured `UPLOAD_DIR`:
//!
//! - `<id>`: the file as uploaded;
//! - `<id>.thumb.png`: its thumbnail (images only);
//! - `<id>.json`: its metadata ([`Meta`]: name, size, type, owner, where it was posted),
//!   written last, so an upload exists once this file does, and removed first.
//!
//! An upload is posted in one message only: [`UploadStore::claim`] records the room (and
//! the message's `client_id`, so a retry of the same message may claim it again) before
//! the message is stored, [`UploadStore::release`] undoes that when the message was not
//! stored. [`UploadStore::delete`] removes an upload's files (its message was deleted),
//! [`UploadStore::expired`] lists the uploads never posted within their time.
//!
//! Ids are 128 random bits in lowercase hex: the only thing that names a path, and
//! checked to be exactly that before any path is built, so neither a file name nor a
//! URL can reach outside the directory. Every file is written under a temporary name and
//! renamed into place, so a reader (this node or another sharing the directory) never
//! sees half a file.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::sniff::Kind;
use super::Attachment;

/// Hex digits of an upload id (128 bits).
pub const ID_LEN: usize = 32;
/// Largest metadata file read (it is a few hundred bytes; a bigger one is not ours).
pub const META_MAX_BYTES: u64 = 16 * 1024;
/// Temporary files older than this are left over from a crash and removed at start
/// (younger ones may be another node's write in progress).
const STALE_TEMP: Duration = Duration::from_secs(3600);
const TEMP_PREFIX: &str = ".tmp-";

/// What is kept about an upload beside its bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    /// The upload id.
    pub id: String,
    /// The sanitised original name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Detected type ([`Kind::content_type`]).
    pub content_type: String,
    /// The user who uploaded it: only they may attach it to a message.
    pub owner: i64,
    /// When, RFC 3339 UTC.
    pub created_at: String,
    /// Whether `<id>.thumb.png` exists.
    pub thumb: bool,
    /// Uploaded and not posted yet: removed once older than the unposted lifetime.
    /// Metadata written before uploads expired lacks the field (`false`): those files
    /// are never removed by age.
    #[serde(default)]
    pub pending: bool,
    /// The message it was posted in, once claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted: Option<Posted>,
}

/// Where an upload was posted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Posted {
    /// The room.
    pub room: String,
    /// The message's idempotency key, if it had one: a retry of that message (same room,
    /// same key) may claim the upload again.
    pub client_id: Option<String>,
}

/// Why an upload cannot be attached to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// No such upload, or another user's (the two are not told apart).
    #[error("unknown attachment")]
    Unknown,
    /// The owner's, but posted in another message already.
    #[error("attachment already posted")]
    AlreadyPosted,
    /// The owner's, but not posted within its time: it is being removed.
    #[error("attachment expired: upload it again")]
    Expired,
    /// The metadata could not be written.
    #[error("the attachment could not be recorded")]
    Storage,
}

impl Meta {
    /// Seconds since the upload, as of `now` (Unix seconds); `None`: unreadable time.
    pub fn age(&self, now: u64) -> Option<u64> {
        let at = time::OffsetDateTime::parse(
            &self.created_at,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        Some(now.saturating_sub(u64::try_from(at.unix_timestamp()).ok()?))
    }
}

impl Meta {
    /// The attachment as messages and the upload reply carry it.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            content_type: self.content_type.clone(),
            url: format!("/uploads/{}", self.id),
            thumb_url: self.thumb.then(|| format!("/uploads/{}/thumb", self.id)),
            urls_expire_at: None,
        }
    }

    /// The detected kind (`None` for metadata this version does not know).
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_content_type(&self.content_type)
    }
}

/// The upload directory.
#[derive(Debug)]
pub struct UploadStore {
    dir: PathBuf,
    /// Serialises claims, releases and removals on this node: each reads the metadata,
    /// decides, and rewrites or removes it as one step.
    changes: tokio::sync::Mutex<()>,
}

/// Whether `id` is an upload id: exactly [`ID_LEN`] lowercase hex digits (so no `/`,
/// `.`, `\` or anything else that could make a path).
pub fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn random_hex() -> String {
    let mut bytes = [0u8; ID_LEN / 2];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl UploadStore {
    /// The store in `dir`, created if missing; temporary files a crash left behind
    /// (older than an hour) are removed.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        std::fs::create_dir_all(dir.as_ref())?;
        let dir = std::fs::canonicalize(dir.as_ref())?;
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age > STALE_TEMP);
            if stale && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self {
            dir,
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// The directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, suffix: &str) -> PathBuf {
        debug_assert!(is_id(id));
        self.dir.join(format!("{id}{suffix}"))
    }

    /// Writes `data` to `<id><suffix>` through a temporary file and a rename.
    async fn write(&self, id: &str, suffix: &str, data: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(format!("{TEMP_PREFIX}{}", random_hex()));
        if let Err(e) = tokio::fs::write(&temp, data).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        if let Err(e) = tokio::fs::rename(&temp, self.path(id, suffix)).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        Ok(())
    }

    /// Stores a new upload of `owner` under a fresh id: its bytes, its thumbnail if
    /// any, then its metadata.
    pub async fn save(
        &self,
        owner: i64,
        name: &str,
        kind: Kind,
        data: &Bytes,
        thumb: Option<&[u8]>,
    ) -> io::Result<Meta> {
        let id = random_hex();
        let meta = Meta {
            id: id.clone(),
            name: name.to_owned(),
            size: data.len() as u64,
            content_type: kind.content_type().to_owned(),
            owner,
            created_at: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            thumb: thumb.is_some(),
            pending: true,
            posted: None,
        };
        let json = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        let written = async {
            self.write(&id, "", data).await?;
            if let Some(thumb) = thumb {
                self.write(&id, ".thumb.png", thumb).await?;
            }
            self.write(&id, ".json", &json).await
        }
        .await;
        if let Err(e) = written {
            for suffix in ["", ".thumb.png"] {
                let _ = tokio::fs::remove_file(self.path(&id, suffix)).await;
            }
            return Err(e);
        }
        Ok(meta)
    }

    /// The metadata of `id`, if it is an id and the upload exists (blocking, but
    /// small: one read of a file under [`META_MAX_BYTES`]).
    pub fn meta(&self, id: &str) -> Option<Meta> {
        if !is_id(id) {
            return None;
        }
        let file = std::fs::File::open(self.path(id, ".json")).ok()?;
        let mut json = Vec::new();
        file.take(META_MAX_BYTES).read_to_end(&mut json).ok()?;
        let meta: Meta = serde_json::from_slice(&json).ok()?;
        (meta.id == id).then_some(meta)
    }

    /// Every upload's owner and size, from the metadata files (at start, for the
    /// quota). Blocking: one read per upload.
    pub fn usage(&self) -> Vec<(i64, u64)> {
        self.all_metas()
            .into_iter()
            .map(|meta| (meta.owner, meta.size))
            .collect()
    }

    /// The metadata and bytes of `id` (`None`: no such upload).
    pub async fn read(&self, id: &str) -> Option<(Meta, Vec<u8>)> {
        let meta = self.meta(id)?;
        let data = tokio::fs::read(self.path(id, "")).await.ok()?;
        Some((meta, data))
    }

    /// The metadata and thumbnail of `id` (`None`: no such upload or not an image).
    pub async fn read_thumb(&self, id: &str) -> Option<(Meta, Vec<u8>)> {
        let meta = self.meta(id)?;
        if !meta.thumb {
            return None;
        }
        let data = tokio::fs::read(self.path(id, ".thumb.png")).await.ok()?;
        Some((meta, data))
    }
}

impl UploadStore {
    async fn write_meta(&self, meta: &Meta) -> io::Result<()> {
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        self.write(&meta.id, ".json", &json).await
    }

    /// Records that `owner`'s upload `id` is posted in `room` by the message with
    /// `client_id`, unless it is another's, posted elsewhere, or a pending upload older
    /// than `max_age` seconds as of `now`. Claiming again for the same room and
    /// `client_id` (a retried message) succeeds.
    pub async fn claim(
        &self,
        id: &str,
        owner: i64,
        room: &str,
        client_id: Option<&str>,
        max_age: u64,
        now: u64,
    ) -> Result<Meta, ClaimError> {
        let _one_at_a_time = self.changes.lock().await;
        let mut meta = self
            .meta(id)
            .filter(|m| m.owner == owner)
            .ok_or(ClaimError::Unknown)?;
        if let Some(posted) = &meta.posted {
            let retry = posted.room == room
                && client_id.is_some()
                && posted.client_id.as_deref() == client_id;
            return if retry {
                Ok(meta)
            } else {
                Err(ClaimError::AlreadyPosted)
            };
        }
        if meta.pending && meta.age(now).is_none_or(|age| age > max_age) {
            return Err(ClaimError::Expired);
        }
        meta.posted = Some(Posted {
            room: room.to_owned(),
            client_id: client_id.map(str::to_owned),
        });
        meta.pending = false;
        self.write_meta(&meta).await.map_err(|e| {
            tracing::warn!(error = %e, id, "upload: cannot record the claim");
            ClaimError::Storage
        })?;
        Ok(meta)
    }

    /// Undoes [`claim`](Self::claim) of `id` for `room` and `client_id`: the message was
    /// not stored, so the upload is pending again (and expires as if never claimed).
    pub async fn release(&self, id: &str, room: &str, client_id: Option<&str>) {
        let _one_at_a_time = self.changes.lock().await;
        let Some(mut meta) = self.meta(id) else {
            return;
        };
        let ours = meta
            .posted
            .as_ref()
            .is_some_and(|p| p.room == room && p.client_id.as_deref() == client_id);
        if !ours {
            return;
        }
        meta.posted = None;
        meta.pending = true;
        if let Err(e) = self.write_meta(&meta).await {
            tracing::warn!(error = %e, id, "upload: cannot release the claim");
        }
    }

    /// Removes upload `id`: metadata first (from then on it does not exist), then its
    /// bytes and thumbnail. The removed upload's metadata, if it existed.
    pub async fn delete(&self, id: &str) -> Option<Meta> {
        let _one_at_a_time = self.changes.lock().await;
        self.remove(id).await
    }

    async fn remove(&self, id: &str) -> Option<Meta> {
        let meta = self.meta(id)?;
        if let Err(e) = tokio::fs::remove_file(self.path(id, ".json")).await {
            tracing::warn!(error = %e, id, "upload: cannot remove");
            return None;
        }
        for suffix in ["", ".thumb.png"] {
            let _ = tokio::fs::remove_file(self.path(id, suffix)).await;
        }
        Some(meta)
    }

    /// The ids of pending uploads older than `max_age` seconds as of `now`. Blocking: a
    /// directory listing and one metadata read per upload (run it off the async workers).
    pub fn expired(&self, max_age: u64, now: u64) -> Vec<String> {
        self.all_metas()
            .into_iter()
            .filter(|m| expired(m, max_age, now))
            .map(|m| m.id)
            .collect()
    }

    /// Removes those of `ids` that are still pending uploads older than `max_age` seconds
    /// as of `now` (each is read again first: a claim may have come since
    /// [`expired`](Self::expired)), and answers what it removed.
    pub async fn remove_expired(&self, ids: Vec<String>, max_age: u64, now: u64) -> Vec<Meta> {
        let mut removed = Vec::new();
        for id in ids {
            let _one_at_a_time = self.changes.lock().await;
            if self.meta(&id).is_some_and(|m| expired(&m, max_age, now)) {
                removed.extend(self.remove(&id).await);
            }
        }
        removed
    }

    fn all_metas(&self) -> Vec<Meta> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let id = name.to_str()?.strip_suffix(".json")?;
                self.meta(id)
            })
            .collect()
    }
}

/// A pending upload past `max_age` (an unreadable time counts as past it).
fn expired(meta: &Meta, max_age: u64, now: u64) -> bool {
    meta.pending && meta.posted.is_none() && meta.age(now).is_none_or(|age| age > max_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn save_writes_the_file_its_thumbnail_and_metadata_under_the_id() {
        let tmp = tempfile::tempdir().unwrap();
        let store = UploadStore::open(tmp.path().join("up")).unwrap();
        let data = Bytes::from_static(b"\x89PNG fake");
        let meta = store
            .save(7, "../cat.png", Kind::Png, &data, Some(b"thumb"))
            .await
            .unwrap();
        assert!(is_id(&meta.id));
        assert_eq!(
            files(store.dir()),
            vec![
                meta.id.clone(),
                format!("{}.json", meta.id),
                format!("{}.thumb.png", meta.id)
            ]
        );
        let (read, bytes) = store.read(&meta.id).await.unwrap();
        assert_eq!((read.clone(), bytes), (meta.clone(), data.to_vec()));
        assert_eq!(store.read_thumb(&meta.id).await.unwrap().1, b"thumb");
        let attachment = read.attachment();
        assert_eq!(attachment.url, format!("/uploads/{}", meta.id));
        assert_eq!(
            attachment.thumb_url,
            Some(format!("/uploads/{}/thumb", meta.id))
        );
        assert_eq!(attachment.size, data.len() as u64);
        assert_eq!(attachment.content_type, "image/png");
        // The name is data only: it is stored as given and never used as a path.
        assert_eq!(attachment.name, "../cat.png");
    }

    #[tokio::test]
    async fn usage_counts_every_upload_per_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let store = UploadStore::open(tmp.path()).unwrap();
        for (owner, data) in [(1, "hello"), (1, "hi"), (2, "hello")] {
            store
                .save(owner, "a.txt", Kind::Text, &Bytes::from(data), None)
                .await
                .unwrap();
        }
        let mut usage = store.usage();
        usage.sort();
        assert_eq!(usage, vec![(1, 2), (1, 5), (2, 5)]);
    }

    fn now() -> u64 {
        super::super::signed::unix_now()
    }

    #[tokio::test]
    async fn an_upload_is_claimed_once_by_its_owner_and_retries_of_that_message_pass() {
        let tmp = tempfile::tempdir().unwrap();
        let store = UploadStore::open(tmp.path()).unwrap();
        let meta = store
            .save(1, "a.txt", Kind::Text, &Bytes::from_static(b"hello"), None)
            .await
            .unwrap();
        assert!(meta.pending && meta.posted.is_none());
        let id = meta.id.as_str();
        let claim = |owner, room, client| store.claim(id, owner, room, client, 3600, now());
        // Another user's upload, a made-up or malformed id: unknown, alike.
        assert_eq!(claim(2, "r", None).await, Err(ClaimError::Unknown));
        for bad in ["0".repeat(32), "../../etc/passwd".into(), id.to_uppercase()] {
            let got = store.claim(&bad, 1, "r", None, 3600, now()).await;
            assert_eq!(got, Err(ClaimError::Unknown), "{bad}");
        }
        let posted = claim(1, "r", Some("c1")).await.unwrap();
        assert_eq!(
            posted.posted,
            Some(Posted {
                room: "r".into(),
                client_id: Some("c1".into())
            })
        );
        assert!(!store.meta(id).unwrap().pending, "recorded on disk");
        // The same message again (a retry) passes; any other message is refused.
        assert!(claim(1, "r", Some("c1")).await.is_ok());
        for (room, client) in [("r", Some("c2")), ("r", None), ("other", Some("c1"))] {
            assert_eq!(claim(1, room, client).await, Err(ClaimError::AlreadyPosted));
        }
        // Released by another message's key: nothing happens; by its own: pending again.
        store.release(id, "r", Some("c2")).await;
        assert!(store.meta(id).unwrap().posted.is_some());
        store.release(id, "r", Some("c1")).await;
        let again = store.meta(id).unwrap();
        assert!(again.pending && again.posted.is_none());
        assert!(claim(1, "elsewhere", None).await.is_ok());
    }

    #[tokio::test]
    async fn pending_uploads_expire_and_posted_or_older_ones_never_do() {
        let tmp = tempfile::tempdir().unwrap();
        let store = UploadStore::open(tmp.path()).unwrap();
        let data = Bytes::from_static(b"hello");
        let pending = store
            .save(1, "p.txt", Kind::Text, &data, Some(b"thumb"))
            .await
            .unwrap();
        let posted = store
            .save(1, "q.txt", Kind::Text, &data, None)
            .await
            .unwrap();
        store
            .claim(&posted.id, 1, "r", None, 60, now())
            .await
            .unwrap();
        // Metadata of a version before expiry: no `pending` field, never removed.
        let legacy = store
            .save(1, "l.txt", Kind::Text, &data, None)
            .await
            .unwrap();
        let mut json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(tmp.path().join(format!("{}.json", legacy.id))).unwrap(),
        )
        .unwrap();
        json.as_object_mut().unwrap().remove("pending");
        std::fs::write(
            tmp.path().join(format!("{}.json", legacy.id)),
            json.to_string(),
        )
        .unwrap();
        assert!(!store.meta(&legacy.id).unwrap().pending);

        // Not yet past its time: kept.
        assert!(store.expired(60, now()).is_empty());
        // An hour later: an expired pending upload cannot be claimed, and is removed
        // with its thumbnail; the posted and the legacy ones stay.
        let later = now() + 3600;
        assert_eq!(
            store.claim(&pending.id, 1, "r", None, 60, later).await,
            Err(ClaimError::Expired)
        );
        let ids = store.expired(60, later);
        // Removal reads each upload again: given ids that are not (or no longer) expired,
        // as after a claim that came in between, it leaves them alone.
        let all: Vec<String> = [&pending.id, &posted.id, &legacy.id]
            .map(|s| s.to_string())
            .into();
        assert_eq!(ids, vec![pending.id.clone()]);
        let removed = store.remove_expired(all, 60, later).await;
        assert_eq!(
            removed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            [pending.id.as_str()]
        );
        let mut left = files(store.dir());
        left.sort();
        let mut want = vec![
            posted.id.clone(),
            format!("{}.json", posted.id),
            legacy.id.clone(),
            format!("{}.json", legacy.id),
        ];
        want.sort();
        assert_eq!(left, want);
    }

    #[tokio::test]
    async fn delete_removes_every_file_of_an_upload() {
        let tmp = tempfile::tempdir().unwrap();
        let store = UploadStore::open(tmp.path()).unwrap();
        let data = Bytes::from_static(b"\x89PNG fake");
        let meta = store
            .save(7, "cat.png", Kind::Png, &data, Some(b"thumb"))
            .await
            .unwrap();
        let removed = store.delete(&meta.id).await.unwrap();
        assert_eq!(removed.size, data.len() as u64);
        assert!(files(store.dir()).is_empty());
        assert!(store.read(&meta.id).await.is_none());
        assert!(store.delete(&meta.id).await.is_none(), "gone already");
    }

    #[test]
    fn ids_are_32_lowercase_hex_digits_and_random() {
        let a = random_hex();
        assert!(is_id(&a));
        assert_ne!(a, random_hex());
        assert!(!is_id(&a[1..]));
        assert!(!is_id(&format!("{a}0")));
        assert!(!is_id("../../../../../../../../etc/pass"));
        assert!(!is_id(&"A".repeat(32)));
        assert!(!is_id(&format!("{}.json", &a[..27])));
    }

    #[test]
    fn open_removes_only_stale_temporary_files() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join(".tmp-old");
        let young = tmp.path().join(".tmp-young");
        let other = tmp.path().join("keep");
        for p in [&old, &young, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        for p in [&old, &other] {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        UploadStore::open(tmp.path()).unwrap();
        assert_eq!(files(tmp.path()), vec![".tmp-young", "keep"]);
    }
}
