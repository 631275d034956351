//! Reading a request body whole, within a size and a time.
//!
//! A body is read into memory only where it is small by nature (a long-poll POST, a
//! server API call, an app's JSON form). The size bound keeps one request from holding
//! much memory; the time bound keeps a client that announces a body and then trickles it,
//! or never sends it, from holding the connection (and its slot in the connection caps)
//! for as long as it likes. hyper bounds the wait for a request head, not for its body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::StatusCode;

/// How long a whole request body may take to arrive: 15 s, Plug's `read_timeout` (which
/// Phoenix applies to each chunk of a body; here it bounds the whole body, so a client
/// cannot stretch one request by sending a chunk just before every deadline).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// The body is longer than the limit (answered 413 Payload Too Large).
    #[error("request body over the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body did not arrive whole in time (answered 408 Request Timeout).
    #[error("request body not received within {} ms", after.as_millis())]
    TimedOut {
        /// The time it had.
        after: Duration,
    },
    /// The connection failed or the body was malformed (answered 400 Bad Request).
    #[error("unreadable request body")]
    Unreadable,
}

impl BodyError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Unreadable => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads `body` whole: at most `limit` bytes, arriving within `timeout` (for the server's
/// own requests the endpoint's [`EndpointBuilder::body_timeout`], by default
/// [`DEFAULT_BODY_TIMEOUT`]; an app's handler can read it with [`Endpoint::body_timeout`]).
///
/// [`EndpointBuilder::body_timeout`]: crate::EndpointBuilder::body_timeout
/// [`Endpoint::body_timeout`]: crate::Endpoint::body_timeout
pub async fn read_body<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut { after: timeout }),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(BodyError::TooLarge { limit }),
        Ok(Err(_)) => Err(BodyError::Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{Full, StreamBody};
    use hyper::body::Frame;

    #[tokio::test]
    async fn a_body_within_both_bounds_is_read_whole() {
        let body = Full::new(Bytes::from_static(b"hello"));
        assert_eq!(
            read_body(body, 5, DEFAULT_BODY_TIMEOUT).await.unwrap(),
            "hello"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let body = Full::new(Bytes::from_static(b"hello!"));
        let error = read_body(body, 5, DEFAULT_BODY_TIMEOUT).await.unwrap_err();
        assert_eq!(error, BodyError::TooLarge { limit: 5 });
        assert_eq!(error.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    /// A body whose first chunk arrives and whose rest never does: 408 at the deadline,
    /// however many chunks came before it.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_408_at_the_deadline() {
        let chunks = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Frame::data(
            Bytes::from_static(b"{\"to"),
        ))])
        .chain(futures_util::stream::pending());
        let started = tokio::time::Instant::now();
        let error = read_body(StreamBody::new(chunks), 1024, Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            BodyError::TimedOut {
                after: Duration::from_secs(3)
            }
        );
        assert_eq!(error.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
