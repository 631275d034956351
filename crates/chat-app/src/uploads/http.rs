//! The upload API in front of another handler (docs/chat.md, "Uploads"):
//!
//! - `POST /api/uploads?name=<file name>`, the raw file as the body, `Authorization:
//!   Bearer <session token>` → `201` attachment JSON (URLs signed for the uploader), or
//!   `{"error"}` with 400, 401, 408, 413 (too large, or over the user's quota), 415, 429,
//!   503 ([`UploadError`]).
//! - `GET /uploads/<signed>` and `GET /uploads/<signed>/thumb`: the file or its thumbnail
//!   for a valid signed URL (see `signed`), with headers that keep a browser from running
//!   it ([`serve`]); `403` for any other URL, `404` once the file is gone.
//!
//! The request is checked from the cheapest to the dearest: token, per-user rate, name,
//! declared length and quota, a receiving slot (per user, per address, per node), then
//! the body, read with a hard cap, a deadline, a minimum rate and the node's byte
//! budget; then the type from the bytes and, for an image, a bounded decode for the
//! thumbnail. Nothing reaches the disk before all of that passed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_DISPOSITION, CONTENT_LENGTH,
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, RETRY_AFTER, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use phx_server::{Body, Endpoint, HttpHandler, PeerAddr};
use serde_json::json;

use super::admission::{Admission, AdmissionLimits, Full};
use super::body::{receive, BodyError, BodyLimits};
use super::files::Files;
use super::name::{rfc5987, sanitise, NameError};
use super::quota::{OverQuota, DEFAULT_QUOTA_BYTES};
use super::signed::{unix_now, UrlError, Viewer};
use super::sniff::{sniff, Kind, SniffError};
use super::store::Meta;
use super::thumb::{ThumbError, Thumbnailer};
use crate::accounts::session::Sessions;
use crate::limit::{address_key, Rate, RateLimit};

pub use super::body::DEFAULT_MAX_BYTES;
/// Uploads per user by default: 20 at once, then one every 3 s (20 a minute).
pub const DEFAULT_PER_USER: Rate = Rate {
    burst: 20,
    period: Duration::from_secs(3),
};
/// Seconds a client is asked to wait after a 429 or 503 for lack of a slot.
const RETRY_AFTER_SECS: &str = "5";

/// The bounds of the upload API.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// Largest file, in bytes.
    pub max_bytes: u64,
    /// Uploads per user.
    pub per_user: Rate,
    /// Receiving slots and bytes in flight.
    pub admission: AdmissionLimits,
    /// Time for one body, and the slowest rate a body may arrive at.
    pub body_deadline: Duration,
    /// Bytes per second a body must keep up over every `rate_window` (0: no floor).
    pub min_rate: u64,
    /// The window `min_rate` is measured over.
    pub rate_window: Duration,
    /// Bytes one user may keep.
    pub quota_bytes: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        let body = BodyLimits::default();
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            per_user: DEFAULT_PER_USER,
            admission: AdmissionLimits::default(),
            body_deadline: body.deadline,
            min_rate: body.min_rate,
            rate_window: body.window,
            quota_bytes: DEFAULT_QUOTA_BYTES,
        }
    }
}

