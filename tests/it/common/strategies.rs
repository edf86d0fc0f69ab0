//! What the property tests of both protocol versions draw and how they damage
//! and decode it, written once so that the 3.1.1 and 5.0 properties test
//! the codec the same way: what differs between them is a parameter.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tern::codec::{decode, encoded_len, PacketId, ProtocolVersion, QoS};
use tern::topic::{TopicFilter, TopicName};

use super::codec::{decode_options, encoded};

/// One topic level: any characters but U+0000, the separator and wildcards.
fn level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9]{0,6}", "[^\\x00/+#]{0,6}"]
}

/// A topic name of one to `max_levels` levels.
pub fn topic_name(max_levels: usize) -> impl Strategy<Value = TopicName> {
    vec(level(), 1..=max_levels)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("topic names are not empty", |s| !s.is_empty())
        .prop_map(|s| TopicName::new(&s).unwrap())
}

/// A topic filter of up to `max_levels` levels, some `+`, and perhaps a
/// final `#`.
pub fn topic_filter(max_levels: usize) -> impl Strategy<Value = TopicFilter> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(filter_level, 0..=max_levels), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
        .prop_filter("topic filters are not empty", |s| !s.is_empty())
        .prop_map(|s| TopicFilter::new(&s).unwrap())
}

/// A UTF-8 string of up to `max_chars` characters, none U+0000, often beyond
/// ASCII.
pub fn text(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\\x00]{{0,{max_chars}}}")).expect("a valid regex")
}

pub fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

pub fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

pub fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

/// Damage done to an encoding: flip one bit, cut it short, or add a byte.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
    ]
}

pub fn mutate(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::FlipBit(..) | Mutation::Truncate(_) if bytes.is_empty() => {}
        Mutation::FlipBit(at, bit) => {
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mutation::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
    }
    bytes
}

/// A first byte drawn from `first`, then a header that tells the truth about
/// the length of an arbitrary body, so the body parsers, not only the header
/// check, see the garbage.
pub fn framed_garbage(first: impl Strategy<Value = u8>) -> impl Strategy<Value = Vec<u8>> {
    (first, vec(any::<u8>(), 0..200)).prop_map(|(first, body)| {
        let mut bytes = vec![first];
        let len = body.len();
        if len < 128 {
            bytes.push(len as u8);
        } else {
            bytes.extend([(len % 128) as u8 | 0x80, (len / 128) as u8]);
        }
        bytes.extend(body);
        bytes
    })
}

/// Decodes as a connection of `version` until the decoder stops: it must not
/// panic, each packet it yields must consume bytes and be one the encoder
/// reproduces (a CONNECT in its own level) in as many bytes as `encoded_len`
/// says, and `Ok(None)` must leave the buffer as it was.
pub fn decode_everything(bytes: &[u8], version: ProtocolVersion) -> Result<(), TestCaseError> {
    let opts = decode_options(version);
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.clone();
        match decode(&mut buf, &opts) {
            Ok(Some(p)) => {
                prop_assert!(buf.len() < before.len(), "a packet consumed nothing");
                let mut again = encoded([&p], version);
                prop_assert_eq!(again.len(), encoded_len(&p, version));
                prop_assert_eq!(decode(&mut again, &opts), Ok(Some(p)));
            }
            Ok(None) => {
                prop_assert_eq!(buf, before);
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}
