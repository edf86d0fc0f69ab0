//! What a connection has encoded and not yet written. Packets are laid out
//! in one buffer, so that many small ones go in one write; a large payload
//! or block of User Properties stays the shared bytes it already is
//! (`codec::encode_sharing`) and is written in its turn. Copying a 16 MB
//! message into the buffer took a worker for tens of milliseconds (the
//! copy and the fresh pages it touched), and while a worker is in one poll
//! that long, no other connection's input is noticed.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use crate::codec::{
    self, Naming, Packet, PacketId, ProtocolVersion, Publish, PublishLayout, SharedFrame,
    SHARED_MIN_BYTES,
};

#[derive(Default)]
pub(super) struct Writes {
    /// Written first, in order: packets cut from `buf` before a large part,
    /// and the large parts. Boxed: few connections ever have one, and every
    /// connection's task holds this (24 bytes more in place).
    #[allow(clippy::box_collection, reason = "8 bytes in every task, not 32")]
    parts: Option<Box<VecDeque<Bytes>>>,
    /// Encoded after every part.
    buf: BytesMut,
    /// The largest `buf` has been since it was last replaced: a BytesMut's
    /// capacity hides what it has advanced past.
    buf_peak: usize,
}

fn is_large(p: &Publish) -> bool {
    p.payload.len() >= SHARED_MIN_BYTES || p.properties.user_bytes().len() >= SHARED_MIN_BYTES
}

impl Writes {
    pub fn encode(&mut self, packet: &Packet, version: ProtocolVersion) {
        // Only these are shared: any other packet is laid out in `buf`.
        if !matches!(packet, Packet::Publish(p) if is_large(p)) {
            return codec::encode(packet, version, &mut self.buf);
        }
        self.with_parts(|buf, parts| codec::encode_sharing(packet, version, buf, parts));
    }

    /// A PUBLISH to a 5.0 client, its topic named as `naming` says.
    pub fn encode_named(&mut self, p: &Publish, naming: Naming) {
        if !is_large(p) {
            let mut none = VecDeque::new();
            return codec::encode_publish_named(p, naming, &mut self.buf, &mut none);
        }
        self.with_parts(|buf, parts| codec::encode_publish_named(p, naming, buf, parts));
    }

    /// A frame fanned out to many connections, its topic named as `naming`
    /// says for this one.
    pub fn encoded_named(&mut self, layout: &PublishLayout, naming: Naming, id: Option<PacketId>) {
        let rest = layout.write_named(naming, id, &mut self.buf);
        self.encoded(&rest);
    }

    /// A frame fanned out to many connections, with this one's packet id
    /// written in at `at`.
    pub fn encoded_with_id(&mut self, bytes: &Bytes, at: usize, id: PacketId) {
        let rest = at + 2;
        self.buf.extend_from_slice(&bytes[..at]);
        self.buf.extend_from_slice(&id.get().to_be_bytes());
        // Small, it is copied from where it lies, without touching its count.
        if bytes.len() - rest < SHARED_MIN_BYTES {
            self.buf.extend_from_slice(&bytes[rest..]);
        } else {
            self.encoded(&bytes.slice(rest..));
        }
    }

    /// A frame fanned out to many connections, as it is or with this
    /// one's packet id `id` written in.
    pub fn encoded_frame(&mut self, frame: &SharedFrame, id: Option<PacketId>) {
        match id {
            Some(id) => {
                // Every frame built with a packet id knows where it lies;
                // written without ours, the first session's would go out.
                let at = frame.id_at().expect("a frame sent with an id has one");
                self.encoded_with_id(frame.bytes(), at, id);
            }
            None => self.encoded(frame.bytes()),
        }
    }

    fn with_parts(&mut self, encode: impl FnOnce(&mut BytesMut, &mut VecDeque<Bytes>)) {
        let parts = self.parts.get_or_insert_default();
        encode(&mut self.buf, parts);
        // Laid out whole after all (3.1.1 sends no User Properties).
        if parts.is_empty() {
            self.parts = None;
        }
    }

    /// A packet already encoded (a frame fanned out to many connections):
    /// copied if small, shared (not copied) if large.
    pub fn encoded(&mut self, bytes: &Bytes) {
        if bytes.len() < SHARED_MIN_BYTES {
            return self.buf.extend_from_slice(bytes);
        }
        let parts = self.parts.get_or_insert_default();
        if !self.buf.is_empty() {
            parts.push_back(self.buf.split().freeze());
        }
        parts.push_back(bytes.clone());
    }

