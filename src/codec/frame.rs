//! A packet encoded once and shared: a QoS 0 PUBLISH of which every
//! subscriber of one protocol version gets the same bytes. The broker
//! builds it under its lock, where only its length is worked out; the first
//! connection that writes it encodes it, outside the lock.

use std::sync::{Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use super::{encode, encoded_len, Packet, ProtocolVersion};

#[derive(Debug)]
pub struct SharedFrame {
    version: ProtocolVersion,
    len: usize,
    /// The packet until it is first written; then its bytes alone, so that
    /// a frame waiting in a slow reader's queue no longer pins the
    /// publisher's read buffer that the payload is a slice of.
    body: Mutex<Body>,
}

#[derive(Debug)]
enum Body {
    Packet(Packet),
    Encoded(Bytes),
}

impl SharedFrame {
    pub fn new(packet: Packet, version: ProtocolVersion) -> SharedFrame {
        SharedFrame {
            len: encoded_len(&packet, version),
            version,
            body: Mutex::new(Body::Packet(packet)),
        }
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
    pub fn bytes(&self) -> Bytes {
        // A panic while encoding leaves the packet there to encode again.
        let mut body = self.body.lock().unwrap_or_else(PoisonError::into_inner);
        match &*body {
            Body::Encoded(bytes) => bytes.clone(),
            Body::Packet(packet) => {
                let mut buf = BytesMut::with_capacity(self.len);
                encode(packet, self.version, &mut buf);
                let bytes = buf.freeze();
                *body = Body::Encoded(bytes.clone());
                bytes
            }
        }
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
        assert_eq!(first, expected);
    }
}
