//! MQTT over WebSocket (MQTT 5.0 and 3.1.1, section 6): an HTTP upgrade on
//! one path with the `mqtt` subprotocol, then MQTT's bytes in binary
//! messages, split anywhere. `WebSocketBytes` turns the messages back into
//! a byte stream, so the connection reads and writes it as it does a
//! socket. It is generic over what carries it, so WebSocket over TLS is
//! this layer over the TLS one.
//!
//! tungstenite does the protocol (framing, masks, ping and close); the
//! adapter is ours because the crates that offer one (ws_stream_tungstenite)
//! sit on futures' I/O traits, report a text frame out of band, and leave a
//! written message in tungstenite's buffer until a flush, while the
//! connection's session loop writes and never flushes.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The one subprotocol we speak; clients must offer it [MQTT-6.0.0-3] and
/// we must answer with it [MQTT-6.0.0-4].
const SUBPROTOCOL: &str = "mqtt";

/// The most we put in one outgoing message: a batch larger than this goes
/// in several (MQTT bytes may split anywhere), so that the copy a message
/// takes, and the buffer tungstenite keeps for it, stay small.
const WRITE_MESSAGE_MAX_BYTES: usize = 16 * 1024;

/// tungstenite's read buffer, allocated for every connection at once: an
/// idle client needs little, and a frame's payload is reserved when its
/// header arrives.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Room in tungstenite's write buffer beyond one message, for the pong or
/// close frame it may queue beside it.
const CONTROL_FRAMES_BYTES: usize = 512;

/// A WebSocket listener's upgrade: its path and its limits.
#[derive(Debug)]
pub struct Upgrade {
    path: String,
    config: WebSocketConfig,
}

impl Upgrade {
    /// Upgrades on `path`; a client's frame, or message, may not be longer
    /// than the largest packet it may send: the limit is read from the
    /// frame's header, before its payload is buffered.
    pub fn new(path: &str, message_max_bytes: usize) -> Upgrade {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            // Every message goes to the socket as it is sent; the adapter
            // holds back the next until it is out.
            .write_buffer_size(0)
            .max_write_buffer_size(WRITE_MESSAGE_MAX_BYTES + CONTROL_FRAMES_BYTES)
            .max_frame_size(Some(message_max_bytes))
            .max_message_size(Some(message_max_bytes));
        Upgrade {
            path: path.to_owned(),
            config,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Answers the client's HTTP upgrade request, or refuses it.
    // The refusal's type is tungstenite's, for its callback.
    #[allow(clippy::result_large_err)]
    pub async fn accept<T>(&self, stream: T) -> io::Result<WebSocketBytes<T>>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let check = |request: &Request, response: Response| check(&self.path, request, response);
        let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(self.config))
            .await
            .map_err(|error| match error {
                WsError::Http(response) => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "WebSocket upgrade refused with {}: {}",
                        response.status(),
                        String::from_utf8_lossy(response.body().as_deref().unwrap_or(b""))
                    ),
                ),
                error => io_error(error),
            })?;
        Ok(WebSocketBytes::new(ws))
    }
}

/// The upgrade goes ahead on our path, with our subprotocol.
#[allow(clippy::result_large_err)]
fn check(path: &str, request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() != path {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            format!("no WebSocket at {}", request.uri().path()),
        ));
    }
    let offered = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|name| name.trim() == SUBPROTOCOL);
    if !offered {
        return Err(refusal(
            StatusCode::BAD_REQUEST,
            "the client must offer the \"mqtt\" subprotocol".to_owned(),
        ));
    }
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(response)
}

fn refusal(status: StatusCode, why: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why));
    *response.status_mut() = status;
    response
}

/// A WebSocket connection as a byte stream: reads hand out the bytes of
/// the binary messages received, in order; each write sends one binary
/// message.
pub struct WebSocketBytes<T> {
    ws: WebSocketStream<T>,
    /// What is left of the message being read.
    reading: Bytes,
    /// A message was handed to tungstenite and is not yet all on the
    /// socket. The connection's session loop does not flush, so reads
    /// and the next write drive it out.
    unflushed: bool,
    /// Our close frame has been queued.
    closing: bool,
}

