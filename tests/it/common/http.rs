//! An HTTP/1.1 client for the broker's HTTP side (`Server::serve_http`):
//! hyper's own client connection, one request per connection.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::within;

/// A response's status, content type and body.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, Method::GET, path).await
}

pub async fn request(addr: SocketAddr, method: Method, path: &str) -> Reply {
    within(&format!("{method} {path}"), async {
        let stream = TcpStream::connect(addr)
            .await
            .expect("the HTTP listener accepts");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 handshake");
        let driver = tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string())
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let response = sender.send_request(request).await.expect("a response");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("an ASCII content type").to_owned())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("the whole body")
            .to_bytes();
        drop(sender);
        let _ = driver.await;
        Reply {
            status,
            content_type,
            body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
        }
    })
    .await
}
