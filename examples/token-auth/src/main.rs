//! A typical Phoenix `UserSocket` with `Phoenix.Token` auth, ported to phx-server.
//!
//! The Phoenix original:
//!
//! ```elixir
//! defmodule MyAppWeb.UserSocket do
//!   use Phoenix.Socket
//!
//!   channel "room:*", MyAppWeb.RoomChannel
//!
//!   @impl true
//!   def connect(%{"token" => token}, socket, _connect_info) do
//!     case Phoenix.Token.verify(socket, "user socket", token, max_age: 1_209_600) do
//!       {:ok, user_id} -> {:ok, assign(socket, :user_id, user_id)}
//!       {:error, _reason} -> :error
//!     end
//!   end
//!
//!   def connect(_params, _socket, _connect_info), do: :error
//!
//!   @impl true
//!   def id(socket), do: "user_socket:#{socket.assigns.user_id}"
//! end
//!
//! defmodule MyAppWeb.RoomChannel do
//!   use Phoenix.Channel
//!
//!   def join("room:" <> _room, _payload, socket) do
//!     {:ok, %{user_id: socket.assigns.user_id}, socket}
//!   end
//!
//!   def handle_in("new_msg", %{"body" => body}, socket) do
//!     broadcast!(socket, "new_msg", %{user_id: socket.assigns.user_id, body: body})
//!     {:reply, :ok, socket}
//!   end
//! end
//! ```
//!
//! The page gets its token from the server that rendered it
//! (`Phoenix.Token.sign(conn, "user socket", user.id)`); `--print-token USER_ID` prints
//! one the same way, so any phoenix.js client can connect:
//!
//! ```sh
//! export SECRET_KEY_BASE=$(head -c 48 /dev/urandom | base64)   # the Phoenix app's, if there is one
//! cargo run -p token-auth -- --print-token 42
//! cargo run -p token-auth        # ws://localhost:4000/socket/websocket?token=...
//! ```

use std::time::Duration;

use clap::Parser;
use phx_server::phoenix_token::{MaxAge, Token, VerifyOptions};
use phx_server::{
    Channel, ChannelContext, Connect, ConnectInfo, Connected, Endpoint, HandleResult, JoinResult,
    Params, Payload, Refusal, SocketConfig,
};
use serde_json::{json, Value};

/// The salt both sides agree on (Phoenix's second argument to `sign` and `verify`).
const SALT: &str = "user socket";

#[derive(Parser, Debug)]
#[command(about = "A Phoenix UserSocket with Phoenix.Token auth, on phx-server")]
struct Args {
    /// Print the token `Phoenix.Token.sign(endpoint, "user socket", USER_ID)` would give,
    /// and exit.
    #[arg(long, value_name = "USER_ID")]
    print_token: Option<u64>,
    /// The Phoenix endpoint's `secret_key_base`, verbatim.
    #[arg(long, env = "SECRET_KEY_BASE", hide_env_values = true)]
    secret_key_base: String,
    /// Address to listen on.
    #[arg(long, env = "ADDR", default_value = "127.0.0.1:4000")]
    addr: String,
    /// Oldest token accepted, in seconds (`max_age:` of `Phoenix.Token.verify`), or
    /// `infinity` for no limit.
    #[arg(long, default_value = "1209600", value_parser = parse_max_age)]
    max_age: MaxAge,
}

fn parse_max_age(text: &str) -> Result<MaxAge, String> {
    match text {
        "infinity" => Ok(MaxAge::Infinity),
        seconds => seconds
            .parse()
            .map(|s| MaxAge::Limited(Duration::from_secs(s)))
            .map_err(|_| format!("{seconds:?} is neither seconds nor `infinity`")),
    }
}

/// What every channel of a socket knows about its user: `socket.assigns.user_id`.
struct User {
    id: u64,
}

/// Phoenix's `UserSocket`: `connect/3` verifies the token, `id/1` names the socket.
struct UserSocket {
    tokens: Token,
    max_age: MaxAge,
}

impl Connect for UserSocket {
    type Assigns = User;

    async fn connect(
        &self,
        params: &Params,
        _info: &ConnectInfo,
    ) -> Result<Connected<User>, Refusal> {
        let options = VerifyOptions::default().max_age(self.max_age);
        let user_id = match self.tokens.verify(SALT, params.get_str("token"), options) {
            // The token holds whatever the Phoenix side signed: here an integer id.
            Ok(Value::Number(id)) => id.as_u64().ok_or_else(Refusal::forbidden)?,
            Ok(other) => {
                tracing::info!(data = %other, "socket refused: the token holds no user id");
                return Err(Refusal::forbidden());
            }
            Err(error) => {
                tracing::info!(%error, "socket refused");
                return Err(Refusal::forbidden());
            }
        };
        // `id/1`: `Endpoint::disconnect("user_socket:42")` closes every socket of user 42.
        Ok(Connected::new(User { id: user_id }).with_id(format!("user_socket:{user_id}")))
    }
}

#[derive(Default)]
struct RoomChannel;

impl Channel for RoomChannel {
    type Assigns = User;
    type Info = ();

    async fn join(
        &mut self,
        _topic: &str,
        _: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> JoinResult {
        Ok(json!({ "user_id": ctx.assigns().id }).into())
    }

    async fn handle_in(
        &mut self,
        event: &str,
        payload: Payload,
        ctx: &mut ChannelContext<'_, Self>,
    ) -> HandleResult {
        match (event, payload.parse::<Value>()) {
            ("new_msg", Some(msg)) => {
                // The sender is who the token says, never what the client claims.
                let msg = json!({ "user_id": ctx.assigns().id, "body": msg["body"] });
                let _ = ctx.broadcast("new_msg", msg);
                HandleResult::ok_empty()
            }
            _ => HandleResult::error(json!({ "reason": "unknown event" })),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Without a subscriber phx-server logs nothing; RUST_LOG=debug shows more.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let tokens = Token::new(&args.secret_key_base);
    if let Some(user_id) = args.print_token {
        println!("{}", tokens.sign(SALT, &json!(user_id)));
        return Ok(());
    }
    let socket = SocketConfig::new(UserSocket {
        tokens,
        max_age: args.max_age,
    })
    .channel("room:*", RoomChannel::default);
    let endpoint = Endpoint::builder()
        .secret_key_base(args.secret_key_base)
        .socket("/socket", socket)
        .build();
    let listener = tokio::net::TcpListener::bind(&args.addr).await?;
    let port = listener.local_addr()?.port();
    println!("listening on ws://localhost:{port}/socket");
    // SIGTERM (a deploy) or Ctrl-C: sockets close with 1012 and phoenix.js reconnects.
    let stopper = endpoint.clone();
    tokio::spawn(async move {
        phx_server::shutdown_signal().await;
        stopper.shutdown();
    });
    endpoint.serve(listener).await?;
    Ok(())
}
