//! Bytes to packets, strictly by the MQTT 3.1.1 and 5.0 specifications.
//! Partial input is left in the buffer untouched, so a read can be cancelled
//! and resumed.

use bytes::{Buf, Bytes, BytesMut};

use super::fixed_header::{check_fixed_flags, kind_of, remaining_length};
use super::packet::*;
use super::short_ack::short_ack;
use super::user_properties::{UserBytes, USER_PROPERTY};
use super::{DecodeError, DecodeOptions, Properties, Property, PropertyContext, TopicAliases};
use crate::topic::{TopicFilter, TopicName};

/// How much room a partial packet makes in `buf` at a time. The rest of a
/// large packet is made room for as it arrives, not on the header's word.
const RESERVE_AHEAD_MAX_BYTES: usize = 64 * 1024;

/// Takes one packet off the front of `buf`. `Ok(None)` means the packet is not
/// all there yet; the bytes stay in `buf`. A packet over the size limit is
/// refused from its fixed header, before its body arrives.
pub fn decode(buf: &mut BytesMut, opts: &DecodeOptions) -> Result<Option<Packet>, DecodeError> {
    decode_frame(buf, opts, None)
}

/// As `decode`, for a server reading a client: a 5.0 PUBLISH's Topic Alias
/// is resolved with, or set in, `aliases`.
pub fn decode_with_aliases(
    buf: &mut BytesMut,
    opts: &DecodeOptions,
    aliases: &mut TopicAliases,
) -> Result<Option<Packet>, DecodeError> {
    decode_frame(buf, opts, Some(aliases))
}

fn decode_frame(
    buf: &mut BytesMut,
    opts: &DecodeOptions,
    aliases: Option<&mut TopicAliases>,
) -> Result<Option<Packet>, DecodeError> {
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
    let body = &buf[1 + header_len..size];
    if let Some(ack) = short_ack(first, body, opts.version == ProtocolVersion::V5) {
        buf.advance(size);
        return Ok(Some(ack));
    }
    // A copy, not a split: a payload kept (retained, queued) must not pin
    // the whole read buffer it arrived in, and the buffer is reused at once.
    let frame = Bytes::copy_from_slice(body);
    buf.advance(size);
    decode_body(first, frame, opts, aliases).map(Some)
}

pub(super) fn decode_body(
    first: u8,
    body: Bytes,
    opts: &DecodeOptions,
    aliases: Option<&mut TopicAliases>,
) -> Result<Packet, DecodeError> {
    let packet_type = first >> 4;
    let mut r = Reader {
        buf: body,
        kind: kind_of(packet_type),
        v5: opts.version == ProtocolVersion::V5,
    };
    let packet = match packet_type {
        1 => Packet::Connect(Box::new(connect(&mut r)?)),
        2 => Packet::ConnAck(connack(&mut r)?),
        3 => Packet::Publish(publish(first, &mut r, aliases)?),
        4 => Packet::PubAck(ack(&mut r, PUBACK_REASONS)?),
        5 => Packet::PubRec(ack(&mut r, PUBACK_REASONS)?),
        6 => Packet::PubRel(ack(&mut r, PUBREL_REASONS)?),
        7 => Packet::PubComp(ack(&mut r, PUBREL_REASONS)?),
        8 => Packet::Subscribe(subscribe(&mut r)?),
        9 => Packet::SubAck(suback(&mut r)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r)?),
        11 => Packet::UnsubAck(unsuback(&mut r)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect(&mut r)?),
        15 if r.v5 => Packet::Auth(auth(&mut r)?),
        15 => return Err(DecodeError::NotInVersion { kind: "AUTH" }),
        _ => unreachable!("check_fixed_flags refused packet type {packet_type}"),
    };
    r.finish()?;
    Ok(packet)
}

/// The reason codes each 5.0 packet may carry [MQTT-2.4].
pub(super) const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
pub(super) const PUBREL_REASONS: &[u8] = &[0x00, 0x92];
const SUBACK_REASONS: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];

