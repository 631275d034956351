//! What a client that never reads costs: its socket holds at most its outbound budget
//! (frames queued and frames its blocked writer took count alike), it is closed with
//! 1013 once it holds more than the budget with nothing written for the grace period,
//! even when nothing more is sent to it, and past the endpoint's total the sockets that
//! hold the most without reading are closed while readers keep everything.
//!
//! Alone in its file: it measures this process's live heap (see tests/memory).

use std::time::Duration;

use fastwebsockets::{Frame, Payload as WsPayload};
use phx_server::{
    AcceptAll, Channel, ChannelContext, Endpoint, HandleResult, Payload, SocketConfig,
};
use serde_json::json;

mod memory;
mod support;
use memory::{live_heap_bytes, mib};
use support::kernel_queues;
use support::wait_until;
use support::ws::{connect, connect_small_window, heartbeat, recv, send, Ws};

/// The test measures the process's heap: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ROOMS: usize = 9;

/// A join replies with ~1 MB (a room's history, exaggerated so that the kernel's socket
/// buffers, ~4 MB per loopback connection, cannot hold it all) and announces the joiner to the room
/// with a 2 KB broadcast (shared by every member).
#[derive(Default)]
struct Room;

static HISTORY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| json!({ "history": "h".repeat(1_000_000) }).to_string());

impl Channel for Room {
    type Assigns = ();
    type Info = ();

    async fn join(
        &mut self,
        _t: &str,
        _p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        let _ = ctx.broadcast("joined", json!({ "who": "x".repeat(2_000) }));
        Ok(Payload::from(
            serde_json::value::RawValue::from_string(HISTORY.clone()).unwrap(),
        ))
    }
    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        if event == "say" {
            let _ = ctx.broadcast("said", p);
        }
        HandleResult::ok_empty()
    }
}

async fn start(total: usize, budget: usize) -> (Endpoint, u16) {
    let endpoint = Endpoint::builder()
        .outbound_bytes_total(total)
        .socket(
            "/socket",
            SocketConfig::new(AcceptAll)
                .channel("room:*", Room::default)
                .outbound_bytes(budget)
                // Longer than the test waits: a non-reader is not closed as idle.
                .timeout(Duration::from_secs(120))
                .max_frame_size(16 << 20),
        )
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = endpoint.clone();
    tokio::spawn(async move { serving.serve(listener).await });
    (endpoint, port)
}

/// Sends the joins of every room and never reads.
async fn non_reader(port: u16, small_window: bool) -> Ws {
    let mut ws = if small_window {
        connect_small_window(port, "vsn=2.0.0").await.unwrap()
    } else {
        connect(port, "vsn=2.0.0").await.unwrap()
    };
    for room in 0..ROOMS {
        let join = json!([
            room.to_string(),
            room.to_string(),
            format!("room:{room}"),
            "phx_join",
            {}
        ]);
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            ws.write_frame(Frame::text(WsPayload::Owned(join.to_string().into_bytes()))),
        )
        .await;
    }
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_reader_over_its_budget_is_closed_even_when_nothing_more_is_sent_to_it() {
    let _serial = SERIAL.lock().await;
    const CLIENTS: usize = 20;
    let (endpoint, port) = start(
        phx_server::DEFAULT_OUTBOUND_BYTES_TOTAL,
        phx_server::DEFAULT_OUTBOUND_BYTES,
    )
    .await;
    let mut probe = connect(port, "vsn=2.0.0").await.unwrap();
    heartbeat(&mut probe, "0").await;
    let heap_before = live_heap_bytes();

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(non_reader(port, false).await);
    }
    let settled = wait_until(|| kernel_queues(port).server_unread == 0).await;
    assert!(settled);
    let heap = live_heap_bytes().saturating_sub(heap_before);
    let kernel = kernel_queues(port);
    println!(
        "{CLIENTS} non-readers × {ROOMS} joins of 1 MB replies, once the server read \
         their joins: live heap +{:.1} MiB ({} B each, the test's clients included); \
         kernel: {:.1} MiB in the server's send queues and {:.1} MiB in the clients' \
         receive queues ({} B each)",
        mib(heap),
        heap / CLIENTS as u64,
        mib(kernel.server_send),
        mib(kernel.client_unread),
        (kernel.server_send + kernel.client_unread) / CLIENTS as u64,
    );
    // Nothing more is sent to them. Those that hold more than the budget with nothing
    // written for the grace period (3 s) are closed by their own writers; they used to
    // stay until the idle timeout (60 s by default, 120 s here), pinning their frames.
    let started = std::time::Instant::now();
    let closed = wait_until(|| endpoint.socket_count() == 1).await;
    println!(
        "closed after {:?}; live heap then +{:.1} MiB",
        started.elapsed(),
        mib(live_heap_bytes().saturating_sub(heap_before))
    );
    assert!(
        closed,
        "{} non-readers still open after 30 s",
        endpoint.socket_count() - 1
    );
    heartbeat(&mut probe, "1").await;
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_total_the_non_readers_are_closed_and_the_readers_keep_everything() {
    let _serial = SERIAL.lock().await;
    // A per-socket budget too large to matter here: only the total closes anyone.
    let (endpoint, port) = start(8 << 20, 256 << 20).await;
    let mut readers = Vec::new();
    for _ in 0..5 {
        let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
        send(&mut ws, json!(["1", "1", "room:big", "phx_join", {}])).await;
        recv(&mut ws).await.unwrap();
        readers.push(ws);
    }
    let mut stuck = Vec::new();
    for _ in 0..10 {
        let mut ws = connect_small_window(port, "vsn=2.0.0").await.unwrap();
        send(&mut ws, json!(["1", "1", "room:big", "phx_join", {}])).await;
        stuck.push(ws);
    }
    let mut sender = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut sender, json!(["1", "1", "room:big", "phx_join", {}])).await;
    recv(&mut sender).await.unwrap();
    // 40 distinct 500 KB broadcasts: 20 MB, each frame held once by every non-reader
    // (the readers write it within milliseconds), far over the 8 MiB total.
    const MESSAGES: usize = 40;
    let reading = readers
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut got = 0;
                while got < MESSAGES {
                    let frame = recv(&mut ws).await.expect("a reader stays open");
                    if frame[3] == "said" {
                        got += 1;
                    }
                }
                heartbeat(&mut ws, "hb").await;
                got
            })
        })
        .collect::<Vec<_>>();
    for n in 0..MESSAGES {
        let r#ref = format!("s{n}");
        let data = n.to_string().repeat(500_000 / n.to_string().len());
        send(
            &mut sender,
            json!(["1", r#ref, "room:big", "say", { "data": data }]),
        )
        .await;
        loop {
            let frame = recv(&mut sender).await.expect("the sender stays open");
            if frame[3] == "phx_reply" && frame[1] == r#ref.as_str() {
                break;
            }
        }
    }
    for reader in reading {
        assert_eq!(
            reader.await.unwrap(),
            MESSAGES,
            "every message reached every reader"
        );
    }
    // The non-readers were closed (5 readers and the sender remain).
    let shed = wait_until(|| endpoint.socket_count() == 6).await;
    assert!(shed, "{} sockets open", endpoint.socket_count());
    drop(stuck);
}
