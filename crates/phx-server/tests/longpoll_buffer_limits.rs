//! A long-poll session whose client stops polling is ended once its buffer holds more
//! than the outbound byte budget, so a stream of big messages cannot pin memory.
//!
//! Alone in its file: it measures this process's memory (see tests/memory).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use phx_server::{
    AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, Payload, SocketConfig,
    DEFAULT_OUTBOUND_BYTES,
};
use serde_json::json;

mod longpoll_client;
mod memory;
use longpoll_client::{Client, TIMEOUT};
use memory::{live_heap_bytes, mib, rss_bytes, Peaks, MIB};

const TOPIC: &str = "room:flood";
const SESSIONS: usize = 5;
const MESSAGE_BYTES: usize = 64 * 1024;
/// 40 MiB per session, 160 times the budget, and under the 1 000-message cap: only the
/// byte budget can stop it.
const MESSAGES: usize = 640;

/// Intercepts `new_msg`, so every subscriber encodes a copy of its own (as the chat
/// app's room does): nothing is shared between the sessions' buffers.
#[derive(Default)]
struct Room;

impl Channel for Room {
    type Assigns = ();
    type Info = ();
    const INTERCEPTS: &'static [&'static str] = &["new_msg"];

    async fn join(
        &mut self,
        _topic: &str,
        _payload: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }

    async fn handle_in(
        &mut self,
        _event: &str,
        _payload: Payload,
        _ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        HandleResult::NoReply
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(TIMEOUT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

/// Opens a session and joins `TOPIC`; returns the session's token.
async fn joined_session(port: u16) -> String {
    let mut client = Client::connect(Ipv4Addr::LOCALHOST, port).await;
    let opened = client.get(None).await;
    assert_eq!(opened.status(), 410);
    let token = opened.token().expect("a session token").to_owned();
    let join = json!(["1", "1", TOPIC, "phx_join", {}]).to_string();
    assert_eq!(client.post(&token, &join).await.status(), 200);
    let reply = client.get(Some(&token)).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.messages(),
        vec![json!(["1", "1", TOPIC, "phx_reply", {"status": "ok", "response": {}}])]
    );
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_over_the_byte_budget_are_ended_and_memory_stays_bounded() {
    // A window far longer than the test keeps the idle sessions alive: only the budget
    // can end them.
    let endpoint = Endpoint::builder()
        .socket(
            "/socket",
            SocketConfig::new(AcceptAll)
                .longpoll_window(Duration::from_secs(600))
                .channel("room:*", Room::default),
        )
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });

    let mut tokens = Vec::new();
    for _ in 0..SESSIONS {
        tokens.push(joined_session(port).await);
    }
    assert_eq!(endpoint.subscriber_count(TOPIC), SESSIONS);
    let live_heap_start = live_heap_bytes();
    let rss_start = rss_bytes();

    let stop = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Peaks::default());
    let sampler = {
        let (stop, peaks) = (stop.clone(), peaks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peaks.sample();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // The clients stop polling; the stream goes on.
    let body = "x".repeat(MESSAGE_BYTES);
    for _ in 0..MESSAGES {
        let payload = Payload::json(&json!({ "body": body }));
        let _ = endpoint.broadcast(TOPIC, "new_msg", payload);
        // Pacing, not synchronisation: lets the sessions run between broadcasts, as
        // they would between messages of real senders.
        tokio::task::yield_now().await;
    }
    wait_until("every session was ended", || {
        endpoint.longpoll_session_count() == 0 && endpoint.subscriber_count(TOPIC) == 0
    })
    .await;
    let rss_after = rss_bytes();
    let live_heap_after = live_heap_bytes();
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();

    let streamed = (SESSIONS * MESSAGES * MESSAGE_BYTES) as u64;
    eprintln!(
        "long-poll byte budget: {SESSIONS} idle sessions, {:.0} MiB streamed to them; live \
         heap start {:.2} MiB, peak {:.2} MiB, after {:.2} MiB; RSS start {:.1} MiB, peak \
         {:.1} MiB, after {:.1} MiB",
        mib(streamed),
        mib(live_heap_start),
        mib(peaks.live_heap()),
        mib(live_heap_after),
        mib(rss_start),
        mib(peaks.rss()),
        mib(rss_after),
    );
    // Each session may hold its budget plus the message that overflowed it; broadcasts
    // not yet handed to the sessions add more (at most the 40 MiB stream, shared, if the
    // sessions were starved throughout). Without the byte budget, 200 MiB are buffered.
    let bound = (SESSIONS * DEFAULT_OUTBOUND_BYTES) as u64 + 64 * MIB;
    assert!(
        peaks.live_heap() < live_heap_start + bound,
        "live heap peaked at {:.1} MiB (start {:.1} MiB)",
        mib(peaks.live_heap()),
        mib(live_heap_start)
    );
    assert!(
        peaks.rss() < rss_start + 2 * bound,
        "RSS peaked at {:.1} MiB (start {:.1} MiB)",
        mib(peaks.rss()),
        mib(rss_start)
    );
    assert!(
        live_heap_after < live_heap_start + MIB,
        "live heap {:.2} MiB after the sessions ended (start {:.2} MiB)",
        mib(live_heap_after),
        mib(live_heap_start)
    );

    // Each client learns it on its next poll: its session is gone (410, a new token).
    for token in &tokens {
        let mut client = Client::connect(Ipv4Addr::LOCALHOST, port).await;
        let answer = client.get(Some(token)).await;
        assert_eq!(answer.status(), 410);
        assert_ne!(answer.token(), Some(token.as_str()));
    }
}
