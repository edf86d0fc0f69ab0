//! Packets to bytes, appended to one buffer so that a connection can drain
//! many queued packets into a single write. Each packet kind has one layout
//! function, written through a `Sink`: counted first for the fixed header's
//! remaining length, then written, so the length and the bytes cannot
//! disagree.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use super::aliases_sent::Naming;
use super::packet::*;
use super::sink::{count, varint_len, Sharing, Sink, SHARED_MIN_BYTES};

/// Appends `packet` to `buf` as `version` lays it out; in 3.1.1 properties
/// and reason codes are left out. CONNECT is laid out by the level it names.
/// Every value a `Packet` can hold is encodable: strings were bounded when
/// they were validated.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) {
    header(buf, first_byte(packet), body_len(packet, version));
    body(packet, version, buf);
}

/// Appends `packet` as `encode` does, but a payload or User Properties of
/// `SHARED_MIN_BYTES` or more are not copied (see `Sharing`): the packet is
/// `parts` as they were, then what was added to them, then `buf`.
pub fn encode_sharing(
    packet: &Packet,
    version: ProtocolVersion,
    buf: &mut BytesMut,
    parts: &mut VecDeque<Bytes>,
) {
    let len = body_len(packet, version);
    if len < SHARED_MIN_BYTES {
        return encode(packet, version, buf);
    }
    buf.put_u8(first_byte(packet));
    buf.varint(len);
    body(packet, version, &mut Sharing { buf, parts });
}

/// Appends `p` as a 5.0 PUBLISH to a client, its topic named as `naming`
/// says (the Topic Alias is ours, not one `p` came with), sharing a large
/// payload or User Properties as `encode_sharing` does.
pub fn encode_publish_named(
    p: &Publish,
    naming: Naming,
    buf: &mut BytesMut,
    parts: &mut VecDeque<Bytes>,
) {
    let (topic, alias) = naming.of(p.topic.as_str());
    let len = count(|sink| publish_to(p, topic, p.packet_id, true, alias, sink));
    if len < SHARED_MIN_BYTES {
        header(buf, publish_first_byte(p), len);
        return publish_to(p, topic, p.packet_id, true, alias, buf);
    }
    buf.put_u8(publish_first_byte(p));
    buf.varint(len);
    publish_to(
        p,
        topic,
        p.packet_id,
        true,
        alias,
        &mut Sharing { buf, parts },
    );
}

/// The size of `packet` on the wire, fixed header included: what a peer's
/// Maximum Packet Size is compared with.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let len = body_len(packet, version);
    1 + varint_len(len) + len
}

/// The size of `p` on the wire as a 5.0 PUBLISH under its own topic name.
pub fn publish_len(p: &Publish) -> usize {
    let len = count(|sink| publish(p, true, sink));
    1 + varint_len(len) + len
}

/// The fixed header: type and flags, then the remaining length in base 128.
fn header(buf: &mut BytesMut, first: u8, len: usize) {
    debug_assert!(
        len <= 268_435_455,
        "remaining length {len} is over MQTT's limit"
    );
    // Exactly: a frame encoded into a buffer made to its size (a shared
    // frame's) would otherwise be moved to one bigger.
    buf.reserve(1 + varint_len(len) + len);
    buf.put_u8(first);
    buf.varint(len);
}

/// Packet type and flags [MQTT-2.1.2].
fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => publish_first_byte(p),
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

/// The remaining length. Kept out of line with its count a local, so that
/// the count stays in a register rather than behind a pointer.
#[inline(never)]
fn body_len(packet: &Packet, version: ProtocolVersion) -> usize {
    count(|sink| body(packet, version, sink))
}

/// Everything after the fixed header. Generic over the sink, not dynamic,
/// and inlined into each caller, so that counting compiles to a sum and
/// writing to the stores.
#[inline(always)]
fn body<S: Sink>(packet: &Packet, version: ProtocolVersion, sink: &mut S) {
    let v5 = version == ProtocolVersion::V5;
    match packet {
        Packet::Connect(c) => connect(c, sink),
        Packet::ConnAck(c) => connack(c, v5, sink),
        Packet::Publish(p) => publish(p, v5, sink),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack(a, v5, sink)
        }
        Packet::Subscribe(s) => subscribe(s, v5, sink),
        Packet::SubAck(s) => suback(s, v5, sink),
        Packet::Unsubscribe(u) => unsubscribe(u, v5, sink),
        Packet::UnsubAck(u) => unsuback(u, v5, sink),
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => disconnect(d, v5, sink),
        // AUTH exists only in 5.0; it is laid out so in either version.
        Packet::Auth(a) => auth(a, sink),
    }
}

