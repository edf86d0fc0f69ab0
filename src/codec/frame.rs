//! A packet encoded once and shared: a PUBLISH of which every subscriber of
//! one protocol version gets the same bytes, but for the packet id of a QoS
//! 1 copy, which each connection writes in as it copies the frame. The
//! broker builds it under its lock, where only its length is worked out;
//! the first connection that writes it encodes it, outside the lock.

use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::{Bytes, BytesMut};

use super::aliases_sent::{Naming, ALIAS_PROPERTY_BYTES};
use super::fixed_header::remaining_length;
use super::sink::{varint_len, Sink};
use super::{encode, encoded_len, Packet, PacketId, Property, ProtocolVersion};

#[derive(Debug)]
pub struct SharedFrame {
    version: ProtocolVersion,
    len: usize,
    /// Where its packet id lies, if it has one.
    id_at: Option<usize>,
    /// The packet until it is first written, so that a frame waiting in a
    /// slow reader's queue no longer pins the publisher's read buffer that
    /// the payload is a slice of.
    packet: Mutex<Option<Packet>>,
    /// Its bytes once written, read by every other connection without a
    /// lock: behind the mutex, a fan-out at QoS 1 had the two workers
    /// taking it from each other for every copy.
    encoded: OnceLock<Bytes>,
}

impl SharedFrame {
    pub fn new(packet: Packet, version: ProtocolVersion) -> SharedFrame {
        let len = encoded_len(&packet, version);
        let id_at = match &packet {
            // The fixed header, then the topic, then the id.
            Packet::Publish(p) if p.packet_id.is_some() => (1..=4)
                .find(|&n| varint_len(len - 1 - n) == n)
                .map(|header| 1 + header + 2 + p.topic.as_str().len()),
            _ => None,
        };
        SharedFrame {
            len,
            id_at,
            version,
            packet: Mutex::new(Some(packet)),
            encoded: OnceLock::new(),
        }
    }

    /// Where its packet id lies, if it has one: each copy gets its own.
    pub fn id_at(&self) -> Option<usize> {
        self.id_at
    }

    /// Its size on the wire, without encoding it.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a packet has at least its fixed header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The packet as it goes on the wire, encoded on the first call.
    pub fn bytes(&self) -> &Bytes {
        self.encoded.get_or_init(|| {
            // A panic while encoding leaves the packet there to encode again.
            let mut packet = self.packet.lock().unwrap_or_else(PoisonError::into_inner);
            let mut buf = BytesMut::with_capacity(self.len);
            encode(
                packet.as_ref().expect("kept until encoded"),
                self.version,
                &mut buf,
            );
            *packet = None;
            buf.freeze()
        })
    }
}

/// A PUBLISH as `encode` laid it out, read back so that it can be sent to
/// one client with its topic named by our alias: the frame is shared, the
/// alias is that client's own. Only its head is laid out again; its
/// properties and payload follow as the bytes they are.
pub struct PublishLayout<'a> {
    frame: &'a Bytes,
    topic: &'a str,
    /// Where the packet id, if any, begins.
    after_topic: usize,
    /// Where the properties' length begins.
    properties_at: usize,
    properties_len: usize,
    /// Where the properties begin: what follows is sent as it is.
    properties: usize,
}

impl<'a> PublishLayout<'a> {
    /// `None` if `frame` is not a whole 5.0 PUBLISH: never, for what
    /// `SharedFrame::bytes` gives.
    pub fn read(frame: &'a Bytes) -> Option<PublishLayout<'a>> {
        let (&first, rest) = frame.split_first()?;
        if first >> 4 != 3 {
            return None;
        }
        let (body_len, header_len) = remaining_length(rest).ok()??;
        if rest.len() != header_len + body_len {
            return None;
        }
        let topic_at = 1 + header_len + 2;
        let topic_len = usize::from(u16::from_be_bytes([
            *frame.get(topic_at - 2)?,
            *frame.get(topic_at - 1)?,
        ]));
        let topic = std::str::from_utf8(frame.get(topic_at..topic_at + topic_len)?).ok()?;
        let after_topic = topic_at + topic_len;
        let id_len = if (first >> 1) & 0b11 == 0 { 0 } else { 2 };
        let properties_at = after_topic + id_len;
        let (properties_len, len_len) = remaining_length(frame.get(properties_at..)?).ok()??;
        let properties = properties_at + len_len;
        if frame.len() < properties + properties_len {
            return None;
        }
        Some(PublishLayout {
            frame,
            topic,
            after_topic,
            properties_at,
            properties_len,
            properties,
        })
    }

    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// Appends the head of the PUBLISH, its topic named as `naming` says
    /// and its packet id `id` if given, to `buf`; returns the rest, its
    /// properties and payload, to follow.
    pub fn write_named(&self, naming: Naming, id: Option<PacketId>, buf: &mut BytesMut) -> Bytes {
        let (topic, alias) = naming.of(self.topic);
        let own_id = id.map(|id| id.get().to_be_bytes());
        let id = match &own_id {
            Some(bytes) => &bytes[..],
            None => &self.frame[self.after_topic..self.properties_at],
        };
        let properties_len = self.properties_len + alias.map_or(0, |_| ALIAS_PROPERTY_BYTES);
        let rest = self.frame.slice(self.properties..);
        let body_len = 2
            + topic.len()
            + id.len()
            + varint_len(properties_len)
            + (properties_len - self.properties_len)
            + rest.len();
        buf.reserve(5 + body_len - rest.len());
        buf.u8(self.frame[0]);
        buf.varint(body_len);
        buf.string(topic);
        buf.slice(id);
        buf.varint(properties_len);
        if let Some(alias) = alias {
            buf.u8(Property::TopicAlias(alias).id());
            buf.u16(alias);
        }
        rest
    }
}

/// Equal when their bytes are.
impl PartialEq for SharedFrame {
    fn eq(&self, other: &SharedFrame) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for SharedFrame {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Publish, QoS};
    use crate::topic::TopicName;

