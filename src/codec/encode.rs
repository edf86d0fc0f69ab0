//! Packets to bytes, appended to one buffer so that a connection can drain
//! many queued packets into a single write.

use bytes::{BufMut, BytesMut};

use super::packet::*;

/// Appends `packet` to `buf` as `version` lays it out. Every value a `Packet`
/// can hold is encodable: strings were bounded when they were validated.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    debug_assert_eq!(
        version,
        ProtocolVersion::V311,
        "only 3.1.1 is encoded so far"
    );
    match packet {
        Packet::Connect(c) => connect(c, buf),
        Packet::ConnAck(c) => {
            header(buf, 0x20, 2);
            buf.put_u8(u8::from(c.session_present));
            buf.put_u8(connect_code(c.code));
        }
        Packet::Publish(p) => publish(p, buf),
        Packet::PubAck(a) => ack(buf, 0x40, a),
        Packet::PubRec(a) => ack(buf, 0x50, a),
        Packet::PubRel(a) => ack(buf, 0x62, a),
        Packet::PubComp(a) => ack(buf, 0x70, a),
        Packet::Subscribe(s) => {
            let len = 2 + s
                .filters
                .iter()
                .map(|(f, _)| 2 + f.as_str().len() + 1)
                .sum::<usize>();
            header(buf, 0x82, len);
            buf.put_u16(s.packet_id.get());
            for (filter, options) in &s.filters {
                string(buf, filter.as_str());
                buf.put_u8(options.qos as u8);
            }
        }
        Packet::SubAck(s) => {
            header(buf, 0x90, 2 + s.codes.len());
            buf.put_u16(s.packet_id.get());
            buf.extend(s.codes.iter().map(|c| c.0));
        }
        Packet::Unsubscribe(u) => {
            let len = 2 + u
                .filters
                .iter()
                .map(|f| 2 + f.as_str().len())
                .sum::<usize>();
            header(buf, 0xa2, len);
            buf.put_u16(u.packet_id.get());
            for filter in &u.filters {
                string(buf, filter.as_str());
            }
        }
        Packet::UnsubAck(u) => {
            header(buf, 0xb0, 2);
            buf.put_u16(u.packet_id.get());
        }
        Packet::PingReq => header(buf, 0xc0, 0),
        Packet::PingResp => header(buf, 0xd0, 0),
        Packet::Disconnect(_) => header(buf, 0xe0, 0),
    }
}

/// The fixed header: type and flags, then the remaining length in base 128.
fn header(buf: &mut BytesMut, first: u8, mut len: usize) {
    debug_assert!(
        len <= 268_435_455,
        "remaining length {len} is over MQTT's limit"
    );
    buf.reserve(5 + len);
    buf.put_u8(first);
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if len == 0 {
            return;
        }
    }
}

fn string(buf: &mut BytesMut, s: &str) {
    binary(buf, s.as_bytes());
}

fn binary(buf: &mut BytesMut, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("strings are validated to fit a u16 length");
    buf.put_u16(len);
    buf.put_slice(bytes);
}

fn ack(buf: &mut BytesMut, first: u8, ack: &Ack) {
    header(buf, first, 2);
    buf.put_u16(ack.packet_id.get());
}

fn connect_code(code: ConnectCode) -> u8 {
    match code {
        ConnectCode::Accepted => 0,
        ConnectCode::UnacceptableProtocolVersion => 1,
        ConnectCode::IdentifierRejected => 2,
        ConnectCode::ServerUnavailable => 3,
        ConnectCode::BadUsernameOrPassword => 4,
        ConnectCode::NotAuthorized => 5,
    }
}

fn publish(p: &Publish, buf: &mut BytesMut) {
    let id_len = if p.packet_id.is_some() { 2 } else { 0 };
    let len = 2 + p.topic.as_str().len() + id_len + p.payload.len();
    let flags = u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain);
    header(buf, 0x30 | flags, len);
    string(buf, p.topic.as_str());
    if let Some(id) = p.packet_id {
        buf.put_u16(id.get());
    }
    buf.put_slice(&p.payload);
}

fn connect(c: &Connect, buf: &mut BytesMut) {
    let mut len = 6 + 1 + 1 + 2 + 2 + c.client_id.len();
    let mut flags = u8::from(c.clean_session) << 1;
    if let Some(will) = &c.will {
        len += 2 + will.topic.as_str().len() + 2 + will.payload.len();
        flags |= 0b100 | (will.qos as u8) << 3 | u8::from(will.retain) << 5;
    }
    if let Some(username) = &c.username {
        len += 2 + username.len();
        flags |= 0b1000_0000;
    }
    if let Some(password) = &c.password {
        len += 2 + password.len();
        flags |= 0b100_0000;
    }
    header(buf, 0x10, len);
    string(buf, "MQTT");
    buf.put_u8(c.version.level());
    buf.put_u8(flags);
    buf.put_u16(c.keep_alive);
    string(buf, &c.client_id);
    if let Some(will) = &c.will {
        string(buf, will.topic.as_str());
        binary(buf, &will.payload);
    }
    if let Some(username) = &c.username {
        string(buf, username);
    }
    if let Some(password) = &c.password {
        binary(buf, password);
    }
}
