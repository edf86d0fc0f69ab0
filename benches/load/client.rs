//! The load generator's MQTT client: tern's sans-IO codec over a raw tokio
//! TcpStream (or TLS, or WebSocket: `transport.rs`), with no client library
//! in between, so that what is measured is
//! the broker and not a client crate's queues. Payloads are 64 bytes stamped
//! with the publisher, a sequence number and the send time.

use std::io;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tern::codec::{
    self, Connect, ConnectCode, DecodeOptions, Packet, PacketId, Property, ProtocolVersion,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use tern::topic::{TopicFilter, TopicName};

use crate::transport::{self, Source, Transport, Writer};

/// Every payload is this long, as the issue asks.
pub const PAYLOAD_BYTES: usize = 64;

/// How long any single step of the protocol (CONNACK, SUBACK) may take
/// before the run is declared broken rather than slow.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// One client connection, split so that a publisher can read its PUBACKs in
/// one task while it writes in another.
pub struct Conn {
    pub reader: Reader,
    pub writer: Writer,
}

/// The read half with its buffer of bytes not yet decoded.
pub struct Reader {
    half: Source,
    buf: BytesMut,
    /// The protocol both halves speak, from the CONNECT.
    version: ProtocolVersion,
}

impl Reader {
    /// The protocol of the connection, for encoding on its write half.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The next packet already buffered, if a whole one is.
    pub fn buffered(&mut self) -> io::Result<Option<Packet>> {
        let options = DecodeOptions {
            version: self.version,
            ..DecodeOptions::default()
        };
        codec::decode(&mut self.buf, &options)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The next packet already buffered, a PUBLISH read in place: the
    /// generator then allocates nothing per message, and its share of the
    /// two cores stays small beside the broker's. Anything else, or a
    /// PUBLISH that does not parse, goes to the full decoder.
    pub fn buffered_fast(&mut self) -> io::Result<Option<Incoming>> {
        match parse_publish(&self.buf) {
            Parsed::Publish(incoming, len) => {
                self.buf.advance(len);
                Ok(Some(incoming))
            }
            Parsed::Partial => Ok(None),
            Parsed::Other => Ok(self.buffered()?.map(|_| Incoming::Other)),
        }
    }

    /// Reads more bytes; `Ok(0)` is the broker closing.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        self.half.read_buf(&mut self.buf).await
    }

    /// The next packet, reading as needed.
    pub async fn packet(&mut self) -> io::Result<Packet> {
        loop {
            if let Some(packet) = self.buffered()? {
                return Ok(packet);
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// A packet as [`Reader::buffered_fast`] gives it.
pub enum Incoming {
    /// A PUBLISH: its packet identifier (QoS 1 and 2) and its stamp, if
    /// the payload carries one.
    Publish {
        packet_id: Option<PacketId>,
        stamp: Option<(u32, u64, u64)>,
    },
    /// Anything else, decoded and checked, then dropped.
    Other,
}

enum Parsed {
    Publish(Incoming, usize),
    /// Not a whole packet yet.
    Partial,
    Other,
}

/// A PUBLISH at the start of `buf`, and its length on the wire.
fn parse_publish(buf: &[u8]) -> Parsed {
    let Some(&first) = buf.first() else {
        return Parsed::Partial;
    };
    if first >> 4 != 3 {
        return Parsed::Other;
    }
    let (mut len, mut at) = (0usize, 1);
    loop {
        let Some(&byte) = buf.get(at) else {
            return Parsed::Partial;
        };
        len |= usize::from(byte & 0x7f) << (7 * (at - 1));
        at += 1;
        if byte & 0x80 == 0 {
            break;
        }
        if at > 4 {
            return Parsed::Other;
        }
    }
    let Some(body) = buf.get(at..at + len) else {
        return Parsed::Partial;
    };
    let Some(topic_len) = body
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return Parsed::Other;
    };
    let mut rest = 2 + topic_len;
    let packet_id = if (first >> 1) & 3 == 0 {
        None
    } else {
        let Some(id) = body
            .get(rest..rest + 2)
            .and_then(|b| PacketId::new(u16::from_be_bytes([b[0], b[1]])))
        else {
            return Parsed::Other;
        };
        rest += 2;
        Some(id)
    };
    let Some(payload) = body.get(rest..) else {
        return Parsed::Other;
    };
    let stamp = unstamp(payload);
    Parsed::Publish(Incoming::Publish { packet_id, stamp }, at + len)
}

/// What a CONNECT asks for. The default is the load clients': 3.1.1, a
/// clean session, and a keepalive longer than any run (idle connections
/// must stay up without pings; tern refuses 0, none, by default).
#[derive(Debug, Clone, Copy)]
pub struct Hello {
    pub version: ProtocolVersion,
    pub clean: bool,
    pub keep_alive: u16,
    /// 5.0's Session Expiry Interval, when there is one.
    pub session_expiry_secs: Option<u32>,
}

impl Default for Hello {
    fn default() -> Hello {
        Hello {
            version: ProtocolVersion::V311,
            clean: true,
            keep_alive: 600,
            session_expiry_secs: None,
        }
    }
}

/// Connects as [`Hello::default`] says and waits for an accepting CONNACK.
pub async fn connect(addr: SocketAddr, client_id: &str) -> io::Result<Conn> {
    connect_as(addr, client_id, Hello::default()).await
}

/// A TCP connection to the broker with nothing sent on it yet.
pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> io::Result<Conn> {
    open_over(Transport::Tcp, addr, version).await
}

/// A connection over `transport` with nothing of MQTT sent on it yet.
pub async fn open_over(
    transport: Transport,
    addr: SocketAddr,
    version: ProtocolVersion,
) -> io::Result<Conn> {
    let (half, writer) = transport::open(transport, addr).await?;
    Ok(Conn {
        reader: Reader {
            half,
            buf: BytesMut::new(),
            version,
        },
        writer,
    })
}

/// Connects as `hello` says and waits for an accepting CONNACK.
pub async fn connect_as(addr: SocketAddr, client_id: &str, hello: Hello) -> io::Result<Conn> {
    connect_over(Transport::Tcp, addr, client_id, hello).await
}

/// Connects over `transport` as `hello` says and waits for an accepting
/// CONNACK.
pub async fn connect_over(
    transport: Transport,
    addr: SocketAddr,
    client_id: &str,
    hello: Hello,
) -> io::Result<Conn> {
    let mut conn = open_over(transport, addr, hello.version).await?;
    let expiry = hello
        .session_expiry_secs
        .map(Property::SessionExpiryInterval);
    let connect = Packet::Connect(Box::new(Connect {
        version: hello.version,
        clean_session: hello.clean,
        keep_alive: hello.keep_alive,
        client_id: client_id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: expiry.into_iter().collect(),
    }));
    conn.send(&connect).await?;
    match timed(conn.reader.packet()).await? {
        Packet::ConnAck(ack) if ack.code == ConnectCode::Accepted => Ok(conn),
        other => Err(io::Error::other(format!("CONNECT answered by {other:?}"))),
    }
}

impl Conn {
    pub async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut buf = BytesMut::new();
        codec::encode(packet, self.reader.version, &mut buf);
        self.writer.write_all(&buf).await
    }

    /// Subscribes to one filter and waits for the SUBACK granting it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> io::Result<()> {
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).expect("nonzero"),
            filters: vec![(
                TopicFilter::new(filter).map_err(io::Error::other)?,
                SubscriptionOptions::qos(qos),
            )],
            properties: Default::default(),
        });
        self.send(&subscribe).await?;
        match timed(self.reader.packet()).await? {
            Packet::SubAck(ack) if ack.codes.iter().all(|c| !c.is_error()) => Ok(()),
            other => Err(io::Error::other(format!("SUBSCRIBE answered by {other:?}"))),
        }
    }

    /// Drops the connection without DISCONNECT, as a crashed client would:
    /// with `reset`, a RST (zero linger); otherwise a plain FIN.
    pub fn abort(self, reset: bool) {
        let halves = self.reader.half.into_tcp().zip(self.writer.into_tcp());
        if let Some(Ok(stream)) = halves.map(|(read, write)| read.reunite(write)) {
            if reset {
                let _ = stream.set_zero_linger();
            }
        }
    }

    /// The socket as a blocking std stream, for the latency scenario's
    /// threads. Call it only between exchanges, with nothing buffered.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        debug_assert!(self.reader.buf.is_empty());
        let (read, write) = self
            .reader
            .half
            .into_tcp()
            .zip(self.writer.into_tcp())
            .ok_or_else(|| io::Error::other("a std socket needs plain TCP"))?;
        let stream = read.reunite(write).map_err(io::Error::other)?.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}

