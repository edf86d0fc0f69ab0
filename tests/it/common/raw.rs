//! A client that is only a TCP socket and our codec: it sends exactly the
//! bytes a test chooses and dies exactly the way a test chooses (FIN, RST,
//! or silence), which no well-behaved client library will do. It speaks
//! 3.1.1 or 5.0, whichever its CONNECT asked for.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tern::codec::{
    self, Ack, ConnAck, Connect, DecodeOptions, Disconnect, LastWill, Packet, PacketId, Properties,
    Property, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, SubscriptionOptions,
};
use tern::topic::{TopicFilter, TopicName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::within;

pub struct Raw {
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// The version our CONNECT asked for: how we encode and decode.
    version: ProtocolVersion,
}

/// How a read from the broker ended.
#[derive(Debug)]
pub enum Read {
    Packet(Packet),
    /// The broker closed the connection (EOF, or a reset when it closed
    /// with our bytes still unread).
    Closed,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = within("TCP connect", TcpStream::connect(addr))
            .await
            .expect("the broker accepts TCP connections");
        Raw::from_stream(stream)
    }

    /// Opens with a small receive buffer, so that a client that never reads
    /// fills the path from the broker with little data.
    pub async fn open_small_window(addr: SocketAddr) -> Raw {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("SO_RCVBUF can be set");
        let stream = within("TCP connect", socket.connect(addr))
            .await
            .expect("the broker accepts TCP connections");
        Raw::from_stream(stream)
    }

    fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            rbuf: BytesMut::new(),
            version: ProtocolVersion::V311,
        }
    }

    /// Opens, sends `connect` and returns the CONNACK.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Raw, ConnAck) {
        let mut raw = Raw::open(addr).await;
        raw.version = connect.version;
        raw.send(&Packet::Connect(connect.into())).await;
        let connack = raw.recv_connack().await;
        (raw, connack)
    }

    /// Connects with the given client id and a clean session; panics unless
    /// the broker accepts.
    pub async fn connected(addr: SocketAddr, client_id: &str) -> Raw {
        let (raw, connack) = Raw::connect(addr, connect_packet(client_id)).await;
        assert_eq!(connack.code, codec::ConnectCode::Accepted);
        raw
    }

    /// A 3.1.1 persistent session (clean session 0) that subscribes to
    /// `filter` at QoS 1 and goes offline with DISCONNECT: messages for it
    /// are queued from then on.
    pub async fn subscribe_then_leave(addr: SocketAddr, client_id: &str, filter: &str) {
        let (mut raw, connack) = Raw::connect(addr, persistent(client_id)).await;
        assert_eq!(connack.code, codec::ConnectCode::Accepted);
        raw.send(&subscribe(1, filter, QoS::AtLeastOnce)).await;
        assert!(matches!(raw.recv().await, Packet::SubAck(_)));
        raw.send(&disconnect()).await;
        raw.expect_closed().await;
    }

    /// Comes back to the persistent session of `subscribe_then_leave`,
    /// which must be there, and reads its queue to the end (a second of
    /// silence after the last PUBLISH), acknowledging each: the number
    /// each payload begins with (`N`, or `N:` and padding).
    pub async fn numbers_kept_for(addr: SocketAddr, client_id: &str) -> BTreeSet<u16> {
        let (mut raw, connack) = Raw::connect(addr, persistent(client_id)).await;
        assert_eq!(connack.code, codec::ConnectCode::Accepted);
        assert!(connack.session_present, "the session was kept");
        let mut numbers = BTreeSet::new();
        let quiet = std::time::Duration::from_secs(1);
        while let Ok(read) = tokio::time::timeout(quiet, raw.read()).await {
            let Read::Packet(Packet::Publish(publish)) = read else {
                panic!("expected PUBLISH, got {read:?}");
            };
            let id = publish.packet_id.expect("QoS 1");
            raw.send(&puback(id.get())).await;
            let text = std::str::from_utf8(&publish.payload).expect("UTF-8");
            let number = text.split(':').next().and_then(|n| n.parse().ok());
            numbers.insert(number.expect("a payload that begins with a number"));
        }
        numbers
    }

    /// Connects a 5.0 client with a clean start and `properties`; panics
    /// unless the broker accepts. Returns the CONNACK for its properties.
    pub async fn connected_v5(
        addr: SocketAddr,
        client_id: &str,
        properties: Vec<Property>,
    ) -> (Raw, ConnAck) {
        let mut connect = connect_v5(client_id);
        connect.properties = Properties::from(properties);
        let (raw, connack) = Raw::connect(addr, connect).await;
        assert_eq!(connack.code, codec::ConnectCode::Accepted, "{connack:?}");
        (raw, connack)
    }

    pub async fn send(&mut self, packet: &Packet) {
        let mut buf = BytesMut::new();
        codec::encode(packet, self.version, &mut buf);
        self.send_bytes(&buf).await;
    }

    /// Sends a 5.0 PUBLISH that names its topic by its Topic Alias alone.
    pub async fn send_by_alias(&mut self, packet: &Packet) {
        let Packet::Publish(publish) = packet else {
            panic!("only a PUBLISH has a Topic Alias: {packet:?}");
        };
        let mut buf = BytesMut::new();
        codec::encode_by_alias(publish, &mut buf);
        self.send_bytes(&buf).await;
    }

    /// The socket and what was read from it but not yet decoded.
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.rbuf)
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        within("a write to the broker", self.stream.write_all(bytes))
            .await
            .expect("the broker's socket takes our bytes");
    }

    /// Closes our sending side only: the broker reads the end of the
    /// stream, and we may still read what it sends.
    pub async fn half_close(&mut self) {
        self.stream.shutdown().await.expect("a half-close");
    }

    /// Everything the broker sends until it closes, and how it closed:
    /// `Ok` for an orderly close (EOF), the error for a reset.
    pub async fn read_to_close(mut self) -> (Vec<Packet>, io::Result<()>) {
        let mut packets = Vec::new();
        let closed = loop {
            while let Some(packet) = decode_buffered(&mut self.rbuf, self.version) {
                packets.push(packet);
            }
            match within("the broker's close", self.stream.read_buf(&mut self.rbuf)).await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(error) => break Err(error),
            }
        };
        (packets, closed)
    }

    /// Like `send_bytes`, for a socket the broker may have closed.
    pub async fn try_send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next packet or the close, whichever comes first.
    pub async fn read(&mut self) -> Read {
        within("a packet or a close from the broker", self.read_unbounded()).await
    }

    async fn read_unbounded(&mut self) -> Read {
        loop {
            let decoded = decode_buffered(&mut self.rbuf, self.version);
            if let Some(packet) = decoded {
                return Read::Packet(packet);
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) => return Read::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Read::Closed,
                Err(e) => panic!("reading from the broker: {e}"),
            }
        }
    }

    pub async fn recv(&mut self) -> Packet {
        match self.read().await {
            Read::Packet(packet) => packet,
            Read::Closed => panic!("the broker closed the connection; a packet was expected"),
        }
    }

    pub async fn recv_connack(&mut self) -> ConnAck {
        match self.recv().await {
            Packet::ConnAck(connack) => connack,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The next PUBLISH, acknowledged if it is QoS 1; panics on anything else.
    pub async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Packet::Publish(publish) => {
                if publish.qos == QoS::AtLeastOnce {
                    let id = publish.packet_id.expect("QoS 1 has an id");
                    self.send(&Packet::PubAck(Ack::success(id))).await;
                }
                publish
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for `QUIET`.
    pub async fn expect_silence(&mut self) {
        if let Ok(read) = tokio::time::timeout(super::QUIET, self.read_unbounded()).await {
            panic!("expected nothing, got {read:?}");
        }
    }

    /// Asserts that the broker sends a 5.0 DISCONNECT with `reason` and then
    /// closes [MQTT-4.13.2-1].
    pub async fn expect_disconnect(&mut self, reason: ReasonCode) -> Disconnect {
        match self.read().await {
            Read::Packet(Packet::Disconnect(disconnect)) => {
                assert_eq!(disconnect.reason, reason, "{disconnect:?}");
                self.expect_closed().await;
                disconnect
            }
            other => panic!("expected DISCONNECT {reason:?}, got {other:?}"),
        }
    }

    /// Asserts that the broker closes the connection, sending nothing more
    /// before it.
    pub async fn expect_closed(&mut self) {
        match self.read().await {
            Read::Closed => {}
            Read::Packet(packet) => panic!("expected the connection to close, got {packet:?}"),
        }
    }

    /// Closes with a reset (SO_LINGER 0): the peer gets an error, not EOF,
    /// like a client whose host went away mid-stream.
    pub fn reset(self) {
        self.stream.set_zero_linger().expect("SO_LINGER can be set");
    }
}

/// A 3.1.1 CONNECT with a clean session and a keepalive of 600 s, longer
/// than any test (keepalive 0 is refused by default, as in mosquitto).
/// The next whole packet the broker sent in `rbuf`, taken from it.
pub fn decode_buffered(rbuf: &mut BytesMut, version: ProtocolVersion) -> Option<Packet> {
    let options = DecodeOptions {
        version,
        ..DecodeOptions::default()
    };
    codec::decode(rbuf, &options).expect("the broker sends well-formed packets")
}

pub fn connect_packet(client_id: &str) -> Connect {
    Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive: 600,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

/// `connect_packet` with clean session 0: a session that outlives it.
pub fn persistent(client_id: &str) -> Connect {
    Connect {
        clean_session: false,
        ..connect_packet(client_id)
    }
}

/// A 5.0 CONNECT with a clean start, a keepalive of 600 s and no
/// properties.
pub fn connect_v5(client_id: &str) -> Connect {
    Connect {
        version: ProtocolVersion::V5,
        ..connect_packet(client_id)
    }
}

/// A QoS 0/1/2 PUBLISH with 5.0 properties.
pub fn publish_with(
    topic: &str,
    qos: QoS,
    id: u16,
    payload: &[u8],
    props: Vec<Property>,
) -> Packet {
    let Packet::Publish(mut publish) = publish(topic, qos, id, payload) else {
        unreachable!("publish builds a PUBLISH")
    };
    publish.properties = Properties::from(props);
    Packet::Publish(publish)
}

/// A SUBSCRIBE to one filter with the given options and properties.
pub fn subscribe_with(
    id: u16,
    filter: &str,
    options: SubscriptionOptions,
    props: Vec<Property>,
) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: packet_id(id),
        filters: vec![(TopicFilter::new(filter).expect("a valid filter"), options)],
        properties: Properties::from(props),
    })
}

