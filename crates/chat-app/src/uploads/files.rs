//! The uploaded files as the rest of the app sees them: the store on disk, each user's
//! quota, the URL signer, and how long an upload may wait to be posted. It is the room
//! channel's [`Attachments`] and the HTTP side's storage, so both count the same quota.
//!
//! An upload not posted in a message within the unposted lifetime is removed by the
//! sweeper ([`Files::spawn_sweeper`]); a deleted message's uploads are removed at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::quota::Quota;
use super::signed::{unix_now, UrlSigner, Viewer};
use super::store::{ClaimError, Meta, UploadStore};
use super::{Attachment, Attachments};

/// How long an upload may wait to be posted by default: 24 hours.
pub const DEFAULT_UNPOSTED_TTL: Duration = Duration::from_secs(24 * 3600);
/// The sweeper runs every quarter of the unposted lifetime, at most this far apart.
const SWEEP_EVERY_MAX: Duration = Duration::from_secs(600);

/// The files, their quota and their URLs.
#[derive(Debug)]
pub struct Files {
    store: Arc<UploadStore>,
    quota: Quota,
    signer: UrlSigner,
    unposted_ttl: Duration,
}

impl Files {
    /// `store` with a per-user quota of `quota_bytes` (counted from what is on disk,
    /// blocking), URLs signed by `signer`, uploads removed when not posted within
    /// `unposted_ttl`.
    pub fn new(
        store: Arc<UploadStore>,
        quota_bytes: u64,
        signer: UrlSigner,
        unposted_ttl: Duration,
    ) -> Self {
        Self {
            quota: Quota::new(quota_bytes, store.usage()),
            store,
            signer,
            unposted_ttl,
        }
    }

    /// The store on disk.
    pub fn store(&self) -> &UploadStore {
        &self.store
    }

    /// Bytes kept per user.
    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// The URL signer.
    pub fn signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// How long an upload may wait to be posted.
    pub fn unposted_ttl(&self) -> Duration {
        self.unposted_ttl
    }

    /// `meta`'s attachment with URLs signed for `viewer`.
    pub fn signed_attachment(&self, meta: &Meta, viewer: &Viewer) -> Attachment {
        let mut attachment = meta.attachment();
        self.sign(&mut attachment, viewer);
        attachment
    }

    fn forget(&self, removed: Meta) {
        self.quota.release(removed.owner, removed.size);
    }

    /// One pass of the sweeper: removes the uploads not posted in time; answers how many.
    pub async fn sweep(&self) -> usize {
        let (max_age, now) = (self.unposted_ttl.as_secs(), unix_now());
        let store = self.store.clone();
        let Ok(ids) = tokio::task::spawn_blocking(move || store.expired(max_age, now)).await else {
            return 0;
        };
        let removed = self.store.remove_expired(ids, max_age, now).await;
        let n = removed.len();
        for meta in removed {
            tracing::info!(id = %meta.id, owner = meta.owner, "upload removed: never posted");
            self.forget(meta);
        }
        n
    }

    /// Runs [`sweep`](Self::sweep) every quarter of the unposted lifetime (at most every
    /// 10 minutes, at least every second) for as long as the runtime lives.
    pub fn spawn_sweeper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let files = Arc::downgrade(self);
        let every = (self.unposted_ttl / 4).clamp(Duration::from_secs(1), SWEEP_EVERY_MAX);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(files) = files.upgrade() else {
                    return;
                };
                files.sweep().await;
            }
        })
    }
}

#[async_trait]
impl Attachments for Files {
    async fn claim(
        &self,
        id: &str,
        owner: i64,
        room: &str,
        client_id: Option<&str>,
    ) -> Result<Attachment, ClaimError> {
        let meta = self
            .store
            .claim(
                id,
                owner,
                room,
                client_id,
                self.unposted_ttl.as_secs(),
                unix_now(),
            )
            .await?;
        Ok(meta.attachment())
    }

    async fn release(&self, id: &str, room: &str, client_id: Option<&str>) {
        self.store.release(id, room, client_id).await;
    }

    async fn delete(&self, id: &str) {
        if let Some(meta) = self.store.delete(id).await {
            tracing::info!(id = %meta.id, "upload removed with its message");
            self.forget(meta);
        }
    }

    async fn visible_in(&self, id: &str, room: &str, owner: Option<i64>) -> Option<Attachment> {
        let meta = self.store.meta(id)?;
        let visible = match &meta.posted {
            Some(posted) => posted.room == room,
            None => meta.pending && Some(meta.owner) == owner,
        };
        visible.then(|| meta.attachment())
    }

    fn sign(&self, attachment: &mut Attachment, viewer: &Viewer) {
        let urls = self.signer.sign(&attachment.id, viewer, unix_now());
        attachment.url = urls.url;
        if attachment.thumb_url.is_some() {
            attachment.thumb_url = Some(urls.thumb_url);
        }
        attachment.urls_expire_at = i64::try_from(urls.expires)
            .ok()
            .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
            .and_then(|at| {
                at.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
    }
}