/// `future`, or a timeout error after [`STEP_TIMEOUT`].
pub async fn timed<T>(future: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Appends a PUBLISH of a stamped payload to `buf`. QoS 1 takes its packet
/// identifier from the sequence number, so identifiers cycle through all
/// 65,535 values and a window far smaller than that never reuses a live one.
pub fn put_publish(buf: &mut BytesMut, topic: &TopicName, qos: QoS, publisher: u32, seq: u64) {
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(packet_id_of(seq)),
    };
    let publish = Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.clone(),
        packet_id,
        payload: stamp(publisher, seq),
        properties: Default::default(),
    });
    codec::encode(&publish, ProtocolVersion::V311, buf);
}

pub fn packet_id_of(seq: u64) -> PacketId {
    PacketId::new((seq % 65_535) as u16 + 1).expect("nonzero")
}

/// A payload of [`PAYLOAD_BYTES`]: publisher, sequence number, send time,
/// then padding.
pub fn stamp(publisher: u32, seq: u64) -> Bytes {
    let mut payload = BytesMut::with_capacity(PAYLOAD_BYTES);
    payload.put_u32(publisher);
    payload.put_u64(seq);
    payload.put_u64(now_nanos());
    payload.put_bytes(0xa5, PAYLOAD_BYTES - payload.len());
    payload.freeze()
}

/// What [`stamp`] wrote: (publisher, sequence number, send time).
pub fn unstamp(payload: &[u8]) -> Option<(u32, u64, u64)> {
    if payload.len() != PAYLOAD_BYTES {
        return None;
    }
    let publisher = u32::from_be_bytes(payload[0..4].try_into().ok()?);
    let seq = u64::from_be_bytes(payload[4..12].try_into().ok()?);
    let sent = u64::from_be_bytes(payload[12..20].try_into().ok()?);
    Some((publisher, seq, sent))
}

/// Nanoseconds since the bench process first asked; sender and receiver are
/// in this one process, so their clocks agree.
pub fn now_nanos() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
