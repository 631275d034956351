//! An app's `HttpHandler` finds the TCP peer of each request in its extensions
//! (`PeerAddr`), e.g. to rate-limit logins per client address.

use phx_server::hyper::body::Incoming;
use phx_server::hyper::{Request, Response};
use phx_server::{Body, Endpoint, HttpHandler, PeerAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct EchoPeer;

impl HttpHandler for EchoPeer {
    async fn call(&self, req: Request<Incoming>, _endpoint: &Endpoint) -> Response<Body> {
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .map_or_else(|| "none".to_owned(), |p| p.0.to_string());
        Response::new(Body::from(peer))
    }
}

#[tokio::test]
async fn the_handler_sees_the_tcp_peer() {
    let endpoint = Endpoint::builder().http(EchoPeer).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { endpoint.serve(listener).await });

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let local = stream.local_addr().unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, local.to_string());
}
