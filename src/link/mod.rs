//! One connection's MQTT protocol, without I/O: which packets a client may
//! send and when, what the link answers by itself (PINGRESP, the CONNACK for
//! a protocol level we do not speak), topic aliases, which broker call each
//! packet becomes, and how an end is told to the client. The server's
//! connection task only moves bytes and keeps time; every transport (TCP,
//! and next TLS and WebSocket) is another byte stream fed to the same link.

mod end;
#[cfg(test)]
mod tests;

use bytes::BytesMut;

use crate::broker::{Broker, ConnId};
use crate::codec::{
    self, ConnAck, Connect, ConnectCode, DecodeError, DecodeOptions, Disconnect, Naming, Packet,
    ProtocolVersion, SentAliases, TopicAliases, ALIAS_PROPERTY_BYTES,
};
use crate::config::Config;
pub use end::End;

#[cfg(feature = "planted-bugs")]
use crate::config::PlantedBug;

/// A Reason String we send is cut to this: some error texts quote input.
const REASON_STRING_MAX_BYTES: usize = 256;

/// The protocol state of one connection.
#[derive(Debug)]
pub struct Link {
    version: ProtocolVersion,
    /// Topic aliases this connection's client has set (5.0).
    aliases: TopicAliases,
    /// How many topic aliases we may set on what we send: our own limit
    /// until CONNECT, then the lower of it and the client's (5.0).
    sent_alias_max: u16,
    /// Sizes as u32, which MQTT's Maximum Packet Size is: every connection's
    /// task holds a `Link`, and this keeps it 8 bytes smaller.
    packet_size_max_bytes: u32,
    /// The client's Maximum Packet Size (5.0), for what we send unasked.
    client_packet_size_max: u32,
    /// Made when the first PUBLISH is sent to a client that allows aliases.
    sent_aliases: Option<Box<SentAliases>>,
    #[cfg(feature = "planted-bugs")]
    planted_bug: Option<crate::config::PlantedBug>,
}

/// What a connected client's packet asks for.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// The link answers by itself; the broker need not be locked.
    Reply(Packet),
    /// A packet for the broker, its topic alias resolved.
    Broker(Packet),
}

impl Link {
    pub fn new(config: &Config) -> Link {
        Link {
            version: ProtocolVersion::V311,
            aliases: TopicAliases::new(config.topic_alias_max),
            sent_alias_max: config.topic_alias_sent_max,
            packet_size_max_bytes: u32::try_from(config.packet_size_max_bytes).unwrap_or(u32::MAX),
            client_packet_size_max: u32::MAX,
            sent_aliases: None,
            #[cfg(feature = "planted-bugs")]
            planted_bug: config.planted_bug,
        }
    }

