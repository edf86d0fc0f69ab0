//! The MQTT control packets as Rust values. The types describe what a packet
//! means, not how it is laid out, so that MQTT 5.0 adds fields (properties,
//! reason codes) without changing their shape. A packet that decodes is valid:
//! invariants the spec states are checked in the decoder, not downstream.

use std::num::NonZeroU16;

use bytes::Bytes;

use super::Properties;
use crate::topic::{TopicFilter, TopicName};

/// Quality of service. Ordered so that `min` gives the delivered QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// A packet identifier; zero is not one [MQTT-2.3.1-1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    pub fn new(value: u16) -> Option<PacketId> {
        NonZeroU16::new(value).map(PacketId)
    }

    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// The identifier after this one, skipping zero.
    pub fn next(self) -> PacketId {
        PacketId::new(self.get().wrapping_add(1)).unwrap_or(PacketId(NonZeroU16::MIN))
    }
}

/// The protocol level a client asked for in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1, protocol level 4.
    V311,
    /// MQTT 5.0, protocol level 5.
    V5,
}

impl ProtocolVersion {
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

/// A reason code as MQTT 5.0 defines it. In 3.1.1 the acks carry none, so
/// every ack decoded from a 3.1.1 client is `SUCCESS`; SUBACK return codes
/// (0, 1, 2, 0x80) have the same values in both versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    pub const SUCCESS: ReasonCode = ReasonCode(0x00);
    pub const GRANTED_QOS_1: ReasonCode = ReasonCode(0x01);
    pub const GRANTED_QOS_2: ReasonCode = ReasonCode(0x02);
    pub const DISCONNECT_WITH_WILL: ReasonCode = ReasonCode(0x04);
    pub const NO_MATCHING_SUBSCRIBERS: ReasonCode = ReasonCode(0x10);
    pub const NO_SUBSCRIPTION_EXISTED: ReasonCode = ReasonCode(0x11);
    pub const CONTINUE_AUTHENTICATION: ReasonCode = ReasonCode(0x18);
    pub const RE_AUTHENTICATE: ReasonCode = ReasonCode(0x19);
    pub const UNSPECIFIED_ERROR: ReasonCode = ReasonCode(0x80);
    pub const MALFORMED_PACKET: ReasonCode = ReasonCode(0x81);
    pub const PROTOCOL_ERROR: ReasonCode = ReasonCode(0x82);
    pub const IMPLEMENTATION_SPECIFIC_ERROR: ReasonCode = ReasonCode(0x83);
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(0x87);
    pub const SERVER_BUSY: ReasonCode = ReasonCode(0x89);
    pub const SERVER_SHUTTING_DOWN: ReasonCode = ReasonCode(0x8B);
    pub const KEEP_ALIVE_TIMEOUT: ReasonCode = ReasonCode(0x8D);
    pub const SESSION_TAKEN_OVER: ReasonCode = ReasonCode(0x8E);
    pub const TOPIC_FILTER_INVALID: ReasonCode = ReasonCode(0x8F);
    pub const TOPIC_NAME_INVALID: ReasonCode = ReasonCode(0x90);
    pub const PACKET_IDENTIFIER_IN_USE: ReasonCode = ReasonCode(0x91);
    pub const PACKET_IDENTIFIER_NOT_FOUND: ReasonCode = ReasonCode(0x92);
    pub const RECEIVE_MAXIMUM_EXCEEDED: ReasonCode = ReasonCode(0x93);
    pub const TOPIC_ALIAS_INVALID: ReasonCode = ReasonCode(0x94);
    pub const PACKET_TOO_LARGE: ReasonCode = ReasonCode(0x95);
    pub const QUOTA_EXCEEDED: ReasonCode = ReasonCode(0x97);
    pub const PAYLOAD_FORMAT_INVALID: ReasonCode = ReasonCode(0x99);
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0x9E);
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xA1);
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: ReasonCode = ReasonCode(0xA2);

    pub fn granted(qos: QoS) -> ReasonCode {
        ReasonCode(qos as u8)
    }

    pub fn is_error(self) -> bool {
        self.0 >= 0x80
    }
}

/// The outcome of a CONNECT, by meaning; each version encodes it its own way.
/// The first six are those of 3.1.1; the rest exist only in 5.0, and a 3.1.1
/// client is told the nearest 3.1.1 code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted,
    UnacceptableProtocolVersion,
    IdentifierRejected,
    ServerUnavailable,
    BadUsernameOrPassword,
    NotAuthorized,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    ServerBusy,
    Banned,
    BadAuthenticationMethod,
    TopicNameInvalid,
    PacketTooLarge,
    QuotaExceeded,
    PayloadFormatInvalid,
    RetainNotSupported,
    QosNotSupported,
    UseAnotherServer,
    ServerMoved,
    ConnectionRateExceeded,
}

