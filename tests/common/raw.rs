//! A client that is only a TCP socket and our codec: it sends exactly the
//! bytes a test chooses and dies exactly the way a test chooses (FIN, RST,
//! or silence), which no well-behaved client library will do.

use std::io;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tern::codec::{
    self, Ack, ConnAck, Connect, DecodeOptions, LastWill, Packet, PacketId, ProtocolVersion,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use tern::topic::{TopicFilter, TopicName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::within;

pub struct Raw {
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
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
        }
    }

    /// Opens, sends `connect` and returns the CONNACK.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (Raw, ConnAck) {
        let mut raw = Raw::open(addr).await;
        raw.send(&Packet::Connect(connect)).await;
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

    pub async fn send(&mut self, packet: &Packet) {
        let mut buf = BytesMut::new();
        codec::encode(packet, ProtocolVersion::V311, &mut buf);
        self.send_bytes(&buf).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        within("a write to the broker", self.stream.write_all(bytes))
            .await
            .expect("the broker's socket takes our bytes");
    }

    /// The next packet or the close, whichever comes first.
    pub async fn read(&mut self) -> Read {
        within("a packet or a close from the broker", self.read_unbounded()).await
    }

    async fn read_unbounded(&mut self) -> Read {
        loop {
            let decoded = codec::decode(&mut self.rbuf, &DecodeOptions::default())
                .expect("the broker sends well-formed packets");
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

/// A 3.1.1 CONNECT with a clean session and no keepalive.
pub fn connect_packet(client_id: &str) -> Connect {
    Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive: 0,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
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
