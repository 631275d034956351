//! The long-poll transport over real HTTP (§7): sessions, tokens, polls, ndjson posts.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use phx_server::{
    Channel, ChannelContext, CheckOrigin, Connect, ConnectInfo, Connected, HandleResult, Params,
    Payload, Refusal, SocketConfig,
};
use serde_json::{json, Value};
use tokio::net::TcpStream;

mod support;
use support::start;

struct TestConnect;

impl Connect for TestConnect {
    /// The `authToken` phoenix.js passed, if any.
    type Assigns = Option<String>;

    async fn connect(
        &self,
        params: &Params,
        info: &ConnectInfo,
    ) -> Result<Connected<Option<String>>, Refusal> {
        if params.get_str("reject") == Some("true") {
            return Err(Refusal::forbidden());
        }
        Ok(Connected {
            assigns: info.auth_token.clone(),
            id: params.get_str("id").map(str::to_owned),
        })
    }
}

#[derive(Default)]
struct Room;

impl Channel for Room {
    type Assigns = Option<String>;
    type Info = ();

    async fn join(
        &mut self,
        _t: &str,
        _p: Payload,
        _c: &mut ChannelContext<'_, Self>,
    ) -> Result<Payload, Payload> {
        Ok(Payload::empty_object())
    }
    async fn handle_in(
        &mut self,
        event: &str,
        p: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match event {
            "echo" => HandleResult::ok(p),
            "token" => HandleResult::ok(Payload::json(&json!({"t": ctx.assigns()}))),
            "bin" => {
                let Payload::Binary(b) = p else {
                    return HandleResult::error(Payload::empty_object());
                };
                HandleResult::ok(Payload::json(&json!({"len": b.len()})))
            }
            "shout" => {
                let _ = ctx.broadcast("shout", p);
                HandleResult::NoReply
            }
            _ => HandleResult::NoReply,
        }
    }
}

/// A 1 s window: a session ends after 1.5 s without a GET. Shorter windows made the
/// suite fail on a loaded machine (a test's next GET came later than the limit).
fn config() -> SocketConfig<Option<String>> {
    SocketConfig::new(TestConnect)
        .longpoll_window(Duration::from_secs(1))
        .channel("room:*", Room::default)
}

struct Resp {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("JSON body, got {:?}", self.body))
    }
}

async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", format!("127.0.0.1:{port}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

async fn open_session(port: u16, query: &str) -> String {
    let r = http(
        port,
        "GET",
        &format!("/socket/longpoll?{query}&vsn=2.0.0&"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], 410);
    assert_eq!(body["messages"], json!([]));
    body["token"].as_str().unwrap().to_owned()
}

fn ndjson() -> [(&'static str, &'static str); 1] {
    [("content-type", "application/x-ndjson")]
}

async fn post(port: u16, token: &str, lines: &str) -> Value {
    http(
        port,
        "POST",
        &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
        &ndjson(),
        lines,
    )
    .await
    .json()
}

/// A GET with `sent` (a dead or forged token) opens a new session, not `old`'s.
async fn assert_new_session(port: u16, sent: &str, old: &str) {
    let path = format!("/socket/longpoll?vsn=2.0.0&token={sent}");
    let body = http(port, "GET", &path, &[], "").await.json();
    assert_eq!(body["status"], 410);
    assert_ne!(body["token"], Value::String(old.to_owned()));
}

