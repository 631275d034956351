//! Where uploaded files go and every upload bound (docs/chat.md, "Uploads";
//! SECURITY.md).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::limit::Rate;
use crate::uploads::admission::AdmissionLimits;
use crate::uploads::http::UploadLimits;

/// Where uploaded files go and every upload bound.
#[derive(Args, Debug, Clone)]
pub struct UploadFlags {
    /// Directory of uploaded files, created at start if missing. Nodes of a cluster
    /// must share it (e.g. one network file system), or a file uploaded through one node
    /// is missing on the others.
    #[arg(long, env = "UPLOAD_DIR", default_value = "uploads")]
    pub upload_dir: PathBuf,

    /// Largest upload, in bytes; a larger body is cut off with 413.
    #[arg(long, env = "UPLOAD_MAX_BYTES", default_value_t = 10_485_760,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_max_bytes: u64,

    /// Bytes of uploads one user may keep (1 GiB); past it, 413.
    #[arg(long, env = "UPLOAD_QUOTA_BYTES", default_value_t = 1_073_741_824,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_quota_bytes: u64,

    /// Uploads one signed-in user may make at once (then one per `--upload-refill-ms`).
    #[arg(long, env = "UPLOAD_BURST", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_burst: u32,

    /// Milliseconds after which a user may upload one more file (3000: 20 a minute).
    #[arg(long, env = "UPLOAD_REFILL_MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_refill_ms: u64,

    /// Upload bodies one user may send at once; past it, 429.
    #[arg(long, env = "UPLOAD_USER_AT_ONCE", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_user_at_once: u32,

    /// Upload bodies one client address (IPv6 /64) may send at once; past it, 429.
    #[arg(long, env = "UPLOAD_ADDRESS_AT_ONCE", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_address_at_once: u32,

    /// Upload bodies the node receives at once; past it, 503.
    #[arg(long, env = "UPLOAD_AT_ONCE", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub upload_at_once: u32,

    /// Bytes all upload bodies being received may hold together (64 MiB; at least
    /// --upload-max-bytes); past it, 503.
    #[arg(long, env = "UPLOAD_BUFFER_BYTES", default_value_t = 67_108_864,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_buffer_bytes: u64,

    /// Slowest upload body, in bytes per second over each --upload-rate-window-ms
    /// (0: no floor); slower, 408.
    #[arg(long, env = "UPLOAD_MIN_RATE", default_value_t = 8192)]
    pub upload_min_rate: u64,

    /// The window the minimum upload rate is measured over, in milliseconds.
    #[arg(long, env = "UPLOAD_RATE_WINDOW_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub upload_rate_window_ms: u64,

    /// Time to receive a whole upload body, in milliseconds; past it, 408.
    #[arg(long, env = "UPLOAD_BODY_TIMEOUT_MS", default_value_t = 120_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_body_timeout_ms: u64,

    /// Seconds a signed file URL works (rounded up by at most a quarter).
    #[arg(long, env = "UPLOAD_URL_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_url_ttl_secs: u64,

    /// Seconds an upload may wait to be posted in a message before it is removed.
    #[arg(long, env = "UPLOAD_UNPOSTED_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_unposted_ttl_secs: u64,
}

impl UploadFlags {
    /// The upload bounds (the `--upload-*` flags); a buffer budget under the largest
    /// upload is refused (such an upload could never be received).
    pub fn limits(&self) -> Result<UploadLimits, String> {
        if self.upload_buffer_bytes < self.upload_max_bytes {
            return Err(format!(
                "--upload-buffer-bytes / UPLOAD_BUFFER_BYTES ({}) must be at least \
                 --upload-max-bytes / UPLOAD_MAX_BYTES ({})",
                self.upload_buffer_bytes, self.upload_max_bytes
            ));
        }
        let at_once = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(UploadLimits {
            max_bytes: self.upload_max_bytes,
            quota_bytes: self.upload_quota_bytes,
            per_user: Rate::new(
                self.upload_burst,
                Duration::from_millis(self.upload_refill_ms),
            ),
            admission: AdmissionLimits {
                per_user: at_once(self.upload_user_at_once),
                per_address: at_once(self.upload_address_at_once),
                at_once: at_once(self.upload_at_once),
                buffer_bytes: self.upload_buffer_bytes,
            },
            body_deadline: Duration::from_millis(self.upload_body_timeout_ms),
            min_rate: self.upload_min_rate,
            rate_window: Duration::from_millis(self.upload_rate_window_ms),
        })
    }

