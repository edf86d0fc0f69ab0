//! What carries the load client's MQTT bytes: plain TCP, TLS (rustls with
//! ring, the certificate of [`crate::tls::files`]) or WebSocket (binary
//! messages, subprotocol `mqtt`, tokio-tungstenite). Each is split into a
//! read half and a write half so that a publisher reads its PUBACKs in one
//! task while it writes in another; TCP splits for free, TLS and WebSocket
//! through a lock both halves share, the same for every broker.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::client::timed;
use crate::tls;

/// Which of a broker's listeners a client connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Tls,
    /// On the path [`WS_PATH`].
    Ws,
}

/// Where tern's WebSocket listener answers (its default); mosquitto and
/// rumqttd answer on any path.
pub const WS_PATH: &str = "/mqtt";

type Tls = TlsStream<TcpStream>;
type Ws = WebSocketStream<TcpStream>;

/// The read half of a connection.
pub enum Source {
    Tcp(OwnedReadHalf),
    Tls(ReadHalf<Tls>),
    Ws(SplitStream<Ws>),
}

/// The write half of a connection.
pub enum Writer {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<Tls>),
    Ws(SplitSink<Ws, Message>),
}

/// Opens a connection over `transport` to `addr`, with nothing of MQTT
/// sent on it yet.
pub async fn open(transport: Transport, addr: SocketAddr) -> io::Result<(Source, Writer)> {
    let tcp = timed(TcpStream::connect(addr)).await?;
    // Our writes are already batched; Nagle would only add latency.
    tcp.set_nodelay(true)?;
    Ok(match transport {
        Transport::Tcp => {
            let (read, write) = tcp.into_split();
            (Source::Tcp(read), Writer::Tcp(write))
        }
        Transport::Tls => {
            let name = ServerName::from(addr.ip());
            let connector = TlsConnector::from(tls::client());
            let stream = timed(connector.connect(name, tcp)).await?;
            let (read, write) = tokio::io::split(stream);
            (Source::Tls(read), Writer::Tls(write))
        }
        Transport::Ws => {
            let mut request = format!("ws://{addr}{WS_PATH}")
                .into_client_request()
                .map_err(io::Error::other)?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
            let handshake = async {
                tokio_tungstenite::client_async(request, tcp)
                    .await
                    .map_err(io::Error::other)
            };
            let (ws, _) = timed(handshake).await?;
            let (write, read) = ws.split();
            (Source::Ws(read), Writer::Ws(write))
        }
    })
}

impl Source {
    /// Appends what arrives next to `buf`; `Ok(0)` is the broker closing.
    /// Cancel-safe, as the scenarios' `select!`s need.
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Source::Tcp(half) => half.read_buf(buf).await,
            Source::Tls(half) => half.read_buf(buf).await,
            Source::Ws(stream) => loop {
                // Pings are answered by tungstenite itself; a message's
                // bytes are MQTT's, cut wherever the broker cut them.
                match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => {
                        buf.extend_from_slice(&bytes);
                        return Ok(bytes.len());
                    }
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "a text message where MQTT needs binary",
                        ))
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(io::Error::other(error)),
                }
            },
        }
    }

    /// The plain TCP half, for what only TCP offers (reset, a std socket).
    pub fn into_tcp(self) -> Option<OwnedReadHalf> {
        match self {
            Source::Tcp(half) => Some(half),
            _ => None,
        }
    }
}

impl Writer {
    /// Writes all of `buf` and hands it to the kernel: over WebSocket as
    /// one binary message.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Writer::Tcp(half) => half.write_all(buf).await,
            // rustls may keep a record back when the socket would block;
            // the flush sends it before a publisher waits for its window.
            Writer::Tls(half) => {
                half.write_all(buf).await?;
                half.flush().await
            }
            Writer::Ws(sink) => sink
                .send(Message::Binary(Bytes::copy_from_slice(buf)))
                .await
                .map_err(io::Error::other),
        }
    }

    pub fn into_tcp(self) -> Option<OwnedWriteHalf> {
        match self {
            Writer::Tcp(half) => Some(half),
            _ => None,
        }
    }
}