/// POSTs a heartbeat until the session answers 410 (it ended), or gives up.
async fn until_gone(port: u16, token: &str, pause: Duration) -> Value {
    let mut status = Value::Null;
    for _ in 0..50 {
        status =
            post(port, token, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]").await["status"].clone();
        if status == 410 {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    status
}

/// Polls until at least `n` messages arrived (each GET waits up to the window).
async fn poll_messages(port: u16, token: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..20 {
        let body = http(
            port,
            "GET",
            &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
            &[],
            "",
        )
        .await
        .json();
        assert!(
            body["status"] == 200 || body["status"] == 204,
            "unexpected {body}"
        );
        for m in body["messages"].as_array().unwrap() {
            got.push(serde_json::from_str(m.as_str().unwrap()).unwrap());
        }
        if got.len() >= n {
            break;
        }
    }
    got
}

#[tokio::test]
async fn first_get_opens_a_session_then_post_and_poll_carry_frames() {
    let (_e, port) = start(config).await;
    let first = http(port, "GET", "/socket/longpoll?vsn=2.0.0&", &[], "").await;
    assert_eq!(
        first.headers["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(first.headers["cache-control"], "no-store");
    let token = first.json()["token"].as_str().unwrap().to_owned();
    let lines = r#"["3","3","room:a","phx_join",{}]
["3","4","room:a","echo",{"n":1}]
[null,"5","nope","x",{}]"#;
    assert_eq!(post(port, &token, lines).await, json!({"status": 200}));
    let got = poll_messages(port, &token, 3).await;
    assert_eq!(
        got,
        vec![
            json!(["3", "3", "room:a", "phx_reply", {"response": {}, "status": "ok"}]),
            json!(["3", "4", "room:a", "phx_reply", {"response": {"n": 1}, "status": "ok"}]),
            json!([null, "5", "nope", "phx_reply", {"response": {"reason": "unmatched topic"}, "status": "error"}]),
        ]
    );
}

#[tokio::test]
async fn an_empty_poll_answers_204_after_the_window() {
    let (_e, port) = start(config).await;
    let token = open_session(port, "").await;
    let started = std::time::Instant::now();
    let body = http(
        port,
        "GET",
        &format!("/socket/longpoll?token={token}"),
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(body, json!({"status": 204, "token": token, "messages": []}));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "held for the window"
    );
}

#[tokio::test]
async fn the_token_header_wins_over_the_query() {
    let (_e, port) = start(config).await;
    let token = open_session(port, "").await;
    let r = http(
        port,
        "POST",
        "/socket/longpoll?vsn=2.0.0&token=bogus",
        &[
            ("content-type", "application/x-ndjson"),
            ("x-phoenix-longpoll-token", &token),
        ],
        r#"["3","3","room:a","phx_join",{}]"#,
    )
    .await;
    assert_eq!(r.json(), json!({"status": 200}));
}

#[tokio::test]
async fn tampered_or_unknown_tokens_never_reach_a_session() {
    let (_e, port) = start(config).await;
    let token = open_session(port, "").await;
    let mut tampered = token.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        post(port, &tampered, r#"["3","3","room:a","phx_join",{}]"#).await,
        json!({"status": 410})
    );
    // A GET with a bad token gets a brand new session.
    assert_new_session(port, &tampered, &token).await;
}

#[tokio::test]
async fn only_the_first_100_lines_are_used_and_base64_lines_are_binary() {
    let (_e, port) = start(config).await;
    let token = open_session(port, "").await;
    let mut lines = vec![r#"["3","3","room:a","phx_join",{}]"#.to_owned()];
    for i in 0..120 {
        lines.push(format!(r#"["3","r{i}","room:a","echo",{{"i":{i}}}]"#));
    }
    assert_eq!(
        post(port, &token, &lines.join("\n")).await,
        json!({"status": 200})
    );
    let got = poll_messages(port, &token, 100).await;
    assert_eq!(got.len(), 100, "1 join reply + 99 echoes");
    assert_eq!(got[99][1], "r98");

    // kind-0 client push: join_ref "3", ref "b", topic "room:a", event "bin", payload 01 02 03
    let mut frame = vec![0u8, 1, 1, 6, 3];
    frame.extend_from_slice(b"3broom:abin");
    frame.extend_from_slice(&[1, 2, 3]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(frame);
    assert_eq!(
        post(port, &token, &format!("{b64}\n\n")).await,
        json!({"status": 200})
    );
    let got = poll_messages(port, &token, 1).await;
    assert_eq!(
        got,
        vec![json!(["3", "b", "room:a", "phx_reply", {"response": {"len": 3}, "status": "ok"}])]
    );
}

#[tokio::test]
async fn refused_connect_and_origin_answer_status_403() {
    let (_e, port) =
        start(|| config().check_origin(CheckOrigin::Allowed(vec!["//example.com".into()]))).await;
    let body = http(
        port,
        "GET",
        "/socket/longpoll?reject=true&vsn=2.0.0",
        &[],
        "",
    )
    .await
    .json();
    assert_eq!(body, json!({"status": 403}));
    let r = http(
        port,
        "GET",
        "/socket/longpoll?vsn=2.0.0",
        &[("origin", "http://evil.com")],
        "",
    )
    .await;
    assert_eq!((r.status, r.json()), (200, json!({"status": 403})));
    // The origin is checked on every method: a POST to a live session and a preflight
    // from another origin are refused too.
    let token = open_session(port, "").await;
    let r = http(
        port,
        "POST",
        &format!("/socket/longpoll?vsn=2.0.0&token={token}"),
        &[("origin", "http://evil.com"), ndjson()[0]],
        "[null,\"1\",\"phoenix\",\"heartbeat\",{}]",
    )
    .await;
    assert_eq!((r.status, r.json()), (200, json!({"status": 403})));
    let r = http(
        port,
        "OPTIONS",
        "/socket/longpoll?vsn=2.0.0",
        &[("origin", "http://evil.com")],
        "",
    )
    .await;
    assert_eq!((r.status, r.json()), (200, json!({"status": 403})));
    let r = http(
        port,
        "OPTIONS",
        "/socket/longpoll?vsn=2.0.0",
        &[("origin", "http://example.com")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "an allowed origin's preflight passes");
    let body = http(port, "GET", "/socket/longpoll?vsn=3.0.0", &[], "")
        .await
        .json();
    assert_eq!(body, json!({"status": 403}));
}

#[tokio::test]
async fn options_preflight_and_other_methods() {
    let (_e, port) = start(config).await;
    let r = http(
        port,
        "OPTIONS",
        "/socket/longpoll",
        &[("access-control-request-headers", "x-phoenix-authtoken")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.headers["access-control-allow-headers"],
        "x-phoenix-authtoken"
    );
    assert_eq!(
        r.headers["access-control-allow-methods"],
        "get, post, options"
    );
    assert_eq!(r.headers["access-control-max-age"], "3600");
    assert_eq!(
        http(port, "PUT", "/socket/longpoll", &[], "").await.status,
        400
    );
}

#[tokio::test]
async fn auth_token_header_reaches_connect() {
    let (_e, port) = start(config).await;
    let body = http(
        port,
        "GET",
        "/socket/longpoll?vsn=2.0.0",
        &[("x-phoenix-authtoken", "tok")],
        "",
    )
    .await
    .json();
    let token = body["token"].as_str().unwrap().to_owned();
    post(
        port,
        &token,
        "[\"3\",\"3\",\"room:a\",\"phx_join\",{}]\n[\"3\",\"4\",\"room:a\",\"token\",{}]",
    )
    .await;
    let got = poll_messages(port, &token, 2).await;
    assert_eq!(got[1][4]["response"], json!({"t": "tok"}));
}

#[tokio::test]
async fn inactive_sessions_end_and_later_posts_get_410() {
    let (_e, port) = start(config).await;
    let token = open_session(port, "").await;
    // No GET for 1.5 windows (1.5 s here): the session ends within 2 × 1.5 windows.
    // POSTs do not count as activity; only GETs do.
    assert_eq!(
        until_gone(port, &token, Duration::from_millis(100)).await,
        410
    );
}

#[tokio::test]
async fn a_session_that_keeps_polling_outlives_its_inactivity_limit() {
    // A 1 s window: the session ends after 1.5 s without a GET. Five back-to-back empty
    // polls span 5 s, more than three times that; each GET counts as activity when it
    // starts and when it ends, so the session lives on and the token stays the same.
    let (_e, port) = start(|| config().longpoll_window(Duration::from_secs(1))).await;
    let token = open_session(port, "").await;
    for round in 0..5 {
        let path = format!("/socket/longpoll?vsn=2.0.0&token={token}");
        let body = http(port, "GET", &path, &[], "").await.json();
        assert_eq!(body["status"], 204, "poll {round}: {body}");
        assert_eq!(body["token"], Value::String(token.clone()), "poll {round}");
    }
    let alive = post(port, &token, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]").await;
    assert_eq!(alive, json!({"status": 200}));
}

#[tokio::test]
async fn a_session_that_buffers_past_its_cap_is_ended() {
    let (_e, port) = start(|| config().longpoll_max_buffered(5)).await;
    let token = open_session(port, "").await;
    let mut lines = vec![r#"["3","3","room:a","phx_join",{}]"#.to_owned()];
    for i in 0..10 {
        lines.push(format!(r#"["3","{i}","room:a","echo",{{}}]"#));
    }
    post(port, &token, &lines.join("\n")).await;
    // 11 frames for a cap of 5: the session ended, so the old token is gone (POST 410)
    // and a GET starts a new session (410 + new token), which phoenix.js rejoins on.
    let after = post(port, &token, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]").await;
    assert_eq!(after, json!({"status": 410}));
    assert_new_session(port, &token, &token).await;
}

#[tokio::test]
async fn disconnect_by_id_ends_a_long_poll_session() {
    // A 60 s window: the session would only end by inactivity after 90 s, far beyond the
    // 5 s this test waits, so the 410 proves the disconnect ended it.
    let (endpoint, port) = start(|| config().longpoll_window(Duration::from_secs(60))).await;
    let token = open_session(port, "id=u9").await;
    let alive = post(port, &token, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]").await;
    assert_eq!(alive, json!({"status": 200}), "the session is live before");
    endpoint.disconnect("u9");
    assert_eq!(
        until_gone(port, &token, Duration::from_millis(100)).await,
        410
    );
}

#[tokio::test]
async fn longpoll_false_leaves_only_the_websocket_route() {
    let (endpoint, port) = start(|| config().longpoll(false)).await;
    for method in ["GET", "POST"] {
        let resp = http(port, method, "/socket/longpoll?vsn=2.0.0", &[], "").await;
        assert_eq!(resp.status, 404, "{method} /socket/longpoll is not routed");
    }
    assert_eq!(
        endpoint.longpoll_session_count(),
        0,
        "no session was opened"
    );
    // The WebSocket route of the same socket still upgrades.
    let ws = support::ws::connect(port, "vsn=2.0.0").await;
    assert!(ws.is_ok(), "the WebSocket transport stays on");
}
