//! The HTTP upgrade (RFC 6455 section 4.2), read with httparse: a head of
//! bounded size, our path, version 13, a key, and the `mqtt` subprotocol.
//! Ours rather than tungstenite's so that the stream comes back raw, with
//! whatever the client sent past the head, for our own frame reader.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The one subprotocol we speak; clients must offer it [MQTT-6.0.0-3] and
/// we must answer with it [MQTT-6.0.0-4].
const SUBPROTOCOL: &str = "mqtt";

/// The most a request's head may take; a browser's is well under 2 KiB.
const HEAD_MAX_BYTES: usize = 8 * 1024;
const HEADERS_MAX: usize = 64;

/// The stream after a 101, and what the client sent past its request.
pub struct Upgraded<T> {
    pub stream: T,
    pub leftover: Vec<u8>,
}

/// Reads the client's upgrade request and answers it: 101, or a refusal
/// (and an error for the connection's log).
pub async fn accept<T>(mut stream: T, path: &str) -> io::Result<Upgraded<T>>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (answer, leftover) = loop {
        let room = (HEAD_MAX_BYTES - head.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the WebSocket upgrade",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head) {
            Ok(httparse::Status::Complete(size)) => {
                break (check(&request, path), head[size..].to_vec())
            }
            Ok(httparse::Status::Partial) if head.len() < HEAD_MAX_BYTES => {}
            Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
                break (
                    Err((431, "request header fields too large".to_owned())),
                    Vec::new(),
                )
            }
            Err(error) => break (Err((400, format!("bad HTTP request: {error}"))), Vec::new()),
        }
    };
    match answer {
        Ok(key) => {
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\n\
                 Upgrade: websocket\r\n\
                 Connection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\
                 Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            stream.write_all(response.as_bytes()).await?;
            stream.flush().await?;
            Ok(Upgraded { stream, leftover })
        }
        Err((status, why)) => {
            let response = format!(
                "HTTP/1.1 {status} {}\r\n\
                 Content-Type: text/plain\r\n\
                 Content-Length: {}\r\n\
                 Connection: close\r\n\r\n{why}",
                reason(status),
                why.len()
            );
            // The client is refused either way; a failed write adds nothing.
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("WebSocket upgrade refused with {status}: {why}"),
            ))
        }
    }
}

/// The request's key, if the upgrade may go ahead; else the status and
/// why.
fn check(request: &httparse::Request<'_, '_>, path: &str) -> Result<String, (u16, String)> {
    if request.method != Some("GET") || request.version != Some(1) {
        return Err((400, "a WebSocket upgrade is an HTTP/1.1 GET".to_owned()));
    }
    let target = request.path.unwrap_or("");
    let asked = target.split('?').next().unwrap_or("");
    if asked != path {
        return Err((404, format!("no WebSocket at {asked}")));
    }
    let values = |name| values(request, name);
    if !values("Upgrade").any(|token| token.eq_ignore_ascii_case("websocket"))
        || !values("Connection").any(|token| token.eq_ignore_ascii_case("upgrade"))
    {
        return Err((400, "not a WebSocket upgrade".to_owned()));
    }
    if !values("Sec-WebSocket-Version").any(|version| version == "13") {
        return Err((400, "WebSocket version 13 only".to_owned()));
    }
    let Some(key) = values("Sec-WebSocket-Key").next() else {
        return Err((400, "no Sec-WebSocket-Key".to_owned()));
    };
    if !values("Sec-WebSocket-Protocol").any(|name| name == SUBPROTOCOL) {
        return Err((
            400,
            "the client must offer the \"mqtt\" subprotocol".to_owned(),
        ));
    }
    Ok(key.to_owned())
}

fn reason(status: u16) -> &'static str {
    match status {
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    }
}

/// The comma-separated values of the headers called `name`, trimmed.
fn values<'a>(
    request: &'a httparse::Request<'_, '_>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    request
        .headers
        .iter()
        .filter(move |header| header.name.eq_ignore_ascii_case(name))
        .filter_map(|header| std::str::from_utf8(header.value).ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}
