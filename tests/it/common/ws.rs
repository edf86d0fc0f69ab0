//! A WebSocket client (tokio-tungstenite) that speaks our codec inside
//! binary messages: the test chooses where MQTT's bytes are cut into
//! frames, and can send what the broker must refuse (text frames, frames
//! over the limit, no subprotocol).

use std::net::SocketAddr;

use bytes::BytesMut;
use tern::codec::{self, ConnectCode, Packet, ProtocolVersion};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use futures_util::{SinkExt, StreamExt};

use super::raw::connect_packet;
use super::within;

pub type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `path`, offering `subprotocols` (a
/// `Sec-WebSocket-Protocol` value; none if empty).
pub async fn open(
    addr: SocketAddr,
    path: &str,
    subprotocols: &str,
) -> Result<(Ws, Response), WsError> {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a valid URL");
    if !subprotocols.is_empty() {
        let value = HeaderValue::from_str(subprotocols).expect("a header value");
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
    }
    let stream = within("TCP connect", TcpStream::connect(addr))
        .await
        .expect("the broker accepts TCP connections");
    within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(request, stream),
    )
    .await
}

/// The broker's status for a refused upgrade.
pub async fn refused_status(addr: SocketAddr, path: &str, subprotocols: &str) -> u16 {
    match open(addr, path, subprotocols).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected {path} with {subprotocols:?} to be refused"),
    }
}

/// 3.1.1 packets in binary WebSocket messages.
pub struct WsRaw {
    pub ws: Ws,
    /// Bytes received and not yet decoded: a packet may span messages.
    rbuf: BytesMut,
    /// How we decode: 3.1.1 unless set.
    pub version: ProtocolVersion,
}

/// What the broker sent next.
#[derive(Debug)]
pub enum WsRead {
    Packet(Packet),
    /// A close frame, or the end of the stream without one.
    Closed(Option<CloseFrame>),
}

impl WsRaw {
    pub fn new(ws: Ws) -> WsRaw {
        WsRaw {
            ws,
            rbuf: BytesMut::new(),
            version: ProtocolVersion::V311,
        }
    }

    /// Opens `/mqtt` with the `mqtt` subprotocol and connects as
    /// `client_id`, the CONNECT in one frame.
    pub async fn connected(addr: SocketAddr, client_id: &str) -> WsRaw {
        let (ws, _) = open(addr, "/mqtt", "mqtt")
            .await
            .expect("the upgrade succeeds");
        let mut client = WsRaw::new(ws);
        let connect = encode(&Packet::Connect(Box::new(connect_packet(client_id))));
        client.send_frames(&[&connect]).await;
        match client.recv().await {
            Packet::ConnAck(connack) => assert_eq!(connack.code, ConnectCode::Accepted),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
    }

    /// Sends each of `frames` as one binary message.
    pub async fn send_frames(&mut self, frames: &[&[u8]]) {
        for frame in frames {
            self.send_message(Message::binary(frame.to_vec())).await;
        }
    }

    pub async fn send_message(&mut self, message: Message) {
        within("a WebSocket send", self.ws.send(message))
            .await
            .expect("the broker takes our frame");
    }

    /// The next packet, or the close.
    pub async fn read(&mut self) -> WsRead {
        within("a packet or a close from the broker", async {
            loop {
                let decoded = super::raw::decode_buffered(&mut self.rbuf, self.version);
                if let Some(packet) = decoded {
                    return WsRead::Packet(packet);
                }
                match self.ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => self.rbuf.extend_from_slice(&bytes),
                    Some(Ok(Message::Close(frame))) => return WsRead::Closed(frame),
                    Some(Ok(other)) => panic!("unexpected WebSocket message {other:?}"),
                    None | Some(Err(_)) => return WsRead::Closed(None),
                }
            }
        })
        .await
    }

    pub async fn recv(&mut self) -> Packet {
        match self.read().await {
            WsRead::Packet(packet) => packet,
            WsRead::Closed(frame) => panic!("closed ({frame:?}); a packet was expected"),
        }
    }

    /// Asserts that the broker closes with a close frame, sending no
    /// packet first; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        match self.read().await {
            WsRead::Closed(Some(frame)) => u16::from(frame.code),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// `packet` as 3.1.1 bytes.
pub fn encode(packet: &Packet) -> Vec<u8> {
    encode_as(packet, ProtocolVersion::V311)
}

pub fn encode_as(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    codec::encode(packet, version, &mut buf);
    buf.to_vec()
}
