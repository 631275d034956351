//! A room channel that replies, broadcasts and tracks presence, and a page that talks
//! to it with phoenix.js. Run `npm ci` in examples/hello once, then `cargo run -p hello`,
//! and open http://localhost:4000/ in two tabs.

use phx_server::hyper::header::{HeaderValue, CONTENT_TYPE};
use phx_server::hyper::{body::Incoming, Request, Response, StatusCode};
use phx_server::{
    shutdown_signal, status_response, Body, Channel, ChannelContext, Connect, ConnectInfo,
    Connected, Endpoint, HandleResult, HttpHandler, JoinResult, Params, Payload, Refusal,
    SocketConfig,
};
use serde_json::{json, Value};

/// Phoenix's `UserSocket`: a connection says who it is (`?name=...`), and every channel
/// of the socket reads the name from its assigns.
struct UserSocket;

impl Connect for UserSocket {
    type Assigns = String;

    async fn connect(
        &self,
        params: &Params,
        _info: &ConnectInfo,
    ) -> Result<Connected<String>, Refusal> {
        match params.get_str("name") {
            Some(name) if !name.is_empty() => Ok(Connected::new(name.to_owned())),
            _ => Err(Refusal::forbidden()),
        }
    }
}

/// What the channel sends itself from `join` (Phoenix's `send(self(), :after_join)`).
struct AfterJoin;

#[derive(Default)]
struct RoomChannel;

impl Channel for RoomChannel {
    type Assigns = String;
    type Info = AfterJoin;

    async fn join(
        &mut self,
        _topic: &str,
        _payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        ctx.send_info(AfterJoin);
        Ok(json!({}).into())
    }

    // Runs right after the join reply: track this user, then push the whole list.
    async fn handle_info(
        &mut self,
        _: AfterJoin,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        let _ = ctx.presence().track(ctx.assigns(), json!({}));
        let _ = ctx.push("presence_state", ctx.presence().list());
        HandleResult::noreply()
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match (event, payload.parse::<Value>()) {
            ("new_msg", Some(msg)) => {
                let msg = json!({ "user": ctx.assigns(), "body": msg["body"] });
                let _ = ctx.broadcast("new_msg", msg);
                HandleResult::ok(json!({ "sent": true }))
            }
            _ => HandleResult::error(json!({ "reason": "unknown event" })),
        }
    }
}

/// phoenix.js exactly as npm installed it.
const PHOENIX_JS: &str = "node_modules/phoenix/priv/static/phoenix.mjs";

/// The page and its script, and phoenix.js.
struct Page;

impl HttpHandler for Page {
    async fn call(&self, req: Request<Incoming>, _: &Endpoint) -> Response<Body> {
        let (file, content_type) = match req.uri().path() {
            "/" => ("index.html", "text/html; charset=utf-8"),
            "/hello.js" => ("hello.js", "text/javascript"),
            "/phoenix.mjs" => (PHOENIX_JS, "text/javascript"),
            _ => return status_response(StatusCode::NOT_FOUND, "not found"),
        };
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let Ok(bytes) = tokio::fs::read(path).await else {
            return status_response(StatusCode::NOT_FOUND, "not found (did `npm ci` run?)");
        };
        let mut response = Response::new(Body::from(bytes));
        let content_type = HeaderValue::from_static(content_type);
        response.headers_mut().insert(CONTENT_TYPE, content_type);
        response
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let socket = SocketConfig::new(UserSocket).channel("room:*", RoomChannel::default);
    let endpoint = Endpoint::builder()
        .socket("/socket", socket)
        .http(Page)
        .build();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:4000".into());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let port = listener.local_addr()?.port();
    println!("listening on http://localhost:{port}/");
    // SIGTERM (systemd, Docker, Kubernetes) or Ctrl-C: close the sockets with 1012,
    // which phoenix.js answers by reconnecting, then return.
    let stopper = endpoint.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.shutdown();
    });
    endpoint.serve(listener).await
}