/// Laid out by the level CONNECT names, not the connection's, which is not
/// known until CONNECT is read.
fn connect<S: Sink>(c: &Connect, sink: &mut S) {
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
    sink.string("MQTT");
    sink.u8(c.version.level());
    sink.u8(flags);
    sink.u16(c.keep_alive);
    if v5 {
        sink.properties(&c.properties);
    }
    sink.string(&c.client_id);
    if let Some(will) = &c.will {
        if v5 {
            sink.properties(&will.properties);
        }
        sink.string(will.topic.as_str());
        sink.binary(&will.payload);
    }
    if let Some(username) = &c.username {
        sink.string(username);
    }
    if let Some(password) = &c.password {
        sink.binary(password);
    }
}

fn connack<S: Sink>(c: &ConnAck, v5: bool, sink: &mut S) {
    sink.u8(u8::from(c.session_present));
    if v5 {
        sink.u8(c.code.v5());
        sink.properties(&c.properties);
    } else {
        sink.u8(c.code.v311());
    }
}

fn publish_first_byte(p: &Publish) -> u8 {
    0x30 | u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain)
}

/// Appends `p` as a 5.0 PUBLISH that names its topic by its Topic Alias
/// alone (the topic left empty), as a client does once an earlier PUBLISH
/// set the alias.
pub fn encode_by_alias(p: &Publish, buf: &mut BytesMut) {
    debug_assert!(p.properties.topic_alias().is_some(), "no alias to name it");
    header(
        buf,
        publish_first_byte(p),
        count(|sink| publish_to(p, "", p.packet_id, true, None, sink)),
    );
    publish_to(p, "", p.packet_id, true, None, buf);
}

/// Appends `p` as a 5.0 PUBLISH under `packet_id` rather than its own, with
/// no copy of it made: how the store keeps a message, whose packet ids
/// belong to a flow kept apart.
pub fn encode_publish_as(p: &Publish, packet_id: Option<PacketId>, buf: &mut BytesMut) {
    let topic = p.topic.as_str();
    header(
        buf,
        publish_first_byte(p),
        count(|sink| publish_to(p, topic, packet_id, true, None, sink)),
    );
    publish_to(p, topic, packet_id, true, None, buf);
}

#[inline]
fn publish<S: Sink>(p: &Publish, v5: bool, sink: &mut S) {
    publish_to(p, p.topic.as_str(), p.packet_id, v5, None, sink);
}

/// Every delivery is one of these: inlined so that counting it is a sum.
#[inline]
fn publish_to<S: Sink>(
    p: &Publish,
    topic: &str,
    packet_id: Option<PacketId>,
    v5: bool,
    alias: Option<u16>,
    sink: &mut S,
) {
    sink.string(topic);
    if let Some(id) = packet_id {
        sink.u16(id.get());
    }
    if v5 {
        sink.properties_aliased(&p.properties, alias);
    }
    sink.shared(&p.payload);
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one layout.
fn ack<S: Sink>(a: &Ack, v5: bool, sink: &mut S) {
    sink.u16(a.packet_id.get());
    // A 5.0 ack that succeeded and says nothing more is sent as the bare id.
    if v5 && !(a.reason == ReasonCode::SUCCESS && a.properties.is_empty()) {
        sink.u8(a.reason.0);
        sink.properties(&a.properties);
    }
}

fn subscribe<S: Sink>(s: &Subscribe, v5: bool, sink: &mut S) {
    sink.u16(s.packet_id.get());
    if v5 {
        sink.properties(&s.properties);
    }
    for (filter, options) in &s.filters {
        sink.string(filter.as_str());
        sink.u8(subscription_options(options, v5));
    }
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

fn suback<S: Sink>(s: &SubAck, v5: bool, sink: &mut S) {
    sink.u16(s.packet_id.get());
    if v5 {
        sink.properties(&s.properties);
    }
    for code in &s.codes {
        // 3.1.1 has one failure code, 0x80 [MQTT-3.9.3].
        sink.u8(if !v5 && code.is_error() { 0x80 } else { code.0 });
    }
}

fn unsubscribe<S: Sink>(u: &Unsubscribe, v5: bool, sink: &mut S) {
    sink.u16(u.packet_id.get());
    if v5 {
        sink.properties(&u.properties);
    }
    for filter in &u.filters {
        sink.string(filter.as_str());
    }
}

/// 3.1.1's UNSUBACK is the bare id: it has no reason codes.
fn unsuback<S: Sink>(u: &UnsubAck, v5: bool, sink: &mut S) {
    sink.u16(u.packet_id.get());
    if v5 {
        sink.properties(&u.properties);
        for code in &u.codes {
            sink.u8(code.0);
        }
    }
}

/// A normal disconnection with nothing more to say is the empty body, which
/// is also all 3.1.1 has.
fn disconnect<S: Sink>(d: &Disconnect, v5: bool, sink: &mut S) {
    if v5 && !(d.reason == ReasonCode::SUCCESS && d.properties.is_empty()) {
        sink.u8(d.reason.0);
        sink.properties(&d.properties);
    }
}

fn auth<S: Sink>(a: &Auth, sink: &mut S) {
    sink.u8(a.reason.0);
    sink.properties(&a.properties);
}