    /// Takes what waits unwritten, in order, without copying it.
    pub fn take_unwritten(&mut self) -> impl Iterator<Item = Bytes> {
        let parts = self.parts.take().map(|parts| *parts).unwrap_or_default();
        let buf = (!self.buf.is_empty()).then(|| self.buf.split().freeze());
        parts.into_iter().chain(buf)
    }

    /// Drops whatever waits unwritten.
    pub fn clear(&mut self) {
        self.parts = None;
        self.buf.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_none() && self.buf.is_empty()
    }

    /// The bytes to write next.
    pub fn next(&self) -> &[u8] {
        match self.parts.as_ref().and_then(|parts| parts.front()) {
            Some(part) => part,
            None => &self.buf,
        }
    }

    /// `n` bytes of `next()` were written.
    pub fn advance(&mut self, n: usize) {
        let Some(parts) = &mut self.parts else {
            self.buf_peak = self.buf_peak.max(self.buf.len());
            return self.buf.advance(n);
        };
        let part = parts.front_mut().expect("no empty parts are kept");
        part.advance(n);
        if part.is_empty() {
            parts.pop_front();
        }
        if parts.is_empty() {
            self.parts = None;
        }
    }

    /// Lets go of a buffer that grew past `kept` once it is empty, so that
    /// an idle connection does not hold a burst's capacity.
    pub fn release_when_empty(&mut self, kept: usize) {
        self.buf_peak = self.buf_peak.max(self.buf.len());
        if self.is_empty() && self.buf_peak > kept {
            self.buf = BytesMut::new();
            self.buf_peak = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Properties, Property, Publish, QoS};
    use crate::topic::TopicName;

    fn publish(payload: Vec<u8>) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: TopicName::new("a/b").expect("topic"),
            packet_id: None,
            payload: payload.into(),
            properties: Properties::new(),
        })
    }

    /// Everything queued, written in the pieces `next` offers.
    fn written(writes: &mut Writes) -> (Vec<u8>, usize) {
        let (mut out, mut pieces) = (Vec::new(), 0);
        while !writes.is_empty() {
            let next = writes.next();
            out.extend_from_slice(next);
            pieces += 1;
            let n = next.len();
            writes.advance(n);
        }
        (out, pieces)
    }

    #[test]
    fn a_large_payload_is_written_from_its_own_bytes_in_order_with_the_rest() {
        let small = publish(b"hi".to_vec());
        let large = publish(vec![7; SHARED_MIN_BYTES]);
        let Packet::Publish(p) = &large else {
            unreachable!()
        };
        let payload_at = p.payload.as_ptr();
        let mut writes = Writes::default();
        for packet in [&small, &large, &small] {
            writes.encode(packet, ProtocolVersion::V5);
        }
        assert_eq!(
            writes
                .parts
                .as_deref()
                .and_then(|parts| parts.get(1))
                .map(|part| part.as_ptr()),
            Some(payload_at),
            "the payload is queued as it is, not copied"
        );
        let mut expected = BytesMut::new();
        for packet in [&small, &large, &small] {
            codec::encode(packet, ProtocolVersion::V5, &mut expected);
        }
        let (out, pieces) = written(&mut writes);
        assert_eq!(out, expected);
        assert_eq!(
            pieces, 3,
            "the first packet and the header, the payload, the last packet"
        );
    }

    /// A small PUBLISH with more than `SHARED_MIN_BYTES` of User Properties.
    fn with_user_properties() -> Packet {
        let mut packet = publish(b"hi".to_vec());
        let Packet::Publish(p) = &mut packet else {
            unreachable!()
        };
        for k in 0..SHARED_MIN_BYTES / 8 {
            p.properties
                .push(Property::UserProperty(format!("k{k}"), "v".into()));
        }
        p.properties
            .push(Property::ContentType("text/plain".into()));
        packet
    }

    #[test]
    fn large_user_properties_are_written_from_their_own_bytes() {
        let packet = with_user_properties();
        let Packet::Publish(p) = &packet else {
            unreachable!()
        };
        let user_at = p.properties.user_bytes().as_ptr();
        let mut writes = Writes::default();
        writes.encode(&packet, ProtocolVersion::V5);
        let parts = writes.parts.as_ref().expect("parts");
        assert_eq!(parts.get(1).map(|part| part.as_ptr()), Some(user_at));
        let mut expected = BytesMut::new();
        codec::encode(&packet, ProtocolVersion::V5, &mut expected);
        assert_eq!(written(&mut writes).0, expected);
    }

    #[test]
    fn large_user_properties_on_a_3_1_1_connection_leave_no_empty_part() {
        let packet = with_user_properties();
        let mut writes = Writes::default();
        writes.encode(&packet, ProtocolVersion::V311);
        let mut expected = BytesMut::new();
        codec::encode(&packet, ProtocolVersion::V311, &mut expected);
        assert_eq!(written(&mut writes), (expected.to_vec(), 1));
    }

    #[test]
    fn a_large_frame_is_queued_after_what_was_encoded_before_it() {
        let mut writes = Writes::default();
        writes.encode(&publish(b"first".to_vec()), ProtocolVersion::V311);
        writes.encoded(&Bytes::from(vec![1; SHARED_MIN_BYTES]));
        writes.encoded(&Bytes::from_static(b"small"));
        let (out, pieces) = written(&mut writes);
        assert_eq!(pieces, 3);
        assert_eq!(&out[out.len() - 5..], b"small");
        assert_eq!(out[out.len() - 6], 1);
    }

    /// A QoS 1 frame with our packet id written in is the packet encoded
    /// with that id, for remaining lengths of 1 to 4 bytes, and a large
    /// payload's rest shared rather than copied.
    #[test]
    fn a_frame_with_our_id_is_the_packet_with_it() {
        let sizes = [0, 2, 100, 130, 16_300, 16_400, SHARED_MIN_BYTES, 2_100_000];
        for payload in sizes.map(|n| vec![7; n]) {
            for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
                let Packet::Publish(mut p) = publish(payload.clone()) else {
                    unreachable!()
                };
                p.qos = QoS::AtLeastOnce;
                p.packet_id = PacketId::new(1);
                let frame = crate::codec::SharedFrame::new(Packet::Publish(p.clone()), version);
                let own = PacketId::new(0x1234).expect("non-zero");
                let mut writes = Writes::default();
                writes.encoded_with_id(frame.bytes(), frame.id_at().expect("an id"), own);
                p.packet_id = Some(own);
                let mut expected = BytesMut::new();
                codec::encode(&Packet::Publish(p), version, &mut expected);
                assert_eq!(written(&mut writes).0, expected, "{version:?}");
            }
        }
    }

    #[test]
    fn a_large_payload_named_by_alias_is_written_from_its_own_bytes() {
        let small = publish(b"hi".to_vec());
        let Packet::Publish(large) = publish(vec![7; SHARED_MIN_BYTES]) else {
            unreachable!()
        };
        let frame =
            crate::codec::SharedFrame::new(Packet::Publish(large.clone()), ProtocolVersion::V5);
        let frame_bytes = frame.bytes();
        let layout = PublishLayout::read(frame_bytes).expect("a PUBLISH");
        let mut writes = Writes::default();
        writes.encode(&small, ProtocolVersion::V5);
        writes.encode_named(&large, Naming::SetAlias(1));
        writes.encoded_named(&layout, Naming::Alias(1), None);
        let parts = writes.parts.as_deref().expect("parts");
        assert_eq!(
            parts.get(1).map(|part| part.as_ptr()),
            Some(large.payload.as_ptr())
        );
        let payload_in_frame = frame_bytes.len() - SHARED_MIN_BYTES;
        assert_eq!(
            parts.get(3).map(|part| part.as_ptr()),
            Some(frame_bytes[payload_in_frame..].as_ptr()),
            "the frame's own bytes from its properties (none here) on"
        );
        let mut expected = BytesMut::new();
        codec::encode(&small, ProtocolVersion::V5, &mut expected);
        for naming in [Naming::SetAlias(1), Naming::Alias(1)] {
            let mut parts = VecDeque::new();
            let mut buf = BytesMut::new();
            codec::encode_publish_named(&large, naming, &mut buf, &mut parts);
            parts
                .iter()
                .for_each(|part| expected.extend_from_slice(part));
            expected.extend_from_slice(&buf);
        }
        let (out, pieces) = written(&mut writes);
        assert!(
            out == expected,
            "{} bytes, not the {} expected",
            out.len(),
            expected.len()
        );
        assert_eq!(pieces, 4);
    }
}
