//! Shared by the long-poll limit tests: a minimal long-poll client that can connect from
//! any loopback address.
#![allow(dead_code)] // each test file uses part of it

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpSocket;

/// Generous: the debug build on a loaded 2-core machine is slow.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One keep-alive HTTP/1.1 connection to 127.0.0.1:`port` from `source` (any 127.x.y.z
/// address works on Linux loopback without configuration).
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    port: u16,
}

/// What a long-poll request answered: the HTTP status and, when the body is JSON, the
/// body (whose `status` is what phoenix.js reads).
pub struct Answer {
    pub http: u16,
    pub body: Option<Value>,
}

impl Answer {
    /// The status phoenix.js sees: the body's, else the HTTP one.
    pub fn status(&self) -> u64 {
        self.body
            .as_ref()
            .and_then(|b| b["status"].as_u64())
            .unwrap_or(u64::from(self.http))
    }

    pub fn token(&self) -> Option<&str> {
        self.body.as_ref()?["token"].as_str()
    }

    pub fn messages(&self) -> Vec<Value> {
        self.body
            .as_ref()
            .and_then(|b| b["messages"].as_array())
            .map(|list| {
                list.iter()
                    .filter_map(|m| serde_json::from_str(m.as_str()?).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Client {
    pub async fn connect(source: Ipv4Addr, port: u16) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((source, 0).into()).unwrap();
        let stream = socket
            .connect((Ipv4Addr::LOCALHOST, port).into())
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender, port }
    }

    /// GET `/socket/longpoll`, with `token` when given.
    pub async fn get(&mut self, token: Option<&str>) -> Answer {
        let path = match token {
            Some(token) => format!("/socket/longpoll?vsn=2.0.0&token={token}"),
            None => "/socket/longpoll?vsn=2.0.0".to_owned(),
        };
        self.send("GET", &path, "").await
    }

    /// POST ndjson `lines` to the session named by `token`.
    pub async fn post(&mut self, token: &str, lines: &str) -> Answer {
        let path = format!("/socket/longpoll?vsn=2.0.0&token={token}");
        self.send("POST", &path, lines).await
    }

    async fn send(&mut self, method: &str, path: &str, body: &str) -> Answer {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{}", self.port))
            .header("content-type", "application/x-ndjson")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let answer = tokio::time::timeout(TIMEOUT, async {
            self.sender.ready().await.unwrap();
            let resp = self.sender.send_request(req).await.unwrap();
            let http = resp.status().as_u16();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            Answer {
                http,
                body: serde_json::from_slice(&body).ok(),
            }
        })
        .await;
        answer.expect("the server answered within the timeout")
    }
}
