//! Bytes to packets, strictly by the MQTT 3.1.1 specification. Partial input
//! is left in the buffer untouched, so a read can be cancelled and resumed.

use bytes::{Buf, Bytes, BytesMut};

use super::packet::*;
use super::{DecodeError, DecodeOptions};
use crate::topic::{TopicFilter, TopicName};

/// How much room a partial packet makes in `buf` at a time. The rest of a
/// large packet is made room for as it arrives, not on the header's word.
const RESERVE_AHEAD_MAX_BYTES: usize = 64 * 1024;

/// Takes one packet off the front of `buf`. `Ok(None)` means the packet is not
/// all there yet; the bytes stay in `buf`. A packet over the size limit is
/// refused from its fixed header, before its body arrives.
pub fn decode(buf: &mut BytesMut, opts: &DecodeOptions) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    check_fixed_flags(first)?;
    let Some((body_len, header_len)) = remaining_length(&buf[1..])? else {
        return Ok(None);
    };
    let size = header_len + 1 + body_len;
    if size > opts.packet_size_max_bytes {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: opts.packet_size_max_bytes,
        });
    }
    if buf.len() < size {
        buf.reserve((size - buf.len()).min(RESERVE_AHEAD_MAX_BYTES));
        return Ok(None);
    }
    // A copy, not a split: a payload kept (retained, queued) must not pin
    // the whole read buffer it arrived in, and the buffer is reused at once.
    let frame = Bytes::copy_from_slice(&buf[1 + header_len..size]);
    buf.advance(size);
    decode_body(first, frame, opts).map(Some)
}

/// The variable-length body size: seven bits a byte, at most four bytes.
/// Returns the length and how many bytes encoded it.
fn remaining_length(bytes: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().enumerate() {
        if i == 4 {
            return Err(DecodeError::RemainingLengthTooLong);
        }
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() >= 4 {
        return Err(DecodeError::RemainingLengthTooLong);
    }
    Ok(None)
}

fn kind_of(packet_type: u8) -> &'static str {
    const KINDS: [&str; 16] = [
        "reserved",
        "CONNECT",
        "CONNACK",
        "PUBLISH",
        "PUBACK",
        "PUBREC",
        "PUBREL",
        "PUBCOMP",
        "SUBSCRIBE",
        "SUBACK",
        "UNSUBSCRIBE",
        "UNSUBACK",
        "PINGREQ",
        "PINGRESP",
        "DISCONNECT",
        "AUTH",
    ];
    KINDS[usize::from(packet_type & 0x0f)]
}

/// Checked on the first byte alone, so garbage is refused at once.
fn check_fixed_flags(first: u8) -> Result<(), DecodeError> {
    let packet_type = first >> 4;
    let flags = first & 0x0f;
    let expected = match packet_type {
        // AUTH (15) exists only in MQTT 5.0.
        0 | 15 => return Err(DecodeError::ReservedPacketType(packet_type)),
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQos);
            }
            // DUP must be 0 for QoS 0 [MQTT-3.3.1-2].
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::ReservedFlags {
                    kind: "PUBLISH",
                    flags,
                });
            }
            return Ok(());
        }
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::ReservedFlags {
            kind: kind_of(packet_type),
            flags,
        });
    }
    Ok(())
}

fn decode_body(first: u8, body: Bytes, opts: &DecodeOptions) -> Result<Packet, DecodeError> {
    let packet_type = first >> 4;
    let mut r = Reader {
        buf: body,
        kind: kind_of(packet_type),
    };
    let packet = match packet_type {
        1 => Packet::Connect(connect(&mut r)?),
        2 => Packet::ConnAck(connack(&mut r)?),
        3 => Packet::Publish(publish(first, &mut r)?),
        4 => Packet::PubAck(ack(&mut r)?),
        5 => Packet::PubRec(ack(&mut r)?),
        6 => Packet::PubRel(ack(&mut r)?),
        7 => Packet::PubComp(ack(&mut r)?),
        8 => Packet::Subscribe(subscribe(&mut r)?),
        9 => Packet::SubAck(suback(&mut r)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r)?),
        11 => Packet::UnsubAck(UnsubAck {
            packet_id: r.packet_id()?,
            codes: Vec::new(),
        }),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(Disconnect {
            reason: ReasonCode::SUCCESS,
        }),
        _ => unreachable!("check_fixed_flags refused packet type {packet_type}"),
    };
    // Only 3.1.1 is decoded so far; in it every packet's fields fill its body.
    debug_assert_eq!(opts.version, ProtocolVersion::V311);
    r.finish()?;
    Ok(packet)
}

