//! The upload API in front of another handler (docs/chat.md, "Uploads"):
//!
//! - `POST /api/uploads?name=<file name>`, the raw file as the body, `Authorization:
//!   Bearer <session token>` → `201` attachment JSON, or `{"error"}` with 400, 401, 408,
//!   413 (too large, or over the user's quota), 415, 429, 503 ([`UploadError`]).
//! - `GET /uploads/<id>` and `GET /uploads/<id>/thumb`: the file or its thumbnail with
//!   headers that keep a browser from running it ([`serve`]).
//!
//! The request is checked from the cheapest to the dearest: token, per-user rate, name,
//! declared length and quota, then the body, read with a hard cap and a deadline, never past
//! `max_bytes` + one read; then the type from the bytes and, for an image, a bounded
//! decode for the thumbnail. Nothing reaches the disk before all of that passed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_DISPOSITION, CONTENT_LENGTH,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use phx_server::{Body, Endpoint, HttpHandler};
use serde_json::json;
use tokio::sync::Semaphore;

use super::name::{rfc5987, sanitise, NameError};
use super::quota::{OverQuota, Quota, DEFAULT_QUOTA_BYTES};
use super::sniff::{sniff, Kind, SniffError};
use super::store::{is_id, Meta, UploadStore};
use super::thumb::{ThumbError, Thumbnailer};
use crate::accounts::session::Sessions;
use crate::limit::{Rate, RateLimit};

/// Largest upload by default: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Uploads per user by default: 20 at once, then one every 3 s (20 a minute).
pub const DEFAULT_PER_USER: Rate = Rate {
    burst: 20,
    period: Duration::from_secs(3),
};
/// Upload bodies being received at once on a node (each buffered up to `max_bytes`):
/// past it, `503` at once rather than memory without bound.
pub const DEFAULT_AT_ONCE: usize = 16;
/// Time to receive a whole body: a client trickling bytes cannot hold a slot longer
/// (10 MiB in 2 minutes is about 700 kbit/s).
pub const DEFAULT_BODY_DEADLINE: Duration = Duration::from_secs(120);

/// The bounds of the upload API.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// Largest file, in bytes.
    pub max_bytes: u64,
    /// Uploads per user.
    pub per_user: Rate,
    /// Bodies received at once.
    pub at_once: usize,
    /// Time to receive one body.
    pub body_deadline: Duration,
    /// Bytes one user may keep.
    pub quota_bytes: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            per_user: DEFAULT_PER_USER,
            at_once: DEFAULT_AT_ONCE,
            body_deadline: DEFAULT_BODY_DEADLINE,
            quota_bytes: DEFAULT_QUOTA_BYTES,
        }
    }
}