    #[test]
    fn encodes_once_to_the_length_it_announced() {
        let packet = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: TopicName::new("a/b").unwrap(),
            packet_id: None,
            payload: Bytes::from_static(b"hello"),
            properties: Default::default(),
        });
        let frame = SharedFrame::new(packet.clone(), ProtocolVersion::V5);
        let first = frame.bytes();
        assert_eq!(first.len(), frame.len());
        assert_eq!(frame.bytes().as_ptr(), first.as_ptr(), "encoded once");
        let mut expected = BytesMut::new();
        encode(&packet, ProtocolVersion::V5, &mut expected);
        assert_eq!(*first, expected);
    }

    fn publish(qos: QoS, payload: Vec<u8>) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: true,
            topic: TopicName::new("sensors/building-7/floor-3/temperature").unwrap(),
            packet_id: (qos != QoS::AtMostOnce).then(|| crate::codec::PacketId::new(9).unwrap()),
            payload: payload.into(),
            properties: vec![
                Property::MessageExpiryInterval(60),
                Property::UserProperty("k".into(), "v".into()),
            ]
            .into(),
        }
    }

    /// What a client that allows `max` aliases reads from `bytes`.
    fn read_back(bytes: &[u8], aliases: &mut crate::codec::TopicAliases) -> Publish {
        let mut buf = BytesMut::from(bytes);
        let options = crate::codec::DecodeOptions {
            version: ProtocolVersion::V5,
            ..Default::default()
        };
        match crate::codec::decode_with_aliases(&mut buf, &options, aliases) {
            Ok(Some(Packet::Publish(p))) if buf.is_empty() => p,
            other => panic!("not one PUBLISH: {other:?}"),
        }
    }

    #[test]
    fn a_frame_named_by_alias_is_what_the_packet_named_so_encodes_to() {
        let namings = [Naming::Topic, Naming::SetAlias(3), Naming::Alias(3)];
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            for payload in [vec![], b"21.5".to_vec(), vec![1; 300]] {
                let p = publish(qos, payload);
                let frame = SharedFrame::new(Packet::Publish(p.clone()), ProtocolVersion::V5);
                let bytes = frame.bytes();
                let layout = PublishLayout::read(bytes).expect("our own PUBLISH");
                assert_eq!(layout.topic(), p.topic.as_str());
                let mut client = crate::codec::TopicAliases::new(3);
                for naming in namings {
                    let mut relaid = BytesMut::new();
                    let rest = layout.write_named(naming, None, &mut relaid);
                    relaid.extend_from_slice(&rest);
                    let mut expected = BytesMut::new();
                    crate::codec::encode_publish_named(
                        &p,
                        naming,
                        &mut expected,
                        &mut Default::default(),
                    );
                    assert_eq!(relaid, expected, "{naming:?}");
                    // The alias is set by the first and stands for the topic
                    // in the last: the client reads the same message each time.
                    let mut read = read_back(&relaid, &mut client);
                    let alias = read.properties.topic_alias();
                    read.properties
                        .retain(|q| !matches!(q, Property::TopicAlias(_)));
                    assert_eq!(read, p, "{naming:?}");
                    let sent = match naming {
                        Naming::Topic => None,
                        Naming::SetAlias(a) | Naming::Alias(a) => Some(a),
                    };
                    assert_eq!(alias, sent);
                }
                let by_alias = {
                    let mut b = BytesMut::new();
                    let rest = layout.write_named(Naming::Alias(3), None, &mut b);
                    b.len() + rest.len()
                };
                assert_eq!(by_alias, bytes.len() + 3 - p.topic.as_str().len());
            }
        }
    }

    /// Named by alias, a QoS 1 frame carries the packet id given, not its own.
    #[test]
    fn a_frame_named_by_alias_carries_the_id_given() {
        let p = publish(QoS::AtLeastOnce, b"21.5".to_vec());
        let frame = SharedFrame::new(Packet::Publish(p.clone()), ProtocolVersion::V5);
        let layout = PublishLayout::read(frame.bytes()).expect("our own PUBLISH");
        let own = PacketId::new(0x1234).expect("non-zero");
        let mut relaid = BytesMut::new();
        let rest = layout.write_named(Naming::SetAlias(2), Some(own), &mut relaid);
        relaid.extend_from_slice(&rest);
        let mut client = crate::codec::TopicAliases::new(3);
        let read = read_back(&relaid, &mut client);
        assert_eq!(read.packet_id, Some(own));
        assert_eq!(read.payload, p.payload);
    }

    #[test]
    fn what_is_not_a_whole_publish_has_no_layout() {
        let bytes = SharedFrame::new(
            Packet::Publish(publish(QoS::AtMostOnce, vec![])),
            ProtocolVersion::V5,
        )
        .bytes()
        .clone();
        for cut in 0..bytes.len() {
            assert!(
                PublishLayout::read(&bytes.slice(..cut)).is_none(),
                "cut at {cut}"
            );
        }
        assert!(
            PublishLayout::read(&Bytes::from_static(&[0xc0, 0])).is_none(),
            "PINGREQ"
        );
    }
}