    /// How long a signed file URL works (`--upload-url-ttl-secs`).
    pub fn url_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_url_ttl_secs)
    }

    /// How long an upload may wait to be posted (`--upload-unposted-ttl-secs`).
    pub fn unposted_ttl(&self) -> Duration {
        Duration::from_secs(self.upload_unposted_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_match_the_readme() {
        let config = Config::parse_from(["chat-app"]);
        assert_eq!(config.uploads.upload_dir, PathBuf::from("uploads"));
        let uploads = config.uploads.limits().unwrap();
        let defaults = UploadLimits::default();
        assert_eq!(uploads.max_bytes, crate::uploads::http::DEFAULT_MAX_BYTES);
        assert_eq!(uploads.per_user, crate::uploads::http::DEFAULT_PER_USER);
        assert_eq!(
            uploads.quota_bytes,
            crate::uploads::quota::DEFAULT_QUOTA_BYTES
        );
        assert_eq!(uploads.admission, defaults.admission);
        assert_eq!(uploads.body_deadline, defaults.body_deadline);
        assert_eq!(uploads.min_rate, defaults.min_rate);
        assert_eq!(uploads.rate_window, defaults.rate_window);
        assert_eq!(
            config.uploads.url_ttl(),
            crate::uploads::signed::DEFAULT_URL_TTL
        );
        assert_eq!(
            config.uploads.unposted_ttl(),
            crate::uploads::files::DEFAULT_UNPOSTED_TTL
        );
    }

    #[test]
    fn upload_flags_are_read_and_zero_refused() {
        let config = Config::parse_from([
            "chat-app",
            "--upload-dir",
            "/srv/files",
            "--upload-max-bytes",
            "1000",
            "--upload-burst",
            "3",
            "--upload-refill-ms",
            "500",
            "--upload-quota-bytes",
            "5000",
            "--upload-user-at-once",
            "1",
            "--upload-address-at-once",
            "3",
            "--upload-at-once",
            "9",
            "--upload-buffer-bytes",
            "2000",
            "--upload-min-rate",
            "0",
            "--upload-rate-window-ms",
            "700",
            "--upload-body-timeout-ms",
            "800",
        ]);
        assert_eq!(config.uploads.upload_dir, PathBuf::from("/srv/files"));
        let uploads = config.uploads.limits().unwrap();
        assert_eq!(uploads.max_bytes, 1000);
        assert_eq!(uploads.per_user, Rate::new(3, Duration::from_millis(500)));
        assert_eq!(uploads.quota_bytes, 5000);
        assert_eq!(
            uploads.admission,
            AdmissionLimits {
                per_user: 1,
                per_address: 3,
                at_once: 9,
                buffer_bytes: 2000
            }
        );
        assert_eq!(uploads.min_rate, 0);
        assert_eq!(uploads.rate_window, Duration::from_millis(700));
        assert_eq!(uploads.body_deadline, Duration::from_millis(800));
        let small_buffer = Config::parse_from([
            "chat-app",
            "--upload-max-bytes",
            "1000",
            "--upload-buffer-bytes",
            "999",
        ]);
        assert!(small_buffer
            .uploads
            .limits()
            .unwrap_err()
            .contains("UPLOAD_BUFFER_BYTES"));
        for flag in [
            "--upload-max-bytes",
            "--upload-burst",
            "--upload-refill-ms",
            "--upload-quota-bytes",
            "--upload-user-at-once",
            "--upload-address-at-once",
            "--upload-at-once",
            "--upload-buffer-bytes",
            "--upload-rate-window-ms",
            "--upload-body-timeout-ms",
            "--upload-url-ttl-secs",
            "--upload-unposted-ttl-secs",
        ] {
            assert!(
                Config::try_parse_from(["chat-app", flag, "0"]).is_err(),
                "{flag}"
            );
        }
    }
}
