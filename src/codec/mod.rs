//! The MQTT codec, sans-IO: bytes in, `Packet` out; `Packet` in, bytes out.
//! It knows nothing of sockets or tokio, so the server, the simulation's
//! clients and the tests all share it.

mod aliases;
mod aliases_sent;
mod decode;
mod encode;
mod fixed_header;
mod frame;
mod packet;
mod properties;
mod short_ack;
mod sink;
mod user_properties;

pub use aliases::TopicAliases;
pub use aliases_sent::{Naming, SentAliases, ALIAS_PROPERTY_BYTES};
pub use decode::{decode, decode_with_aliases};
pub use encode::{
    encode, encode_by_alias, encode_publish_as, encode_publish_named, encode_sharing, encoded_len,
    publish_len,
};
pub use frame::{PublishLayout, SharedFrame};
pub use packet::*;
pub use properties::{Properties, Property, PropertyContext};
pub use sink::SHARED_MIN_BYTES;

/// The largest packet MQTT can describe: 268,435,455 bytes of body plus the
/// five bytes of its fixed header.
pub const PACKET_SIZE_PROTOCOL_MAX_BYTES: usize = 268_435_455 + 5;

/// What the decoder needs to know about the connection it reads from.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    /// Before CONNECT this is 3.1.1; CONNECT carries its own level.
    pub version: ProtocolVersion,
    /// A packet whose fixed header announces more than this is refused before
    /// its body is read.
    pub packet_size_max_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            version: ProtocolVersion::V311,
            packet_size_max_bytes: PACKET_SIZE_PROTOCOL_MAX_BYTES,
        }
    }
}

/// Why bytes are not a packet. Each is a peer's mistake: the connection that
/// sent it is closed, nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet type {0} is reserved")]
    ReservedPacketType(u8),
    #[error("reserved flags 0x{flags:x} are wrong for {kind}")]
    ReservedFlags { kind: &'static str, flags: u8 },
    #[error("remaining length is longer than four bytes")]
    RemainingLengthTooLong,
    #[error("packet of {size} bytes is over the limit of {max}")]
    PacketTooLarge { size: usize, max: usize },
    #[error("{kind} ends before its fields do")]
    Truncated { kind: &'static str },
    #[error("{kind} has {extra} bytes after its fields")]
    TrailingBytes { kind: &'static str, extra: usize },
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    #[error("string contains U+0000")]
    NullCharacter,
    #[error("packet identifier is zero")]
    ZeroPacketId,
    #[error("QoS 3 is not a QoS")]
    InvalidQos,
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] crate::topic::TopicError),
    #[error("protocol name {0:?} is not MQTT")]
    InvalidProtocolName(String),
    #[error("protocol level {0} is not supported")]
    UnsupportedProtocolLevel(u8),
    #[error("CONNECT reserved flag is set")]
    ConnectReservedFlag,
    #[error("will QoS or retain set without a will")]
    WillFlagsWithoutWill,
    #[error("password without a user name")]
    PasswordWithoutUsername,
    #[error("{kind} has no topic filters")]
    NoTopicFilters { kind: &'static str },
    #[error("subscription options reserved bits are set: 0x{0:x}")]
    SubscriptionOptionsReserved(u8),
    #[error("invalid reason code 0x{0:x}")]
    InvalidReasonCode(u8),
    #[error("CONNACK flags are invalid: 0x{0:x}")]
    InvalidConnAckFlags(u8),
    #[error("property identifier 0x{0:x} is unknown")]
    UnknownProperty(u8),
    #[error("property 0x{id:x} is not allowed in {kind}")]
    PropertyNotAllowed { kind: &'static str, id: u8 },
    #[error("property 0x{id:x} appears twice in {kind}")]
    DuplicateProperty { kind: &'static str, id: u8 },
    #[error("property 0x{id:x} has an invalid value")]
    InvalidPropertyValue { id: u8 },
    #[error("properties are longer than their packet")]
    PropertiesOverrun,
    #[error("variable byte integer is longer than four bytes")]
    VarIntTooLong,
    #[error("reason code 0x{code:x} is not valid in {kind}")]
    InvalidReason { kind: &'static str, code: u8 },
    #[error("{kind} is not a packet of MQTT 3.1.1")]
    NotInVersion { kind: &'static str },
    #[error("PUBLISH has an empty topic and no topic alias")]
    EmptyTopicWithoutAlias,
    #[error("topic alias {0} is over the maximum")]
    TopicAliasInvalid(u16),
    #[error("topic alias {0} was never set")]
    TopicAliasUnknown(u16),
}
