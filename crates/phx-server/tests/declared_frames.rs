//! A WebSocket frame costs the server what the client sent of it, never what its header
//! declares: a client that declares a frame of the whole limit (8 MiB) and trickles it
//! used to make the server reserve the declared length at once.
//!
//! Alone in its file: it measures this process's live heap (see tests/memory).

use phx_server::{AcceptAll, SocketConfig};
use tokio::io::AsyncWriteExt;

mod memory;
mod support;
use memory::{live_heap_bytes, mib, rss_bytes};
use support::ws::{connect, heartbeat};
use support::{kernel_queues, start, wait_until};

const CONNECTIONS: usize = 200;
const SENT: usize = 1_000;

/// The header of a masked text frame of `len` bytes.
fn frame_head(len: u64) -> Vec<u8> {
    let mut head = vec![0x81, 0x80 | 127];
    head.extend_from_slice(&len.to_be_bytes());
    head.extend_from_slice(&[7, 7, 7, 7]);
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_trickling_declared_8_mib_frames_hold_what_they_sent() {
    let (_endpoint, port) = start(|| SocketConfig::new(AcceptAll)).await;
    // One connection first, so that what the first one allocates (runtime, tables) is
    // not counted as the cost of the others.
    let mut warm = connect(port, "vsn=2.0.0").await.unwrap();
    heartbeat(&mut warm, "1").await;
    let heap_before = live_heap_bytes();
    let rss_before = rss_bytes();

    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        let ws = connect(port, "vsn=2.0.0").await.unwrap();
        let mut io = ws.into_inner();
        io.write_all(&frame_head(8 << 20)).await.unwrap();
        io.write_all(&[b' '; SENT]).await.unwrap();
        held.push(io);
    }
    // The server has read every byte sent (nothing left unread in the kernel).
    let read = wait_until(|| {
        let queues = kernel_queues(port);
        queues.connections > CONNECTIONS && queues.server_unread == 0
    })
    .await;
    assert!(
        read,
        "the server did not read what was sent: {:?}",
        kernel_queues(port)
    );

    let heap = live_heap_bytes().saturating_sub(heap_before);
    let rss = rss_bytes().saturating_sub(rss_before);
    let per_connection = heap / CONNECTIONS as u64;
    println!(
        "{CONNECTIONS} connections, each an 8 MiB frame declared and {SENT} bytes of it sent: \
         live heap +{:.1} MiB ({per_connection} B per connection, client side included), \
         RSS +{:.1} MiB",
        mib(heap),
        mib(rss)
    );
    // Both ends of each connection are in this process: the test's client and the
    // server's socket, ~20 KB together. Reserving the declared length was 8 MiB each.
    assert!(
        per_connection < 64 * 1024,
        "{per_connection} bytes of live heap per connection"
    );
    // The server is still serving the others.
    heartbeat(&mut warm, "2").await;
    drop(held);
}
