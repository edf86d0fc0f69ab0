//! Packets to bytes, appended to one buffer so that a connection can drain
//! many queued packets into a single write. Each packet's body length is
//! worked out first (`body_len`), then written (`encode`); the two follow the
//! same layout, field by field.

use bytes::{BufMut, BytesMut};

use super::packet::*;
use super::sink::{count, varint_len, Sink};
use super::Properties;

/// Appends `packet` to `buf` as `version` lays it out; in 3.1.1 properties
/// and reason codes are left out. CONNECT is laid out by the level it names. Every value a `Packet` can hold is
/// encodable: strings were bounded when they were validated.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    let v5 = version == ProtocolVersion::V5;
    let len = body_len(packet, v5);
    header(buf, first_byte(packet), len);
    match packet {
        Packet::Connect(c) => connect(c, buf),
        Packet::ConnAck(c) => {
            buf.put_u8(u8::from(c.session_present));
            if v5 {
                buf.put_u8(c.code.v5());
                buf.properties(&c.properties);
            } else {
                buf.put_u8(c.code.v311());
            }
        }
        Packet::Publish(p) => {
            buf.string(p.topic.as_str());
            if let Some(id) = p.packet_id {
                buf.put_u16(id.get());
            }
            if v5 {
                buf.properties(&p.properties);
            }
            buf.put_slice(&p.payload);
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            buf.put_u16(a.packet_id.get());
            if v5 && !ack_is_short(a) {
                buf.put_u8(a.reason.0);
                buf.properties(&a.properties);
            }
        }
        Packet::Subscribe(s) => {
            buf.put_u16(s.packet_id.get());
            if v5 {
                buf.properties(&s.properties);
            }
            for (filter, options) in &s.filters {
                buf.string(filter.as_str());
                buf.put_u8(subscription_options(options, v5));
            }
        }
        Packet::SubAck(s) => {
            buf.put_u16(s.packet_id.get());
            if v5 {
                buf.properties(&s.properties);
            }
            // 3.1.1 has one failure code, 0x80 [MQTT-3.9.3].
            let code = |c: &ReasonCode| if !v5 && c.is_error() { 0x80 } else { c.0 };
            buf.extend(s.codes.iter().map(code));
        }
        Packet::Unsubscribe(u) => {
            buf.put_u16(u.packet_id.get());
            if v5 {
                buf.properties(&u.properties);
            }
            for filter in &u.filters {
                buf.string(filter.as_str());
            }
        }
        Packet::UnsubAck(u) => {
            buf.put_u16(u.packet_id.get());
            if v5 {
                buf.properties(&u.properties);
                buf.extend(u.codes.iter().map(|c| c.0));
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 && !(d.reason == ReasonCode::SUCCESS && d.properties.is_empty()) {
                buf.put_u8(d.reason.0);
                buf.properties(&d.properties);
            }
        }
        Packet::Auth(a) => {
            buf.put_u8(a.reason.0);
            buf.properties(&a.properties);
        }
    }
}

/// The size of `packet` on the wire, fixed header included: what a peer's
/// Maximum Packet Size is compared with.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let len = body_len(packet, version == ProtocolVersion::V5);
    1 + varint_len(len) + len
}

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => 0x30 | u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain),
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xa2,
        Packet::UnsubAck(_) => 0xb0,
        Packet::PingReq => 0xc0,
        Packet::PingResp => 0xd0,
        Packet::Disconnect(_) => 0xe0,
        Packet::Auth(_) => 0xf0,
    }
}

/// A 5.0 ack that succeeded and says nothing more is sent as the bare id.
fn ack_is_short(ack: &Ack) -> bool {
    ack.reason == ReasonCode::SUCCESS && ack.properties.is_empty()
}

fn body_len(packet: &Packet, v5: bool) -> usize {
    // CONNECT is laid out by the level it names, as `connect` writes it.
    let v5 = match packet {
        Packet::Connect(c) => c.version == ProtocolVersion::V5,
        _ => v5,
    };
    // The properties' length prefix and content, or nothing in 3.1.1.
    let props = |p: &Properties| if v5 { properties_size(p) } else { 0 };
    match packet {
        Packet::Connect(c) => {
            let version_fields = 2 + 4 + 1 + 1 + 2;
            let mut len = version_fields + props(&c.properties) + 2 + c.client_id.len();
            if let Some(will) = &c.will {
                len += props(&will.properties);
                len += 2 + will.topic.as_str().len() + 2 + will.payload.len();
            }
            len += c.username.as_ref().map_or(0, |u| 2 + u.len());
            len += c.password.as_ref().map_or(0, |p| 2 + p.len());
            len
        }
        Packet::ConnAck(c) => 2 + props(&c.properties),
        Packet::Publish(p) => {
            let id_len = if p.packet_id.is_some() { 2 } else { 0 };
            2 + p.topic.as_str().len() + id_len + props(&p.properties) + p.payload.len()
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            if v5 && !ack_is_short(a) {
                2 + 1 + props(&a.properties)
            } else {
                2
            }
        }
        Packet::Subscribe(s) => {
            let filters: usize = s
                .filters
                .iter()
                .map(|(f, _)| 2 + f.as_str().len() + 1)
                .sum();
            2 + props(&s.properties) + filters
        }
        Packet::SubAck(s) => 2 + props(&s.properties) + s.codes.len(),
        Packet::Unsubscribe(u) => {
            let filters: usize = u.filters.iter().map(|f| 2 + f.as_str().len()).sum();
            2 + props(&u.properties) + filters
        }
        Packet::UnsubAck(u) => {
            if v5 {
                2 + props(&u.properties) + u.codes.len()
            } else {
                2
            }
        }
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => {
            if v5 && !(d.reason == ReasonCode::SUCCESS && d.properties.is_empty()) {
                1 + props(&d.properties)
            } else {
                0
            }
        }
        // AUTH has only 5.0's layout, which `encode` writes in either version.
        Packet::Auth(a) => 1 + properties_size(&a.properties),
    }
}

/// The fixed header: type and flags, then the remaining length in base 128.
fn header(buf: &mut BytesMut, first: u8, len: usize) {
    debug_assert!(
        len <= 268_435_455,
        "remaining length {len} is over MQTT's limit"
    );
    buf.reserve(5 + len);
    buf.put_u8(first);
    buf.varint(len);
}

fn subscription_options(options: &SubscriptionOptions, v5: bool) -> u8 {
    let qos = options.qos as u8;
    if !v5 {
        return qos;
    }
    qos | u8::from(options.no_local) << 2
        | u8::from(options.retain_as_published) << 3
        | (options.retain_handling as u8) << 4
}

fn connect(c: &Connect, buf: &mut BytesMut) {
    let v5 = c.version == ProtocolVersion::V5;
    let mut flags = u8::from(c.clean_session) << 1;
    if let Some(will) = &c.will {
        flags |= 0b100 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
    }
    if c.username.is_some() {
        flags |= 0b1000_0000;
    }
    if c.password.is_some() {
        flags |= 0b100_0000;
    }
    buf.string("MQTT");
    buf.put_u8(c.version.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    if v5 {
        buf.properties(&c.properties);
    }
    buf.string(&c.client_id);
    if let Some(will) = &c.will {
        if v5 {
            buf.properties(&will.properties);
        }
        buf.string(will.topic.as_str());
        buf.binary(&will.payload);
    }
    if let Some(username) = &c.username {
        buf.string(username);
    }
    if let Some(password) = &c.password {
        buf.binary(password);
    }
}

/// The length prefix plus the properties.
fn properties_size(props: &Properties) -> usize {
    count(|sink| sink.properties(props))
}