/// Why an upload is refused; each is one status and a readable `error`.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No token, or one that is invalid, expired or logged out.
    #[error("sign in to upload files")]
    Unauthorized,
    /// Over the per-user rate.
    #[error("too many uploads: try again later")]
    RateLimited,
    /// No `name` parameter.
    #[error("the name parameter is missing")]
    NoName,
    /// A name [`sanitise`] refuses.
    #[error(transparent)]
    BadName(#[from] NameError),
    /// Declared or read past the limit.
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// The user's stored files would pass the quota.
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
    /// Nothing uploaded.
    #[error("the file is empty")]
    Empty,
    /// The body stopped or broke before its end.
    #[error("the upload was interrupted")]
    Interrupted,
    /// The body took longer than the deadline.
    #[error("the upload took too long")]
    Timeout,
    /// Every receiving slot is taken.
    #[error("too many uploads in progress: try again shortly")]
    Busy,
    /// Not an accepted type.
    #[error(transparent)]
    Type(#[from] SniffError),
    /// An image that could not be decoded within bounds.
    #[error(transparent)]
    Image(#[from] ThumbError),
    /// The disk refused.
    #[error("the file could not be stored")]
    Storage,
}

impl UploadError {
    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::Unauthorized => StatusCode::UNAUTHORIZED,
            UploadError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            UploadError::NoName | UploadError::BadName(_) | UploadError::Empty => {
                StatusCode::BAD_REQUEST
            }
            UploadError::Interrupted => StatusCode::BAD_REQUEST,
            UploadError::TooLarge(_) | UploadError::OverQuota(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Timeout => StatusCode::REQUEST_TIMEOUT,
            UploadError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            UploadError::Type(_) | UploadError::Image(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UploadError::Storage => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether the request body may be left unread: the connection must then close,
    /// or the rest of the body would be read as the next request.
    fn body_unread(&self) -> bool {
        !matches!(
            self,
            UploadError::Empty
                | UploadError::Type(_)
                | UploadError::Image(_)
                | UploadError::Storage
        )
    }

    fn response(&self) -> Response<Body> {
        let mut resp = json_response(self.status(), &json!({ "error": self.to_string() }));
        if self.body_unread() {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// The upload API wrapped around `inner`, which gets every other request.
pub struct UploadsHttp<H> {
    inner: H,
    sessions: Sessions,
    store: Arc<UploadStore>,
    limits: UploadLimits,
    per_user: RateLimit<i64>,
    receiving: Arc<Semaphore>,
    thumbs: Thumbnailer,
    quota: Quota,
}

impl<H: HttpHandler> UploadsHttp<H> {
    /// Uploads into `store` by users `sessions` signs in, within `limits`. Reads every
    /// upload's metadata once (blocking), to count each user's bytes.
    pub fn new(
        inner: H,
        sessions: Sessions,
        store: Arc<UploadStore>,
        limits: UploadLimits,
    ) -> Self {
        Self {
            inner,
            sessions,
            per_user: RateLimit::new(limits.per_user),
            receiving: Arc::new(Semaphore::new(limits.at_once.max(1))),
            limits,
            thumbs: Thumbnailer::default(),
            quota: Quota::new(limits.quota_bytes, store.usage()),
            store,
        }
    }

    async fn upload(&self, req: Request<Incoming>) -> Result<Meta, UploadError> {
        let token = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let user = self
            .sessions
            .verify(token)
            .await
            .ok_or(UploadError::Unauthorized)?;
        if !self.per_user.try_acquire(&user.id, Instant::now()) {
            return Err(UploadError::RateLimited);
        }
        let raw_name = req
            .uri()
            .query()
            .and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(key, _)| key == "name")
                    .map(|(_, value)| value.into_owned())
            })
            .ok_or(UploadError::NoName)?;
        let name = sanitise(&raw_name)?;
        let max = self.limits.max_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(UploadError::TooLarge(max));
        }
        // Refused before the body when it cannot fit; counted for good below.
        drop(self.quota.reserve(user.id, declared.unwrap_or(1))?);
        let _slot = self
            .receiving
            .clone()
            .try_acquire_owned()
            .map_err(|_| UploadError::Busy)?;
        let data = read_capped(req.into_body(), max, self.limits.body_deadline).await?;
        if data.is_empty() {
            return Err(UploadError::Empty);
        }
        let reservation = self.quota.reserve(user.id, data.len() as u64)?;
        let kind = sniff(&data)?;
        let thumb = if kind.is_image() {
            Some(self.thumbs.make(data.clone(), kind).await?)
        } else {
            None
        };
        let meta = self
            .store
            .save(user.id, &name, kind, &data, thumb.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, dir = %self.store.dir().display(), "upload: cannot write");
                UploadError::Storage
            })?;
        reservation.keep();
        tracing::info!(
            user_id = user.id,
            id = %meta.id,
            size = meta.size,
            content_type = %meta.content_type,
            "upload stored"
        );
        Ok(meta)
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The whole body, or [`UploadError::TooLarge`] as soon as it passes `max` bytes (the
/// rest is never read), or [`UploadError::Timeout`] past `deadline`.
async fn read_capped(
    mut body: Incoming,
    max: u64,
    deadline: Duration,
) -> Result<Bytes, UploadError> {
    let read = async {
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| UploadError::Interrupted)?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > max {
                    return Err(UploadError::TooLarge(max));
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| UploadError::Timeout)?
}

/// Serves stored bytes so that no browser runs them: the detected type with `nosniff`,
/// a CSP that allows nothing and sandboxes the document (a PDF or an image opened on its
/// own cannot script, navigate or reach the app's origin), inline only for images, and
/// the name only as an RFC 5987 `filename*` parameter.
pub fn serve(kind: Kind, content_type: &'static str, name: &str, data: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(data)));
    let disposition = if kind.is_image() {
        "inline"
    } else {
        "attachment"
    };
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename*={}", rfc5987(name)))
    {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    // An id's bytes never change; `private`: shared caches need not keep them.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

fn not_found() -> Response<Body> {
    json_response(StatusCode::NOT_FOUND, &json!({ "error": "no such upload" }))
}

impl<H: HttpHandler> UploadsHttp<H> {
    /// `GET /uploads/<rest>`: `<id>` or `<id>/thumb`.
    async fn download(&self, rest: &str) -> Response<Body> {
        let (id, thumb) = match rest.strip_suffix("/thumb") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        if !is_id(id) {
            return not_found();
        }
        let found = if thumb {
            self.store.read_thumb(id).await
        } else {
            self.store.read(id).await
        };
        let Some((meta, data)) = found else {
            return not_found();
        };
        let Some(kind) = meta.kind() else {
            return not_found();
        };
        if thumb {
            let name = format!("{}.thumb.png", meta.name);
            serve(Kind::Png, Kind::Png.header_value(), &name, data)
        } else {
            serve(kind, kind.header_value(), &meta.name, data)
        }
    }
}

impl<H: HttpHandler> HttpHandler for UploadsHttp<H> {
    async fn call(&self, req: Request<Incoming>, endpoint: &Endpoint) -> Response<Body> {
        let path = req.uri().path();
        if path == "/api/uploads" {
            if req.method() != Method::POST {
                return json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({ "error": "use POST" }),
                );
            }
            return match self.upload(req).await {
                Ok(meta) => json_response(
                    StatusCode::CREATED,
                    &serde_json::to_value(meta.attachment()).unwrap_or_default(),
                ),
                Err(error) => error.response(),
            };
        }
        if let Some(rest) = path.strip_prefix("/uploads/") {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return json_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &json!({ "error": "use GET" }),
                );
            }
            let rest = rest.to_owned();
            return self.download(&rest).await;
        }
        self.inner.call(req, endpoint).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(bearer("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn served_files_carry_the_protective_headers() {
        let resp = serve(Kind::Png, "image/png", "a \"b\".png", vec![1]);
        let h = resp.headers();
        assert_eq!(h[CONTENT_TYPE], "image/png");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[CONTENT_SECURITY_POLICY], "default-src 'none'; sandbox");
        assert_eq!(
            h[CONTENT_DISPOSITION],
            "inline; filename*=UTF-8''a%20%22b%22.png"
        );
        let resp = serve(Kind::Pdf, "application/pdf", "r.pdf", vec![1]);
        assert_eq!(
            resp.headers()[CONTENT_DISPOSITION],
            "attachment; filename*=UTF-8''r.pdf"
        );
    }

    #[test]
    fn refusals_have_the_contract_statuses() {
        use UploadError::*;
        for (error, status) in [
            (Unauthorized, 401),
            (RateLimited, 429),
            (TooLarge(1), 413),
            (Empty, 400),
            (BadName(NameError::Dots), 400),
            (Type(SniffError::Markup), 415),
            (Image(ThumbError::TooLarge), 415),
            (OverQuota(super::super::quota::OverQuota { quota: 1 }), 413),
        ] {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
        // Refused before the body was read: the connection closes.
        assert_eq!(TooLarge(1).response().headers()[CONNECTION], "close");
        assert!(Empty.response().headers().get(CONNECTION).is_none());
    }
}
