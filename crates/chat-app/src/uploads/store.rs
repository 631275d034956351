//! Uploaded files on disk, under the configured `UPLOAD_DIR`:
//!
//! - `<id>`: the file as uploaded;
//! - `<id>.thumb.png`: its thumbnail (images only);
//! - `<id>.json`: its metadata ([`Meta`]: name, size, type, owner), written last, so an
//!   upload exists once this file does.
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
use super::{Attachment, AttachmentLookup};

/// Hex digits of an upload id (128 bits).
pub const ID_LEN: usize = 32;
/// Largest metadata file read (it is a few hundred bytes; a bigger one is not ours).
const META_MAX_BYTES: u64 = 16 * 1024;
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
        Ok(Self { dir })
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
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let id = name.to_str()?.strip_suffix(".json")?;
                self.meta(id).map(|meta| (meta.owner, meta.size))
            })
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

impl AttachmentLookup for UploadStore {
    fn attachment(&self, id: &str, user_id: i64) -> Option<Attachment> {
        self.meta(id)
            .filter(|meta| meta.owner == user_id)
            .map(|meta| meta.attachment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
    async fn lookup_answers_only_the_owner_and_only_real_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<UploadStore> = Arc::new(UploadStore::open(tmp.path()).unwrap());
        let data = Bytes::from_static(b"hello");
        let meta = store
            .save(1, "a.txt", Kind::Text, &data, None)
            .await
            .unwrap();
        let lookup: Arc<dyn AttachmentLookup> = store.clone();
        let found = lookup.attachment(&meta.id, 1).unwrap();
        assert_eq!(found.thumb_url, None);
        assert_eq!(found.name, "a.txt");
        assert!(lookup.attachment(&meta.id, 2).is_none());
        assert!(lookup.attachment(&"0".repeat(32), 1).is_none());
        assert!(lookup.attachment("../../etc/passwd", 1).is_none());
        assert!(lookup.attachment(&meta.id.to_uppercase(), 1).is_none());
        assert!(store.read_thumb(&meta.id).await.is_none());
        store
            .save(1, "b.txt", Kind::Text, &Bytes::from_static(b"hi"), None)
            .await
            .unwrap();
        store
            .save(2, "c.txt", Kind::Text, &data, None)
            .await
            .unwrap();
        let mut usage = store.usage();
        usage.sort();
        assert_eq!(usage, vec![(1, 2), (1, 5), (2, 5)]);
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