impl<T> std::fmt::Debug for WebSocketBytes<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketBytes")
            .field("reading", &self.reading.len())
            .field("unflushed", &self.unflushed)
            .finish()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocketBytes<T> {
    fn new(ws: WebSocketStream<T>) -> WebSocketBytes<T> {
        WebSocketBytes {
            ws,
            reading: Bytes::new(),
            unflushed: false,
            closing: false,
        }
    }

    fn ws(&mut self) -> Pin<&mut WebSocketStream<T>> {
        Pin::new(&mut self.ws)
    }

    /// Drives an unflushed message towards the socket.
    fn poll_unflushed(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.unflushed {
            ready!(self.ws().poll_flush(cx)).map_err(io_error)?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// The next binary message, or None at the end of the stream. A text
    /// message ends the connection [MQTT-6.0.0-1]; pings are answered by
    /// tungstenite, on this read or the next.
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            let message = match ready!(self.ws().poll_next(cx)) {
                None => return Poll::Ready(Ok(None)),
                Some(Ok(message)) => message,
                // A client gone without a close is gone all the same, as
                // over TCP: the end of the stream.
                Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                    return Poll::Ready(Ok(None))
                }
                Some(Err(error)) => return Poll::Ready(Err(self.fail(cx, error))),
            };
            match message {
                Message::Binary(bytes) if !bytes.is_empty() => return Poll::Ready(Ok(Some(bytes))),
                Message::Text(_) => {
                    let error = io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket frame: MQTT goes in binary frames",
                    );
                    self.close(cx, CloseCode::Unsupported, "MQTT goes in binary frames");
                    return Poll::Ready(Err(error));
                }
                // The stream ends once tungstenite has sent its reply to a
                // close: the next read returns None.
                Message::Binary(_)
                | Message::Ping(_)
                | Message::Pong(_)
                | Message::Close(_)
                | Message::Frame(_) => {}
            }
        }
    }

    /// Tells the client, if we still can, why its connection ends, and
    /// returns the error for the connection's log.
    fn fail(&mut self, cx: &mut Context<'_>, error: WsError) -> io::Error {
        let (code, why) = match &error {
            WsError::Capacity(_) => (CloseCode::Size, "frame or message too large"),
            WsError::Protocol(_) | WsError::Utf8(_) => (CloseCode::Protocol, "protocol error"),
            _ => return io_error(error),
        };
        self.close(cx, code, why);
        io_error(error)
    }

    /// Queues a close frame and tries once to send it; the connection is
    /// ending, so a client too slow to take it is not waited for here.
    fn close(&mut self, cx: &mut Context<'_>, code: CloseCode, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.closing = true;
        if self.ws().start_send(Message::Close(Some(frame))).is_ok() {
            self.unflushed = true;
            let _ = self.poll_unflushed(cx);
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for WebSocketBytes<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Our last message goes out while we wait for the client: nothing
        // else may write again for a while. Its waker is this task's.
        if let Poll::Ready(Err(error)) = this.poll_unflushed(cx) {
            return Poll::Ready(Err(error));
        }
        if this.reading.is_empty() {
            match ready!(this.poll_message(cx))? {
                Some(message) => this.reading = message,
                None => return Poll::Ready(Ok(())),
            }
        }
        let n = this.reading.len().min(buf.remaining());
        buf.put_slice(&this.reading.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WebSocketBytes<T> {
    /// Sends up to `WRITE_MESSAGE_MAX_BYTES` of `buf` as one binary
    /// message once the previous one is out, so a client that does not
    /// read holds up our writes as a socket would.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_unflushed(cx))?;
        ready!(this.ws().poll_ready(cx)).map_err(io_error)?;
        let n = buf.len().min(WRITE_MESSAGE_MAX_BYTES);
        let message = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
        this.ws().start_send(message).map_err(io_error)?;
        this.unflushed = true;
        // Sent now if the socket takes it; if not, the next read or write
        // finishes it. Either way the bytes are ours to deliver.
        if let Poll::Ready(Err(error)) = this.poll_unflushed(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.unflushed = true;
        this.poll_unflushed(cx)
    }

    /// The closing handshake: our close frame, then (as reads continue)
    /// the client's reply. The code says a normal closure: why MQTT ended
    /// the connection, a 5.0 client has been told in its DISCONNECT.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            // An error means a close is already under way, or the
            // connection is gone: the close below finishes or reports it.
            let _ = this.ws().start_send(Message::Close(Some(frame)));
        }
        this.ws().poll_close(cx).map_err(io_error)
    }
}

/// tungstenite's errors as I/O errors: a closed connection is the end of
/// the stream, a peer's mistake is invalid data.
fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(error) => error,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::NotConnected, "WebSocket closed")
        }
        WsError::Capacity(error) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("WebSocket frame or message over the packet size limit: {error}"),
        ),
        error => io::Error::new(io::ErrorKind::InvalidData, format!("WebSocket: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// A pair over an in-memory pipe of `pipe_bytes`: our end as a server,
    /// the other a plain tungstenite client.
    async fn pair(
        pipe_bytes: usize,
    ) -> (
        WebSocketBytes<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (ours, theirs) = tokio::io::duplex(pipe_bytes);
        let config = Upgrade::new("/mqtt", 1 << 20).config;
        let server = WebSocketStream::from_raw_socket(ours, Role::Server, Some(config)).await;
        let client = WebSocketStream::from_raw_socket(theirs, Role::Client, None).await;
        (WebSocketBytes::new(server), client)
    }

    /// The connection writes and then only reads, never flushing: a
    /// message the pipe could not take at once still goes out whole.
    #[tokio::test]
    async fn a_write_too_big_for_the_pipe_finishes_while_we_read() {
        let (mut server, mut client) = pair(256).await;
        let batch: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        let written = server.write(&batch).await.unwrap();
        assert_eq!(written, batch.len(), "one message takes the whole batch");
        let mut byte = [0u8; 1];
        let reading = server.read(&mut byte);
        let received = async {
            let message = client.next().await.unwrap().unwrap();
            futures_util::SinkExt::send(&mut client, Message::binary(vec![7u8]))
                .await
                .unwrap();
            message
        };
        let both = async { tokio::join!(reading, received) };
        let (read, message) = tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("the message is delivered while we only read");
        assert_eq!(message, Message::binary(batch));
        assert_eq!((read.unwrap(), byte), (1, [7]));
    }

    /// Reads hand out a message's bytes as the reader's buffer allows,
    /// then the next message's.
    #[tokio::test]
    async fn reads_cut_messages_to_the_readers_buffer() {
        let (mut server, mut client) = pair(1 << 16).await;
        for message in [&b"abcde"[..], b"fg"] {
            futures_util::SinkExt::send(&mut client, Message::binary(message.to_vec()))
                .await
                .unwrap();
        }
        let mut three = [0u8; 3];
        let mut got = Vec::new();
        while got.iter().map(Vec::len).sum::<usize>() < 7 {
            let n = server.read(&mut three).await.unwrap();
            got.push(three[..n].to_vec());
        }
        assert_eq!(got, [&b"abc"[..], b"de", b"fg"]);
        drop(client);
        assert_eq!(server.read(&mut three).await.unwrap(), 0, "the end");
    }
}