impl ConnectCode {
    const V5: [(ConnectCode, u8); 22] = [
        (ConnectCode::Accepted, 0x00),
        (ConnectCode::UnspecifiedError, 0x80),
        (ConnectCode::MalformedPacket, 0x81),
        (ConnectCode::ProtocolError, 0x82),
        (ConnectCode::ImplementationSpecificError, 0x83),
        (ConnectCode::UnacceptableProtocolVersion, 0x84),
        (ConnectCode::IdentifierRejected, 0x85),
        (ConnectCode::BadUsernameOrPassword, 0x86),
        (ConnectCode::NotAuthorized, 0x87),
        (ConnectCode::ServerUnavailable, 0x88),
        (ConnectCode::ServerBusy, 0x89),
        (ConnectCode::Banned, 0x8A),
        (ConnectCode::BadAuthenticationMethod, 0x8C),
        (ConnectCode::TopicNameInvalid, 0x90),
        (ConnectCode::PacketTooLarge, 0x95),
        (ConnectCode::QuotaExceeded, 0x97),
        (ConnectCode::PayloadFormatInvalid, 0x99),
        (ConnectCode::RetainNotSupported, 0x9A),
        (ConnectCode::QosNotSupported, 0x9B),
        (ConnectCode::UseAnotherServer, 0x9C),
        (ConnectCode::ServerMoved, 0x9D),
        (ConnectCode::ConnectionRateExceeded, 0x9F),
    ];

    /// The CONNACK return code of 3.1.1.
    pub fn v311(self) -> u8 {
        match self {
            ConnectCode::Accepted => 0,
            ConnectCode::UnacceptableProtocolVersion => 1,
            ConnectCode::IdentifierRejected => 2,
            ConnectCode::BadUsernameOrPassword => 4,
            ConnectCode::NotAuthorized
            | ConnectCode::Banned
            | ConnectCode::BadAuthenticationMethod => 5,
            _ => 3,
        }
    }

    pub fn from_v311(code: u8) -> Option<ConnectCode> {
        Some(match code {
            0 => ConnectCode::Accepted,
            1 => ConnectCode::UnacceptableProtocolVersion,
            2 => ConnectCode::IdentifierRejected,
            3 => ConnectCode::ServerUnavailable,
            4 => ConnectCode::BadUsernameOrPassword,
            5 => ConnectCode::NotAuthorized,
            _ => return None,
        })
    }

    /// The CONNACK reason code of 5.0.
    pub fn v5(self) -> u8 {
        Self::V5
            .iter()
            .find(|(c, _)| *c == self)
            .map(|&(_, v)| v)
            .expect("every code has a 5.0 value")
    }

    pub fn from_v5(code: u8) -> Option<ConnectCode> {
        Self::V5.iter().find(|&&(_, v)| v == code).map(|&(c, _)| c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Boxed: the largest packet by far and one per connection, while every
    /// other packet is moved through queues by value.
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Ack),
    PubRec(Ack),
    PubRel(Ack),
    PubComp(Ack),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5.0 only.
    Auth(Auth),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: ProtocolVersion,
    /// "Clean Session" in 3.1.1, "Clean Start" in 5.0.
    pub clean_session: bool,
    /// Seconds; zero turns keepalive off.
    pub keep_alive: u16,
    /// May be empty; the broker decides whether to assign one.
    pub client_id: String,
    pub will: Option<LastWill>,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    /// Always empty in 3.1.1, as are all properties.
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: TopicName,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: ConnectCode,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub topic: TopicName,
    /// Present exactly when `qos` is 1 or 2.
    pub packet_id: Option<PacketId>,
    pub payload: Bytes,
    pub properties: Properties,
}

impl Publish {
    /// About the memory a copy of it holds: itself, its payload, topic and
    /// properties (a queue of empty messages is not free, nor is a
    /// property list). What queues count it as.
    pub fn weight(&self) -> usize {
        std::mem::size_of::<Publish>()
            + self.payload.len()
            + self.topic.as_str().len()
            + self.properties.held_bytes()
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: an identifier and, in 5.0, a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub packet_id: PacketId,
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Ack {
    pub fn success(packet_id: PacketId) -> Ack {
        Ack::with_reason(packet_id, ReasonCode::SUCCESS)
    }

    pub fn with_reason(packet_id: PacketId, reason: ReasonCode) -> Ack {
        Ack {
            packet_id,
            reason,
            properties: Properties::new(),
        }
    }
}

/// When a subscription is made, whether retained messages are sent (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RetainHandling {
    /// Sent on every SUBSCRIBE; the only behaviour of 3.1.1.
    #[default]
    OnSubscribe = 0,
    /// Sent only if the subscription did not exist.
    OnNewSubscription = 1,
    Never = 2,
}

/// What a subscriber asks for with one filter. The fields after `qos` are
/// MQTT 5.0's and stay at their defaults in 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    /// Messages this client publishes are not sent back to it.
    pub no_local: bool,
    /// Forwarded messages keep their retain flag.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    pub fn qos(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: PacketId,
    /// Never empty [MQTT-3.8.3-3].
    pub filters: Vec<(TopicFilter, SubscriptionOptions)>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: PacketId,
    /// One per filter of the SUBSCRIBE, in order: the granted QoS or an
    /// error.
    pub codes: Vec<ReasonCode>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: PacketId,
    /// Never empty [MQTT-3.10.3-2].
    pub filters: Vec<TopicFilter>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: PacketId,
    /// One per filter in 5.0; always empty in 3.1.1, which has none.
    pub codes: Vec<ReasonCode>,
    pub properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Always `SUCCESS` in 3.1.1.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Disconnect {
    pub fn new(reason: ReasonCode) -> Disconnect {
        Disconnect {
            reason,
            properties: Properties::new(),
        }
    }
}

/// AUTH, for enhanced authentication (5.0 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Packet {
    /// A short name for logs and census counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
