//! Receiving an upload body into memory, within four bounds: its size, a deadline for the
//! whole body, a minimum rate over every window (a client that trickles bytes to hold a
//! slot is cut off within one window, whatever it declared), and the node's shared
//! [`ByteBudget`], from which the buffer takes its capacity before it grows.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::time::Instant;

use super::admission::{ByteBudget, Held};

/// Time to receive a whole body by default: 10 MiB in 2 minutes is about 700 kbit/s.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
/// Slowest body by default, in bytes per second over each [`DEFAULT_RATE_WINDOW`]:
/// 8 KiB/s (64 kbit/s), far under any link that can send a file in the deadline.
pub const DEFAULT_MIN_RATE: u64 = 8 * 1024;
/// The window the minimum rate is measured over by default.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10);
/// The buffer's first capacity: small bodies take no more.
const FIRST_CAPACITY: usize = 16 * 1024;

/// Largest upload by default: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// The bounds of one body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: u64,
    /// Time for the whole body.
    pub deadline: Duration,
    /// Fewest bytes per second, measured over each `window` from the first byte asked
    /// for; 0 turns the check off.
    pub min_rate: u64,
    /// The measuring window.
    pub window: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            deadline: DEFAULT_DEADLINE,
            min_rate: DEFAULT_MIN_RATE,
            window: DEFAULT_RATE_WINDOW,
        }
    }
}

/// Why a body was not received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Past `max_bytes` (the rest is not read).
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// The connection broke before the end.
    #[error("the upload was interrupted")]
    Interrupted,
    /// Not complete within the deadline.
    #[error("the upload took longer than {0} s")]
    Timeout(u64),
    /// Fewer than `rate` bytes per second over a window of `window` seconds.
    #[error("the upload was too slow: under {rate} bytes per second for {window} s")]
    TooSlow {
        /// The minimum rate, bytes per second.
        rate: u64,
        /// The window, seconds.
        window: u64,
    },
    /// The node's buffer budget is spent.
    #[error("the server is receiving too many files at once: try again shortly")]
    Busy,
}

/// The whole of `body`, with the budget it holds (keep it while the bytes are in memory).
pub async fn receive<B>(
    mut body: B,
    limits: BodyLimits,
    budget: &ByteBudget,
) -> Result<(Bytes, Held), BodyError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let started = Instant::now();
    let deadline = started + limits.deadline;
    let window = limits.window.max(Duration::from_millis(1));
    let mut next_check = started + window;
    let mut window_bytes: u64 = 0;
    let floor = limits.min_rate.saturating_mul(window.as_millis() as u64) / 1000;
    let mut held = Held::default();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tokio::time::sleep_until(deadline) => {
                return Err(BodyError::Timeout(limits.deadline.as_secs()));
            }
            () = tokio::time::sleep_until(next_check), if limits.min_rate > 0 => {
                if window_bytes < floor {
                    return Err(BodyError::TooSlow {
                        rate: limits.min_rate,
                        window: window.as_secs().max(1),
                    });
                }
                window_bytes = 0;
                next_check += window;
                continue;
            }
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = frame.map_err(|_| BodyError::Interrupted)?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let len = buf.len() + data.len();
        if len as u64 > limits.max_bytes {
            return Err(BodyError::TooLarge(limits.max_bytes));
        }
        if len > buf.capacity() {
            grow(&mut buf, len, limits.max_bytes, budget, &mut held)?;
        }
        buf.extend_from_slice(&data);
        window_bytes += data.len() as u64;
    }
    Ok((Bytes::from(buf), held))
}

/// Grows `buf` to hold `needed` bytes: doubling, never past `max`, the new capacity
/// taken from `budget` first.
fn grow(
    buf: &mut Vec<u8>,
    needed: usize,
    max: u64,
    budget: &ByteBudget,
    held: &mut Held,
) -> Result<(), BodyError> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let target = needed
        .max(buf.capacity().saturating_mul(2))
        .max(FIRST_CAPACITY)
        .min(max.max(needed));
    let more = target - buf.capacity();
    if !budget.try_take(held, more as u64) {
        return Err(BodyError::Busy);
    }
    buf.try_reserve_exact(target - buf.len())
        .map_err(|_| BodyError::Busy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use hyper::body::Frame;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    /// A body fed by hand through a channel.
    struct Fed(mpsc::Receiver<Bytes>);

    impl Body for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    fn limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 100_000,
            deadline: Duration::from_secs(60),
            min_rate: 1000,
            window: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn a_body_is_received_whole_and_its_capacity_counted() {
        let budget = ByteBudget::new(1 << 20);
        let data = Bytes::from(vec![7u8; 40_000]);
        let (got, held) = receive(Full::new(data.clone()), limits(), &budget)
            .await
            .unwrap();
        assert_eq!(got, data);
        let taken = (1 << 20) - budget.available();
        assert!((40_000..=100_000).contains(&taken), "{taken}");
        drop(held);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn past_the_size_limit_or_the_budget_it_stops() {
        let budget = ByteBudget::new(1 << 20);
        let big = Full::new(Bytes::from(vec![0u8; 100_001]));
        assert_eq!(
            receive(big, limits(), &budget).await.unwrap_err(),
            BodyError::TooLarge(100_000)
        );
        let small = ByteBudget::new(8 * 1024);
        let body = Full::new(Bytes::from(vec![0u8; 20_000]));
        assert_eq!(
            receive(body, limits(), &small).await.unwrap_err(),
            BodyError::Busy
        );
        assert_eq!(small.available(), 8 * 1024, "given back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_under_the_minimum_rate_is_cut_off_within_a_window() {
        let (tx, rx) = mpsc::channel(16);
        let budget = ByteBudget::new(1 << 20);
        let feeder = tokio::spawn(async move {
            // 500 bytes per second against a floor of 1 000.
            for _ in 0..100 {
                if tx.send(Bytes::from(vec![1u8; 50])).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        let got = receive(Fed(rx), limits(), &budget).await;
        assert_eq!(
            got.unwrap_err(),
            BodyError::TooSlow {
                rate: 1000,
                window: 1
            }
        );
        assert!(started.elapsed() <= Duration::from_millis(1100));
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_body_over_the_rate_passes_many_windows_and_the_deadline_holds() {
        let (tx, rx) = mpsc::channel(16);
        let budget = ByteBudget::new(1 << 20);
        tokio::spawn(async move {
            for _ in 0..50 {
                tx.send(Bytes::from(vec![1u8; 200])).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let (got, _) = receive(Fed(rx), limits(), &budget).await.unwrap();
        assert_eq!(got.len(), 10_000, "5 s at 2 000 bytes/s");

        let (tx, rx) = mpsc::channel(16);
        let slow_deadline = BodyLimits {
            deadline: Duration::from_secs(3),
            ..limits()
        };
        let feeder = tokio::spawn(async move {
            loop {
                if tx.send(Bytes::from(vec![1u8; 200])).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let got = receive(Fed(rx), slow_deadline, &budget).await;
        assert_eq!(got.unwrap_err(), BodyError::Timeout(3));
        feeder.abort();
    }
}