/// A cursor over one packet's body that names the packet in its errors.
struct Reader {
    buf: Bytes,
    kind: &'static str,
}

impl Reader {
    fn need(&self, n: usize) -> Result<(), DecodeError> {
        if self.buf.remaining() < n {
            return Err(DecodeError::Truncated { kind: self.kind });
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// Two-byte length, then that many bytes.
    fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.need(len)?;
        Ok(self.buf.split_to(len))
    }

    /// A UTF-8 string: well-formed and without U+0000 [MQTT-1.5.3].
    fn string(&mut self) -> Result<String, DecodeError> {
        let bytes = self.binary()?;
        let s = std::str::from_utf8(&bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        if s.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(s.to_owned())
    }

    fn is_empty(&self) -> bool {
        !self.buf.has_remaining()
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.buf.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes {
                kind: self.kind,
                extra,
            }),
        }
    }
}

fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.string()?;
    let level = r.u8()?;
    match (name.as_str(), level) {
        ("MQTT", 4) => {}
        // 3.1 ("MQIsdp", 3) and 5.0 are answered with CONNACK 0x01.
        ("MQTT", _) | ("MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => return Err(DecodeError::InvalidProtocolName(name)),
    }
    let flags = r.u8()?;
    if flags & 0b1 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let has_will = flags & 0b100 != 0;
    let will_qos = QoS::from_u8((flags >> 3) & 0b11).ok_or(DecodeError::InvalidQos)?;
    let will_retain = flags & 0b10_0000 != 0;
    if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::WillFlagsWithoutWill);
    }
    let has_password = flags & 0b100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    if has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let client_id = r.string()?;
    let will = if has_will {
        Some(LastWill {
            topic: TopicName::new(&r.string()?)?,
            payload: r.binary()?,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = has_username.then(|| r.string()).transpose()?;
    let password = has_password.then(|| r.binary()).transpose()?;
    Ok(Connect {
        version: ProtocolVersion::V311,
        clean_session: flags & 0b10 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn connack(r: &mut Reader) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & !1 != 0 {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    let code = match r.u8()? {
        0 => ConnectCode::Accepted,
        1 => ConnectCode::UnacceptableProtocolVersion,
        2 => ConnectCode::IdentifierRejected,
        3 => ConnectCode::ServerUnavailable,
        4 => ConnectCode::BadUsernameOrPassword,
        5 => ConnectCode::NotAuthorized,
        other => return Err(DecodeError::InvalidReasonCode(other)),
    };
    // A refused connection has no session [MQTT-3.2.2-4].
    if flags != 0 && code != ConnectCode::Accepted {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    Ok(ConnAck {
        session_present: flags & 1 != 0,
        code,
    })
}

fn publish(first: u8, r: &mut Reader) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 0b11).ok_or(DecodeError::InvalidQos)?;
    let topic = TopicName::new(&r.string()?)?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(r.packet_id()?),
    };
    Ok(Publish {
        dup: first & 0b1000 != 0,
        qos,
        retain: first & 1 != 0,
        topic,
        packet_id,
        payload: r.rest(),
    })
}

fn ack(r: &mut Reader) -> Result<Ack, DecodeError> {
    Ok(Ack::success(r.packet_id()?))
}

fn subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = TopicFilter::new(&r.string()?)?;
        let options = r.u8()?;
        if options & !0b11 != 0 {
            return Err(DecodeError::SubscriptionOptionsReserved(options));
        }
        let qos = QoS::from_u8(options).ok_or(DecodeError::InvalidQos)?;
        filters.push((filter, SubscriptionOptions { qos }));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters { kind: "SUBSCRIBE" });
    }
    Ok(Subscribe { packet_id, filters })
}

fn suback(r: &mut Reader) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut codes = Vec::new();
    while !r.is_empty() {
        let code = r.u8()?;
        if !matches!(code, 0 | 1 | 2 | 0x80) {
            return Err(DecodeError::InvalidReasonCode(code));
        }
        codes.push(ReasonCode(code));
    }
    // One code per filter of the SUBSCRIBE [MQTT-3.8.4-5], which has at
    // least one [MQTT-3.8.3-3].
    if codes.is_empty() {
        return Err(DecodeError::Truncated { kind: "SUBACK" });
    }
    Ok(SubAck { packet_id, codes })
}

fn unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(TopicFilter::new(&r.string()?)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters {
            kind: "UNSUBSCRIBE",
        });
    }
    Ok(Unsubscribe { packet_id, filters })
}
