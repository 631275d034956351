//! Clients that do not read cannot grow the server's memory, and one large message never
//! gets healthy readers closed.
//!
//! Memory is this process's RSS (`/proc/self/status`): the server runs in-process and the
//! raw clients hold almost nothing, so growth is the server's. Bounds have wide slack.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload as WsPayload};
use phx_server::{AcceptAll, Channel, ChannelContext, HandleResult, Payload, SocketConfig};
use serde_json::json;

mod support;
use support::start;
use support::ws::{connect, connect_small_window, heartbeat, recv, rss_bytes, send};

const MIB: usize = 1024 * 1024;

/// The tests of this file measure the process's RSS: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Joins reply with ~1 MB (a room's history, exaggerated: a loopback peer's kernel
/// buffers take about 4 MB per socket before the server's own memory is involved);
/// `big` broadcasts the payload.
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
        _c: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
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
        if event == "big" {
            ctx.broadcast("big", p).unwrap();
        }
        HandleResult::ok_empty()
    }
}

fn config() -> SocketConfig {
    SocketConfig::new(AcceptAll)
        .channel("room:*", Room::default)
        .timeout(Duration::from_secs(2))
}

/// Writes `frames` pings without reading; stops when a write stalls (the server stopped
/// reading) or fails (it closed). Returns how many were written.
async fn ping_without_reading(ws: &mut support::ws::Ws, frames: usize) -> usize {
    for sent in 0..frames {
        let ping = Frame::new(true, OpCode::Ping, None, WsPayload::Borrowed(&[b'p'; 125]));
        match tokio::time::timeout(Duration::from_secs(2), ws.write_frame(ping)).await {
            Ok(Ok(())) => {}
            _ => return sent,
        }
    }
    frames
}

#[tokio::test]
async fn pings_to_a_client_that_never_reads_do_not_grow_memory() {
    let _serial = SERIAL.lock().await;
    let (_e, port) = start(config).await;
    let before = rss_bytes();
    let mut clients = Vec::new();
    let mut written = 0;
    for _ in 0..2 {
        let mut ws = connect_small_window(port, "vsn=2.0.0").await.unwrap();
        // 1 000 000 pings of 131 bytes = 131 MB per client if the server kept reading
        // (far over what the kernel buffers between the two hold); the server used to
        // queue one pong per ping outside any bound.
        written += ping_without_reading(&mut ws, 1_000_000).await;
        clients.push(ws);
    }
    let grown = rss_bytes().saturating_sub(before);
    println!("pings written before the server stopped reading: {written}; RSS grew {grown} B");
    assert!(
        written < 2 * 1_000_000,
        "the server stopped reading at some point"
    );
    assert!(grown < 40 * MIB, "RSS grew {grown} bytes");
    // The server closes them (idle: it stopped reading them) and stays healthy.
    drop(clients);
    let mut fresh = connect(port, "vsn=2.0.0").await.unwrap();
    heartbeat(&mut fresh, "1").await;
}

#[tokio::test]
async fn requests_from_clients_that_never_read_are_bounded_by_backpressure() {
    let _serial = SERIAL.lock().await;
    let (_e, port) = start(config).await;
    let before = rss_bytes();
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut ws = connect_small_window(port, "vsn=2.0.0").await.unwrap();
        // Each join answers ~1 MB; 9 joins and a stream of heartbeats per client used to
        // pin what the kernel does not hold, about 5 MB per socket (100 MB in all), kept
        // alive by the heartbeats.
        for room in 0..9 {
            let join = json!([
                room.to_string(),
                room.to_string(),
                format!("room:{room}"),
                "phx_join",
                {}
            ]);
            let text = join.to_string().into_bytes();
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                ws.write_frame(Frame::text(WsPayload::Owned(text))),
            )
            .await;
        }
        clients.push(ws);
    }
    // Keep heartbeating without reading for a while.
    for round in 0..10 {
        for ws in clients.iter_mut() {
            let beat = json!([null, format!("hb{round}"), "phoenix", "heartbeat", {}]);
            let _ = tokio::time::timeout(
                Duration::from_millis(50),
                ws.write_frame(Frame::text(WsPayload::Owned(beat.to_string().into_bytes()))),
            )
            .await;
        }
    }
    let grown = rss_bytes().saturating_sub(before);
    println!("20 clients × 9 joins of ~1 MB replies, never read: RSS grew {grown} B");
    // Reading and callbacks stop once a reply waits in the queue (over half the
    // budget): about two replies per socket (one being written, one queued), 40 MB;
    // before backpressure all nine were, 150 MB and more.
    assert!(grown < 80 * MIB, "RSS grew {grown} bytes");
    drop(clients);
    let mut fresh = connect(port, "vsn=2.0.0").await.unwrap();
    heartbeat(&mut fresh, "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_budget_reaches_every_reader() {
    let _serial = SERIAL.lock().await;
    // The default budget (128 KiB) and a 10 MiB inbound limit: a 9 MB broadcast is far
    // over the budget (and over the fixed 8 MiB queue bound readers used to be closed at).
    let (_e, port) = start(|| {
        config()
            .max_frame_size(10 * MIB)
            .timeout(Duration::from_secs(60))
    })
    .await;
    // Readers read all along, each in its own task (a reader that waits its turn while
    // another takes 27 MB holds its own frames unread: over the budget with nothing
    // written for 3 s, its writer closes it as a slow reader).
    let mut readers = Vec::new();
    for _ in 0..5 {
        let mut ws = connect(port, "vsn=2.0.0").await.unwrap();
        send(&mut ws, json!(["1", "1", "room:big", "phx_join", {}])).await;
        recv(&mut ws).await.unwrap();
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < 3 {
                let frame = recv(&mut ws).await.expect("a healthy reader stays open");
                if frame[3] == "big" {
                    assert_eq!(frame[4]["data"].as_str().map(str::len), Some(9_000_000));
                    got += 1;
                }
            }
            heartbeat(&mut ws, "hb").await;
        }));
    }
    let mut sender = connect(port, "vsn=2.0.0").await.unwrap();
    send(&mut sender, json!(["1", "1", "room:big", "phx_join", {}])).await;
    recv(&mut sender).await.unwrap();
    let data = "d".repeat(9_000_000);
    // Three messages, each sent once the previous one was acknowledged (a sender that
    // floods big messages faster than readers take them makes everyone a slow reader;
    // that is what the budget is for).
    for n in 0..3 {
        let r#ref = format!("b{n}");
        send(
            &mut sender,
            json!(["1", r#ref, "room:big", "big", { "data": data }]),
        )
        .await;
        loop {
            let frame = recv(&mut sender).await.expect("the sender stays open");
            if frame[3] == "phx_reply" && frame[1] == r#ref.as_str() {
                break;
            }
        }
    }
    for reader in readers {
        reader.await.expect("every reader got the three messages");
    }
}