/// A DISCONNECT with a reason and properties (5.0).
pub fn disconnect_with(reason: ReasonCode, props: Vec<Property>) -> Packet {
    Packet::Disconnect(codec::Disconnect {
        reason,
        properties: Properties::from(props),
    })
}

pub fn will(topic: &str, payload: &str, qos: QoS, retain: bool) -> LastWill {
    LastWill {
        topic: TopicName::new(topic).expect("a valid topic"),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: Default::default(),
    }
}

pub fn packet_id(id: u16) -> PacketId {
    PacketId::new(id).expect("a non-zero packet id")
}

/// A PUBLISH; `id` is used for QoS 1 and 2 only.
pub fn publish(topic: &str, qos: QoS, id: u16, payload: &[u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: TopicName::new(topic).expect("a valid topic"),
        packet_id: (qos != QoS::AtMostOnce).then(|| packet_id(id)),
        payload: Bytes::copy_from_slice(payload),
        properties: Default::default(),
    })
}

pub fn subscribe(id: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: packet_id(id),
        filters: vec![(
            TopicFilter::new(filter).expect("a valid filter"),
            SubscriptionOptions::qos(qos),
        )],
        properties: Default::default(),
    })
}

pub fn puback(id: u16) -> Packet {
    Packet::PubAck(Ack::success(packet_id(id)))
}

pub fn disconnect() -> Packet {
    Packet::Disconnect(codec::Disconnect::new(codec::ReasonCode::SUCCESS))
}

/// SUBSCRIBE number `i` of issue 12's row 1 shape: `filters` filters of
/// `levels` levels each, a first level of their own (`{i}-{j}`), then `/l`s.
pub fn deep_subscribe(i: usize, filters: usize, levels: usize) -> Packet {
    let filters = (0..filters)
        .map(|j| {
            let filter = format!("{i}-{j}{}", "/l".repeat(levels - 1));
            (
                TopicFilter::new(&filter).unwrap(),
                SubscriptionOptions::qos(QoS::AtMostOnce),
            )
        })
        .collect();
    Packet::Subscribe(Subscribe {
        packet_id: packet_id(u16::try_from(i + 1).unwrap()),
        filters,
        properties: Default::default(),
    })
}