/// A cursor over one packet's body that names the packet in its errors.
struct Reader {
    buf: Bytes,
    kind: &'static str,
    /// The packet is laid out as MQTT 5.0 lays it out.
    v5: bool,
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

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    /// A variable byte integer: seven bits a byte, at most four bytes.
    fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarIntTooLong)
    }

    /// A reason code, checked against those `kind` may carry.
    fn reason(&mut self, allowed: &[u8]) -> Result<ReasonCode, DecodeError> {
        let code = self.u8()?;
        if !allowed.contains(&code) {
            return Err(DecodeError::InvalidReason {
                kind: self.kind,
                code,
            });
        }
        Ok(ReasonCode(code))
    }

    /// The properties of a 5.0 packet; none in 3.1.1.
    fn properties(&mut self, context: PropertyContext) -> Result<Properties, DecodeError> {
        if !self.v5 {
            return Ok(Properties::new());
        }
        let len = self.varint()? as usize;
        if self.buf.remaining() < len {
            return Err(DecodeError::PropertiesOverrun);
        }
        let block = self.buf.split_to(len);
        let mut r = Reader {
            buf: block.clone(),
            kind: self.kind,
            v5: true,
        };
        let mut properties = Properties::new();
        let mut user = UserBytes::default();
        while !r.is_empty() {
            let start = len - r.buf.remaining();
            if r.buf.first() == Some(&USER_PROPERTY) {
                let run = user_property_run(&r.buf, self.kind)?;
                r.buf.advance(run);
                user.add(&block, start..start + run);
                continue;
            }
            let property = r.property()?;
            let id = property.id();
            if !property.allowed_in(context) {
                return Err(DecodeError::PropertyNotAllowed {
                    kind: self.kind,
                    id,
                });
            }
            if !property.may_repeat(context) && properties.others().iter().any(|p| p.id() == id) {
                return Err(DecodeError::DuplicateProperty {
                    kind: self.kind,
                    id,
                });
            }
            properties.push(property);
        }
        properties.set_user_bytes(user.into_bytes(&block));
        Ok(properties)
    }

    fn property(&mut self) -> Result<Property, DecodeError> {
        use Property::*;
        let id = self.varint()?;
        let Ok(id) = u8::try_from(id) else {
            return Err(DecodeError::UnknownProperty(0xff));
        };
        let invalid = DecodeError::InvalidPropertyValue { id };
        // A byte that is a yes or a no.
        let flag = |r: &mut Reader| match r.u8()? {
            b @ (0 | 1) => Ok(b),
            _ => Err(DecodeError::InvalidPropertyValue { id }),
        };
        Ok(match id {
            0x01 => PayloadFormatIndicator(flag(self)?),
            0x02 => MessageExpiryInterval(self.u32()?),
            0x03 => ContentType(self.string()?),
            0x08 => ResponseTopic(self.str_into(TopicName::new)?),
            0x09 => CorrelationData(self.binary()?),
            0x0B => match self.varint()? {
                0 => return Err(invalid),
                v => SubscriptionIdentifier(v),
            },
            0x11 => SessionExpiryInterval(self.u32()?),
            0x12 => AssignedClientIdentifier(self.string()?),
            0x13 => ServerKeepAlive(self.u16()?),
            0x15 => AuthenticationMethod(self.string()?),
            0x16 => AuthenticationData(self.binary()?),
            0x17 => RequestProblemInformation(flag(self)?),
            0x18 => WillDelayInterval(self.u32()?),
            0x19 => RequestResponseInformation(flag(self)?),
            0x1A => ResponseInformation(self.string()?),
            0x1C => ServerReference(self.string()?),
            0x1F => ReasonString(self.string()?),
            0x21 => match self.u16()? {
                0 => return Err(invalid),
                v => ReceiveMaximum(v),
            },
            0x22 => TopicAliasMaximum(self.u16()?),
            0x23 => match self.u16()? {
                0 => return Err(invalid),
                v => TopicAlias(v),
            },
            0x24 => MaximumQos(flag(self)?),
            0x25 => RetainAvailable(flag(self)?),
            // Never here: `properties` reads User Properties as bytes.
            0x26 => return Err(invalid),
            0x27 => match self.u32()? {
                0 => return Err(invalid),
                v => MaximumPacketSize(v),
            },
            0x28 => WildcardSubscriptionAvailable(flag(self)?),
            0x29 => SubscriptionIdentifierAvailable(flag(self)?),
            0x2A => SharedSubscriptionAvailable(flag(self)?),
            other => return Err(DecodeError::UnknownProperty(other)),
        })
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
        let bytes = self.string_slice()?;
        // Checked as UTF-8 just now.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A UTF-8 string, checked and read in place by `make`: for what is
    /// made from it (a topic filter), with no `String` between. A SUBSCRIBE
    /// of 200,000 filters was decoded in 36 ms with one.
    fn str_into<T, E: Into<DecodeError>>(
        &mut self,
        make: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, DecodeError> {
        let len = usize::from(self.u16()?);
        self.need(len)?;
        let bytes = &self.buf[..len];
        check_string(bytes)?;
        let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        let made = make(s).map_err(Into::into)?;
        self.buf.advance(len);
        Ok(made)
    }

    /// A UTF-8 string, checked, left as the bytes it came in.
    fn string_slice(&mut self) -> Result<Bytes, DecodeError> {
        let bytes = self.binary()?;
        check_string(&bytes)?;
        Ok(bytes)
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

/// The length of the User Properties that `bytes` starts with, each
/// checked. A PUBLISH may hold two million of them: they are walked as one
/// slice, not read a string at a time as `Bytes` (a reference taken and
/// dropped for each, once 40% of the CPU of decoding such a packet).
fn user_property_run(bytes: &[u8], kind: &'static str) -> Result<usize, DecodeError> {
    let mut at = 0;
    while bytes.get(at) == Some(&USER_PROPERTY) {
        at += 1;
        // The name, then the value.
        for _ in 0..2 {
            let Some(&[hi, lo]) = bytes.get(at..at + 2) else {
                return Err(DecodeError::Truncated { kind });
            };
            let end = at + 2 + usize::from(u16::from_be_bytes([hi, lo]));
            let string = bytes
                .get(at + 2..end)
                .ok_or(DecodeError::Truncated { kind })?;
            check_string(string)?;
            at = end;
        }
    }
    Ok(at)
}

/// Well-formed UTF-8 without U+0000 [MQTT-1.5.3].
fn check_string(bytes: &[u8]) -> Result<(), DecodeError> {
    // Most strings are ASCII: one pass finds a byte that is neither NUL
    // nor past ASCII, and needs no UTF-8 decoding.
    if bytes.iter().all(|&b| b.wrapping_sub(1) < 0x7f) {
        return Ok(());
    }
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    if s.contains('\0') {
        return Err(DecodeError::NullCharacter);
    }
    Ok(())
}

fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.string()?;
    let level = r.u8()?;
    let version = match (name.as_str(), level) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQTT", 5) => ProtocolVersion::V5,
        // 3.1 ("MQIsdp", 3) is answered with CONNACK 0x01.
        ("MQTT", _) | ("MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => return Err(DecodeError::InvalidProtocolName(name)),
    };
    // The rest of the CONNECT is laid out by the level it names.
    r.v5 = version == ProtocolVersion::V5;
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
    // 5.0 allows a password alone [MQTT-3.1.2-18 of 5.0].
    if has_password && !has_username && version == ProtocolVersion::V311 {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let keep_alive = r.u16()?;
    let properties = r.properties(PropertyContext::Connect)?;
    let client_id = r.string()?;
    let will = if has_will {
        let properties = r.properties(PropertyContext::Will)?;
        Some(LastWill {
            topic: r.str_into(TopicName::new)?,
            payload: r.binary()?,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = has_username.then(|| r.string()).transpose()?;
    let password = has_password.then(|| r.binary()).transpose()?;
    Ok(Connect {
        version,
        clean_session: flags & 0b10 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn connack(r: &mut Reader) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    if flags & !1 != 0 {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    let value = r.u8()?;
    let code = if r.v5 {
        ConnectCode::from_v5(value)
    } else {
        ConnectCode::from_v311(value)
    }
    .ok_or(DecodeError::InvalidReasonCode(value))?;
    // A refused connection has no session [MQTT-3.2.2-4].
    if flags != 0 && code != ConnectCode::Accepted {
        return Err(DecodeError::InvalidConnAckFlags(flags));
    }
    Ok(ConnAck {
        session_present: flags & 1 != 0,
        code,
        properties: r.properties(PropertyContext::ConnAck)?,
    })
}

fn publish(
    first: u8,
    r: &mut Reader,
    aliases: Option<&mut TopicAliases>,
) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((first >> 1) & 0b11).ok_or(DecodeError::InvalidQos)?;
    // Kept as the bytes it came in until the properties say whether it
    // names an alias: no `String` between it and the `TopicName`.
    let topic_bytes = r.string_slice()?;
    let topic = std::str::from_utf8(&topic_bytes).map_err(|_| DecodeError::InvalidUtf8)?;
    let packet_id = match qos {
        QoS::AtMostOnce => None,
        _ => Some(r.packet_id()?),
    };
    let properties = r.properties(PropertyContext::Publish)?;
    // A 5.0 PUBLISH may name its topic by alias alone; read without the
    // connection's aliases (a client reading a server, which sends none),
    // such a PUBLISH cannot be resolved.
    let topic = match (properties.topic_alias(), aliases) {
        (Some(alias), Some(aliases)) => aliases.resolve(topic, alias)?,
        (Some(alias), None) if topic.is_empty() => {
            return Err(DecodeError::TopicAliasUnknown(alias))
        }
        (None, _) if topic.is_empty() && r.v5 => return Err(DecodeError::EmptyTopicWithoutAlias),
        _ => TopicName::new(topic)?,
    };
    Ok(Publish {
        dup: first & 0b1000 != 0,
        qos,
        retain: first & 1 != 0,
        topic,
        packet_id,
        payload: r.rest(),
        properties,
    })
}

/// In 5.0 the reason and the properties may each be left off when they
/// are the defaults [MQTT-3.4.2.1].
fn ack(r: &mut Reader, reasons: &[u8]) -> Result<Ack, DecodeError> {
    let mut ack = Ack::success(r.packet_id()?);
    if r.v5 && !r.is_empty() {
        ack.reason = r.reason(reasons)?;
        if !r.is_empty() {
            ack.properties = r.properties(PropertyContext::Ack)?;
        }
    }
    Ok(ack)
}

fn disconnect(r: &mut Reader) -> Result<Disconnect, DecodeError> {
    let mut disconnect = Disconnect::new(ReasonCode::SUCCESS);
    if r.v5 && !r.is_empty() {
        disconnect.reason = r.reason(DISCONNECT_REASONS)?;
        if !r.is_empty() {
            disconnect.properties = r.properties(PropertyContext::Disconnect)?;
        }
    }
    Ok(disconnect)
}

fn auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let mut auth = Auth {
        reason: ReasonCode::SUCCESS,
        properties: Properties::new(),
    };
    if !r.is_empty() {
        auth.reason = r.reason(AUTH_REASONS)?;
        auth.properties = r.properties(PropertyContext::Auth)?;
    }
    Ok(auth)
}

fn subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = r.properties(PropertyContext::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.str_into(TopicFilter::new)?;
        let options = subscription_options(r.u8()?, r.v5)?;
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters { kind: "SUBSCRIBE" });
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

/// QoS in bits 0-1; 5.0 adds No Local (2), Retain As Published (3) and
/// Retain Handling (4-5). The bits left over are reserved.
fn subscription_options(byte: u8, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
    if byte & reserved != 0 {
        return Err(DecodeError::SubscriptionOptionsReserved(byte));
    }
    let qos = QoS::from_u8(byte & 0b11).ok_or(DecodeError::InvalidQos)?;
    let retain_handling = match (byte >> 4) & 0b11 {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscription,
        2 => RetainHandling::Never,
        _ => return Err(DecodeError::SubscriptionOptionsReserved(byte)),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0b100 != 0,
        retain_as_published: byte & 0b1000 != 0,
        retain_handling,
    })
}

fn suback(r: &mut Reader) -> Result<SubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = r.properties(PropertyContext::SubAck)?;
    let allowed: &[u8] = if r.v5 {
        SUBACK_REASONS
    } else {
        &[0x00, 0x01, 0x02, 0x80]
    };
    let mut codes = Vec::new();
    while !r.is_empty() {
        codes.push(r.reason(allowed)?);
    }
    // One code per filter of the SUBSCRIBE [MQTT-3.8.4-5], which has at
    // least one [MQTT-3.8.3-3].
    if codes.is_empty() {
        return Err(DecodeError::Truncated { kind: "SUBACK" });
    }
    Ok(SubAck {
        packet_id,
        codes,
        properties,
    })
}

fn unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = r.properties(PropertyContext::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.str_into(TopicFilter::new)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoTopicFilters {
            kind: "UNSUBSCRIBE",
        });
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

/// One reason code per filter in 5.0; none in 3.1.1.
fn unsuback(r: &mut Reader) -> Result<UnsubAck, DecodeError> {
    let packet_id = r.packet_id()?;
    let properties = r.properties(PropertyContext::UnsubAck)?;
    let mut codes = Vec::new();
    while r.v5 && !r.is_empty() {
        codes.push(r.reason(UNSUBACK_REASONS)?);
    }
    if r.v5 && codes.is_empty() {
        return Err(DecodeError::Truncated { kind: "UNSUBACK" });
    }
    Ok(UnsubAck {
        packet_id,
        codes,
        properties,
    })
}
