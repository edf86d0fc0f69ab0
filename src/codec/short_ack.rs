//! An ack of a packet id and, in 5.0, a reason, read where it lies in the
//! read buffer. Every other body is copied out first (`decode_frame`), so
//! that what a packet keeps does not pin the buffer; an ack keeps nothing,
//! and its copy was an allocation and a free for each PUBACK: 3% of the
//! broker's CPU in a fan-out at QoS 1. Anything else, and every malformed
//! ack, goes the general way, which says what is wrong with it.

use super::packet::{Ack, Packet, PacketId, ReasonCode};

/// The ack `body` is, if it is a well-formed short one.
pub(super) fn short_ack(first: u8, body: &[u8], v5: bool) -> Option<Packet> {
    let reasons = match first >> 4 {
        4 | 5 => super::decode::PUBACK_REASONS,
        6 | 7 => super::decode::PUBREL_REASONS,
        _ => return None,
    };
    let (id, reason) = match *body {
        [high, low] => (u16::from_be_bytes([high, low]), None),
        [high, low, code] if v5 && reasons.contains(&code) => {
            (u16::from_be_bytes([high, low]), Some(code))
        }
        _ => return None,
    };
    let mut ack = Ack::success(PacketId::new(id)?);
    if let Some(code) = reason {
        ack.reason = ReasonCode(code);
    }
    Some(match first >> 4 {
        4 => Packet::PubAck(ack),
        5 => Packet::PubRec(ack),
        6 => Packet::PubRel(ack),
        _ => Packet::PubComp(ack),
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::codec::decode::decode_body;
    use crate::codec::{DecodeOptions, ProtocolVersion};

    /// Whatever it reads, the general way reads the same; over every body
    /// of two and three bytes whose id is 0, 1 or 0x1234 and every reason.
    #[test]
    fn reads_what_the_general_way_reads() {
        let mut read = 0;
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let opts = DecodeOptions {
                version,
                ..DecodeOptions::default()
            };
            for first in [0x40u8, 0x50, 0x62, 0x70] {
                for id in [0u16, 1, 0x1234] {
                    let [high, low] = id.to_be_bytes();
                    let mut bodies = vec![vec![high, low]];
                    bodies.extend((0..=255u8).map(|code| vec![high, low, code]));
                    for body in bodies {
                        let general = decode_body(first, Bytes::from(body.clone()), &opts, None);
                        match short_ack(first, &body, version == ProtocolVersion::V5) {
                            Some(packet) => {
                                read += 1;
                                assert_eq!(general, Ok(packet), "{first:#x} {body:?}");
                            }
                            // Left to the general way: only what it refuses.
                            None => assert!(general.is_err(), "{first:#x} {body:?}"),
                        }
                    }
                }
            }
        }
        // Ids 1 and 0x1234, 4 kinds: 2-byte bodies in both versions, and
        // the 5.0 reasons each kind allows (9 for PUBACK/PUBREC, 2 for
        // PUBREL/PUBCOMP).
        assert_eq!(read, 2 * 4 * 2 + 2 * (9 + 9 + 2 + 2));
    }
}
