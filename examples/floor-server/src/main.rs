//! The floor for `phx-bench fanout`: accepts WebSocket upgrades on any path, answers any
//! text frame that mentions `phx_join` with a fixed ok reply (so the same client code can
//! "join"), and on `POST /test/broadcast?topic=T&event=E` encodes `[null,null,T,E,body]`
//! once into a complete WebSocket frame and queues that same `Bytes` to every socket.
//! No routing, no channels, no serializer choice: what remains is the cost of moving
//! bytes, which is what our server is measured against.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 4020)]
    port: u16,
}

/// Every connected socket's writer queue. Unbounded: the floor never drops a frame, so a
/// run with more messages than a bounded queue holds still delivers them all (phx-rs
/// bounds its queue at 8 MiB and closes a socket that exceeds it).
type Sockets = Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>;

fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut head = [0u8; 14];
    let size = Frame::new(true, opcode, None, Payload::Borrowed(payload)).fmt_head(&mut head);
    let mut out = BytesMut::with_capacity(size + payload.len());
    out.extend_from_slice(&head[..size]);
    out.extend_from_slice(payload);
    out.freeze()
}

fn param<'a>(query: &'a str, key: &str) -> &'a str {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
}

async fn handle(mut req: Request<Incoming>, sockets: Sockets) -> Response<Full<Bytes>> {
    if fastwebsockets::upgrade::is_upgrade_request(&req) {
        let Ok((resp, upgrade)) = fastwebsockets::upgrade::upgrade(&mut req) else {
            return Response::builder()
                .status(400)
                .body(Full::default())
                .expect("static response");
        };
        tokio::spawn(async move {
            let Ok(ws) = upgrade.await else { return };
            // Back to the raw TcpStream for a lock-free split (STACK.md §1.1). Bytes a
            // client pipelined behind its upgrade request (`read_buf`) would be lost;
            // clients wait for the 101 before sending, and hyper is always given a
            // TcpStream here, so the downcast cannot fail.
            let (mut read, mut write) = ws
                .into_inner()
                .into_inner()
                .downcast::<TokioIo<tokio::net::TcpStream>>()
                .map(|parts| parts.io.into_inner().into_split())
                .map(|(r, w)| {
                    (
                        fastwebsockets::after_handshake_split(
                            r,
                            tokio::io::sink(),
                            fastwebsockets::Role::Server,
                        )
                        .0,
                        w,
                    )
                })
                .expect("plain TCP under hyper");
            let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
            sockets.lock().expect("lock").push(tx.clone());
            tokio::spawn(async move {
                // Coalesce whatever is queued into one write, as phx-rs does: the floor
                // must be the cheapest way to move these bytes, not a strawman.
                let mut batch = Vec::new();
                let mut buf = Vec::new();
                while rx.recv_many(&mut batch, 256).await > 0 {
                    let result = if batch.len() == 1 {
                        write.write_all(&batch[0]).await
                    } else {
                        buf.clear();
                        for bytes in &batch {
                            buf.extend_from_slice(bytes);
                        }
                        write.write_all(&buf).await
                    };
                    batch.clear();
                    if result.is_err() {
                        break;
                    }
                }
            });
            let join_ok = frame(
                OpCode::Text,
                br#"[null,null,"floor","phx_reply",{"response":{},"status":"ok"}]"#,
            );
            loop {
                let frame = read
                    .read_frame(&mut |_f: Frame<'static>| {
                        std::future::ready(Ok::<(), std::io::Error>(()))
                    })
                    .await;
                match frame {
                    Ok(f)
                        if f.opcode == OpCode::Text
                            && f.payload.windows(8).any(|w| w == b"phx_join") =>
                    {
                        // Echo the join's ref so clients can match the reply.
                        let text = String::from_utf8_lossy(&f.payload);
                        let reply = match serde_json::from_str::<Vec<serde_json::Value>>(&text) {
                            Ok(v) if v.len() >= 3 => frame_reply(&v),
                            _ => join_ok.clone(),
                        };
                        let _ = tx.send(reply);
                    }
                    Ok(f) if f.opcode == OpCode::Close => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        return resp.map(|_| Full::default());
    }
    if req.uri().path() == "/test/broadcast" {
        let query = req.uri().query().unwrap_or("").to_owned();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut text = Vec::with_capacity(body.len() + 64);
        text.extend_from_slice(b"[null,null,");
        serde_json::to_writer(&mut text, param(&query, "topic")).expect("string");
        text.push(b',');
        serde_json::to_writer(&mut text, param(&query, "event")).expect("string");
        text.push(b',');
        text.extend_from_slice(&body);
        text.push(b']');
        let encoded = frame(OpCode::Text, &text);
        let mut list = sockets.lock().expect("lock");
        list.retain(|tx| tx.send(encoded.clone()).is_ok());
        return Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::default())
            .expect("static response");
    }
    Response::builder()
        .status(404)
        .body(Full::default())
        .expect("static response")
}

fn frame_reply(join: &[serde_json::Value]) -> Bytes {
    let reply = serde_json::json!([join[0], join[1], join[2], "phx_reply", {"response": {}, "status": "ok"}]);
    frame(OpCode::Text, reply.to_string().as_bytes())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    println!("floor-server listening on ws://{}", listener.local_addr()?);
    let sockets: Sockets = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let sockets = sockets.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let sockets = sockets.clone();
                async move { Ok::<_, Infallible>(handle(req, sockets).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}