impl UploadLimits {
    fn body(&self) -> BodyLimits {
        BodyLimits {
            max_bytes: self.max_bytes,
            deadline: self.body_deadline,
            min_rate: self.min_rate,
            window: self.rate_window,
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
    /// Declared past the limit.
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// The user's stored files would pass the quota.
    #[error(transparent)]
    OverQuota(#[from] OverQuota),
    /// No receiving slot for this user, address or node.
    #[error(transparent)]
    Full(#[from] Full),
    /// The body was not received ([`BodyError`]).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// Nothing uploaded.
    #[error("the file is empty")]
    Empty,
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
            UploadError::RateLimited | UploadError::Full(Full::User(_) | Full::Address(_)) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            UploadError::NoName | UploadError::BadName(_) | UploadError::Empty => {
                StatusCode::BAD_REQUEST
            }
            UploadError::TooLarge(_)
            | UploadError::OverQuota(_)
            | UploadError::Body(BodyError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Body(BodyError::Interrupted) => StatusCode::BAD_REQUEST,
            UploadError::Body(BodyError::Timeout(_) | BodyError::TooSlow { .. }) => {
                StatusCode::REQUEST_TIMEOUT
            }
            UploadError::Full(Full::Node) | UploadError::Body(BodyError::Busy) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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

    /// Whether trying again soon may work (a slot or the byte budget): `Retry-After`.
    fn retry_soon(&self) -> bool {
        matches!(
            self,
            UploadError::Full(_) | UploadError::Body(BodyError::Busy)
        )
    }

    fn response(&self) -> Response<Body> {
        let mut resp = json_response(self.status(), &json!({ "error": self.to_string() }));
        if self.body_unread() {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.retry_soon() {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
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
    files: Arc<Files>,
    limits: UploadLimits,
    per_user: RateLimit<i64>,
    admission: Admission,
    thumbs: Thumbnailer,
}

impl<H: HttpHandler> UploadsHttp<H> {
    /// Uploads into `files` by users `sessions` signs in, within `limits` (its
    /// `quota_bytes` is the one `files` was made with).
    pub fn new(inner: H, sessions: Sessions, files: Arc<Files>, limits: UploadLimits) -> Self {
        Self {
            inner,
            sessions,
            per_user: RateLimit::new(limits.per_user),
            admission: Admission::new(limits.admission),
            limits,
            thumbs: Thumbnailer::default(),
            files,
        }
    }

    async fn upload(&self, req: Request<Incoming>, peer: IpAddr) -> Result<Meta, UploadError> {
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
        let quota = self.files.quota();
        // Refused before the body when it cannot fit; counted for good below.
        drop(quota.reserve(user.id, declared.unwrap_or(1))?);
        let _slot = self.admission.admit(user.id, peer)?;
        let (data, _held) =
            receive(req.into_body(), self.limits.body(), self.admission.bytes()).await?;
        if data.is_empty() {
            return Err(UploadError::Empty);
        }
        let reservation = quota.reserve(user.id, data.len() as u64)?;
        let kind = sniff(&data)?;
        let thumb = if kind.is_image() {
            self.thumbs.make(data.clone(), kind).await?
        } else {
            None
        };
        let store = self.files.store();
        let meta = store
            .save(user.id, &name, kind, &data, thumb.as_deref())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, dir = %store.dir().display(), "upload: cannot write");
                UploadError::Storage
            })?;
        reservation.keep();
        tracing::info!(
            user_id = user.id,
            id = %meta.id,
            size = meta.size,
            content_type = %meta.content_type,
            thumbnail = meta.thumb,
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

/// Serves stored bytes so that no browser runs them: the detected type with `nosniff`,
/// a CSP that allows nothing and sandboxes the document (a PDF or an image opened on its
/// own cannot script, navigate or reach the app's origin), `inline` only when `inline`
/// (images the server decoded), and the name only as an RFC 5987 `filename*` parameter.
pub fn serve(
    content_type: &'static str,
    inline: bool,
    name: &str,
    data: Vec<u8>,
) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(data)));
    let disposition = if inline { "inline" } else { "attachment" };
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
    // An id's bytes never change; `private`: shared caches must not keep them. A browser
    // that fetched them may keep them past the URL's expiry (its user has them anyway),
    // so a re-rendered `<img>` of an expired URL still shows.
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

fn forbidden(error: UrlError) -> Response<Body> {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({ "error": error.to_string() }),
    )
}

impl<H: HttpHandler> UploadsHttp<H> {
    /// `GET /uploads/<rest>`: `<signed>` or `<signed>/thumb`. The signature is checked
    /// before the disk is looked at, so without a valid URL every path answers the same
    /// `403`, whether or not a file is behind it.
    async fn download(&self, rest: &str) -> Response<Body> {
        let (token, thumb) = match rest.strip_suffix("/thumb") {
            Some(token) => (token, true),
            None => (rest, false),
        };
        let granted = match self.files.signer().verify(token, unix_now()) {
            Ok(granted) => granted,
            Err(error) => return forbidden(error),
        };
        let store = self.files.store();
        let found = if thumb {
            store.read_thumb(&granted.id).await
        } else {
            store.read(&granted.id).await
        };
        let Some((meta, data)) = found else {
            return not_found();
        };
        let Some(kind) = meta.kind() else {
            return not_found();
        };
        if thumb {
            let name = format!("{}.thumb.png", meta.name);
            serve(Kind::Png.header_value(), true, &name, data)
        } else {
            serve(
                kind.header_value(),
                kind.is_image() && meta.thumb,
                &meta.name,
                data,
            )
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
            // No TCP peer (in-process): one shared address budget.
            let peer = req
                .extensions()
                .get::<PeerAddr>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| address_key(p.0.ip()));
            return match self.upload(req, peer).await {
                Ok(meta) => {
                    let viewer = Viewer::user(meta.owner);
                    let attachment = self.files.signed_attachment(&meta, &viewer);
                    json_response(
                        StatusCode::CREATED,
                        &serde_json::to_value(attachment).unwrap_or_default(),
                    )
                }
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
        let resp = serve("image/png", true, "a \"b\".png", vec![1]);
        let h = resp.headers();
        assert_eq!(h[CONTENT_TYPE], "image/png");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[CONTENT_SECURITY_POLICY], "default-src 'none'; sandbox");
        assert_eq!(
            h[CONTENT_DISPOSITION],
            "inline; filename*=UTF-8''a%20%22b%22.png"
        );
        let resp = serve("application/pdf", false, "r.pdf", vec![1]);
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
            (Full(super::Full::User(2)), 429),
            (Full(super::Full::Address(4)), 429),
            (Full(super::Full::Node), 503),
            (Body(BodyError::TooSlow { rate: 1, window: 1 }), 408),
            (Body(BodyError::Timeout(1)), 408),
            (Body(BodyError::Busy), 503),
            (Body(BodyError::TooLarge(1)), 413),
        ] {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
        // Refused before the body was read: the connection closes.
        assert_eq!(TooLarge(1).response().headers()[CONNECTION], "close");
        assert!(Empty.response().headers().get(CONNECTION).is_none());
        // Out of slots: try again soon.
        assert_eq!(
            Full(super::Full::Node).response().headers()[RETRY_AFTER],
            "5"
        );
        assert!(RateLimited.response().headers().get(RETRY_AFTER).is_none());
    }
}