    /// The version packets are decoded and encoded in: 3.1.1 until CONNECT.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The next whole packet in `buf`, taken out of it; `None` until one is
    /// buffered. Too large a packet is refused from its fixed header; a
    /// PUBLISH's Topic Alias is resolved, or set, as it is read.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, End> {
        let options = DecodeOptions {
            version: self.version,
            packet_size_max_bytes: self.packet_size_max_bytes as usize,
        };
        Ok(codec::decode_with_aliases(
            buf,
            &options,
            &mut self.aliases,
        )?)
    }

    /// The first packet, which must be a CONNECT; from it on, packets are
    /// read and written in its version. A protocol level we do not speak is
    /// answered with CONNACK 0x01 before the close [MQTT-3.1.2-2].
    pub fn first(
        &mut self,
        decoded: Result<Packet, End>,
    ) -> Result<Box<Connect>, (End, Option<Box<Packet>>)> {
        let connect = match decoded {
            Ok(Packet::Connect(connect)) => connect,
            Ok(other) => {
                let end = End::Protocol(format!("{} before CONNECT", other.kind()));
                return Err((end, None));
            }
            Err(End::Decode(DecodeError::UnsupportedProtocolLevel(level))) => {
                let refusal = Packet::ConnAck(ConnAck {
                    session_present: false,
                    code: ConnectCode::UnacceptableProtocolVersion,
                    properties: Default::default(),
                });
                let end = DecodeError::UnsupportedProtocolLevel(level).into();
                return Err((end, Some(Box::new(refusal))));
            }
            Err(end) => return Err((end, None)),
        };
        self.version = connect.version;
        if let Some(max) = connect.properties.maximum_packet_size() {
            self.client_packet_size_max = max;
        }
        // A client that announces no Topic Alias Maximum takes none
        // [MQTT-3.1.2-26]; 3.1.1 has no aliases.
        let client_alias_max = match connect.version {
            ProtocolVersion::V5 => connect.properties.topic_alias_maximum().unwrap_or(0),
            ProtocolVersion::V311 => 0,
        };
        #[cfg(feature = "planted-bugs")]
        let client_alias_max = match self.planted_bug {
            Some(PlantedBug::SentAliasesUnasked) if connect.version == ProtocolVersion::V5 => {
                u16::MAX
            }
            _ => client_alias_max,
        };
        self.sent_alias_max = self.sent_alias_max.min(client_alias_max);
        Ok(connect)
    }

    /// Whether we set topic aliases on what we send this client.
    pub fn sends_aliases(&self) -> bool {
        self.sent_alias_max > 0
    }

    /// How to name `topic` in a PUBLISH to this client, whose size without
    /// an alias `len` gives; `Naming::Topic` unless `sends_aliases`.
    pub fn naming(&mut self, topic: &str, len: impl FnOnce() -> usize) -> Naming {
        if self.sent_alias_max == 0 {
            return Naming::Topic;
        }
        let max = self.sent_alias_max;
        let aliases = self
            .sent_aliases
            .get_or_insert_with(|| Box::new(SentAliases::new(max)));
        let size_max = self.client_packet_size_max as usize;
        #[cfg(feature = "planted-bugs")]
        let replacing = aliases.is_full();
        let naming = aliases.name(topic, || len() + ALIAS_PROPERTY_BYTES <= size_max);
        #[cfg(feature = "planted-bugs")]
        if let (Some(PlantedBug::SentAliasReplacedUnnamed), true, Naming::SetAlias(alias)) =
            (self.planted_bug, replacing, naming)
        {
            return Naming::Alias(alias);
        }
        naming
    }

    /// A packet from a connected client: answered here, refused, or handed
    /// on to the broker.
    pub fn inbound(&mut self, packet: Packet) -> Result<Inbound, End> {
        match packet {
            Packet::PingReq => Ok(Inbound::Reply(Packet::PingResp)),
            Packet::Publish(_)
            | Packet::PubAck(_)
            | Packet::PubRec(_)
            | Packet::PubRel(_)
            | Packet::PubComp(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::Disconnect(_) => Ok(Inbound::Broker(packet)),
            // No authentication method was agreed at CONNECT [MQTT-4.12.0-1].
            Packet::Auth(_) => Err(End::Protocol(
                "AUTH without an authentication method".into(),
            )),
            Packet::Connect(_) => Err(End::Protocol("second CONNECT".into())),
            other => Err(End::Protocol(format!(
                "{} is not a client's packet",
                other.kind()
            ))),
        }
    }

    /// What the client tells us we are to tell the broker: `Ok` once it
    /// is done, an `End` where the packet ends the connection.
    /// `arrived` is when the packet's bytes came, if the socket told
    /// (`Arrivals`), else 0.
    pub fn dispatch(
        broker: &mut Broker,
        conn: ConnId,
        packet: Packet,
        arrived: u64,
    ) -> Result<(), End> {
        // A newer connection may have taken the session over while this one
        // still had packets buffered: they are no longer this one's to send.
        if !broker.is_attached(conn) {
            return Err(End::TakenOver);
        }
        match packet {
            Packet::Publish(publish) => broker.publish_arrived(conn, publish, arrived)?,
            Packet::PubAck(ack) => broker.puback(conn, ack.packet_id),
            Packet::PubRec(ack) => broker.pubrec(conn, &ack),
            Packet::PubRel(ack) => broker.pubrel(conn, ack.packet_id),
            Packet::PubComp(ack) => broker.pubcomp(conn, ack.packet_id),
            Packet::Subscribe(subscribe) => broker.subscribe_arrived(conn, subscribe, arrived)?,
            Packet::Unsubscribe(unsubscribe) => broker.unsubscribe(conn, unsubscribe)?,
            Packet::Disconnect(disconnect) => {
                // Detached here, under the caller's lock: a takeover racing
                // in must not find it attached and send its will.
                broker.disconnect(conn, &disconnect)?;
                return Err(End::Disconnect);
            }
            // `inbound` lets no other packet through.
            other => {
                return Err(End::Protocol(format!(
                    "{} is not a client's packet",
                    other.kind()
                )))
            }
        }
        Ok(())
    }

    /// The DISCONNECT that tells a 5.0 client why we close [MQTT-4.13.2];
    /// `None` for 3.1.1, which has none, and where the client ended it.
    pub fn farewell(&self, end: &End) -> Option<Packet> {
        let (ProtocolVersion::V5, Some(reason)) = (self.version, end.reason()) else {
            return None;
        };
        let mut text = end.to_string();
        if text.len() > REASON_STRING_MAX_BYTES {
            let cut = (0..=REASON_STRING_MAX_BYTES)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
        }
        let mut disconnect = Disconnect::new(reason);
        disconnect
            .properties
            .push(codec::Property::ReasonString(text));
        let packet = Packet::Disconnect(disconnect);
        if codec::encoded_len(&packet, self.version) > self.client_packet_size_max as usize {
            // [MQTT-3.14.2-3]: not a Reason String that makes it too large.
            return Some(Packet::Disconnect(Disconnect::new(reason)));
        }
        Some(packet)
    }
}
