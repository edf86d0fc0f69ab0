//! What carries MQTT's bytes on a connection: the socket itself, or a
//! layer around it. A transport is opened in the connection's own task,
//! within its connect timeout, so a client slow to finish a handshake
//! holds up no one else; after that the connection reads and writes MQTT
//! bytes the same way whatever carries them, and so does the simulation,
//! over turmoil's streams.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::{Config, ListenerConfig, Protocol};

mod websocket;
pub use websocket::WebSocketBytes;

/// A listener's way of opening its connections.
#[derive(Debug)]
pub struct Transport {
    /// Set on a WebSocket listener; plain MQTT otherwise.
    websocket: Option<websocket::Upgrade>,
}

/// A connection's byte stream, once its transport is open.
#[derive(Debug)]
pub enum Stream<S> {
    Plain(S),
    /// Boxed: a plain connection should not carry its size.
    WebSocket(Box<WebSocketBytes<S>>),
}

impl Transport {
    pub fn new(listener: &ListenerConfig, config: &Config) -> Result<Transport, String> {
        let websocket = (listener.protocol == Protocol::Websockets).then(|| {
            websocket::Upgrade::new(listener.websocket_path(), config.packet_size_max_bytes)
        });
        Ok(Transport { websocket })
    }

    /// MQTT straight on the socket.
    pub fn plain() -> Transport {
        Transport { websocket: None }
    }

    /// Runs the transport's handshake on a new connection.
    pub async fn open<S>(&self, stream: S) -> io::Result<Stream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match &self.websocket {
            None => Ok(Stream::Plain(stream)),
            Some(upgrade) => Ok(Stream::WebSocket(Box::new(upgrade.accept(stream).await?))),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.websocket {
            None => f.write_str("mqtt"),
            Some(upgrade) => write!(f, "websockets at {}", upgrade.path()),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::WebSocket(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::WebSocket(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::WebSocket(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::WebSocket(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
