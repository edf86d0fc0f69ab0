//! Snapshots of what the decoder makes of named MQTT 5.0 bytes: every packet
//! type with its properties and reason codes, every property identifier, the
//! short forms the spec allows, and each malformation of properties, reason
//! codes and subscription options the spec names.

use std::collections::BTreeSet;

use bytes::BytesMut;
use tern::codec::{
    decode, decode_with_aliases, encode, encoded_len, DecodeError, DecodeOptions, Packet,
    Properties, ProtocolVersion, TopicAliases,
};

use crate::common::codec::{
    body, decode_all, decoded, encoded, frame, render, render_reencoded, spaced_hex, Case,
    PROPERTY_IDS, V5,
};

#[rustfmt::skip]
/// User Properties come last in each: tern writes them after the others
/// (keeping their own order, as the spec asks), so these bytes re-encode
/// as they are.
fn valid_cases() -> Vec<Case> {
    vec![
        // CONNECT: properties after keep alive; the will's before its topic.
        ("CONNECT minimal, empty properties", frame(0x10, r#""MQTT" 05 02 003c [ ] "c1""#)),
        ("CONNECT every CONNECT property, user property twice, user name and password",
            frame(0x10, r#""MQTT" 05 c2 003c [ 11 0000000a 21 0014 27 00010000 22 000a 19 01 17 00 15 "SCRAM-SHA-1" 16 0003 6e3d61 26 "region" "eu" 26 "region" "us" ] "c1" "alice" 0003 707721"#)),
        ("CONNECT will QoS 1 retained, every will property",
            frame(0x10, r#""MQTT" 05 2e 000a [ 11 ffffffff ] "dev-7" [ 18 0000003c 01 01 02 00000e10 03 "text/plain" 08 "replies/dev-7" 09 0002 beef 26 "k" "v" ] "status/dev-7" "offline""#)),
        ("CONNECT will QoS 2, empty will properties, session kept",
            frame(0x10, r#""MQTT" 05 14 0000 [ ] "c2" [ ] "w" """#)),
        // CONNACK: flags, reason code, properties.
        ("CONNACK accepted, empty properties", frame(0x20, "00 00 [ ]")),
        ("CONNACK accepted, session present, every CONNACK property",
            frame(0x20, r#"01 00 [ 11 00000e10 21 0100 24 01 25 00 27 00100000 12 "auto-1f3a" 22 0010 1f "welcome" 28 00 29 01 2a 00 13 001e 1a "resp/" 15 "SCRAM-SHA-1" 16 0003 763d62 26 "k" "v" ]"#)),
        ("CONNACK 0x9D server moved, with server reference", frame(0x20, r#"00 9d [ 1c "other.example:1883" ]"#)),
        ("CONNACK 0x84 unsupported protocol version", frame(0x20, "00 84 [ ]")),
        ("CONNACK 0x8C bad authentication method", frame(0x20, r#"00 8c [ 1f "use-SCRAM" ]"#)),
        // PUBLISH: topic, packet id, properties, payload.
        ("PUBLISH QoS 0, empty properties", frame(0x30, r#""a/b" [ ] 68656c6c6f"#)),
        ("PUBLISH QoS 1, every PUBLISH property a client sends",
            frame(0x32, r#""a/b" 0001 [ 01 01 02 0000003c 23 0005 08 "reply/a" 09 0004 deadbeef 03 "text/plain" 26 "k" "v" ] 6869"#)),
        ("PUBLISH subscription identifiers repeated: 1, 128 (two bytes), 268435455 (four bytes)",
            frame(0x30, r#""a/b" [ 0b 01 0b 8001 0b ffffff7f ] 6869"#)),
        ("PUBLISH topic and topic alias together, empty payload", frame(0x30, r#""a/b" [ 23 ffff ]"#)),
        // PUBACK, PUBREC, PUBREL, PUBCOMP: id, reason, properties.
        ("PUBACK short form: 2 bytes", frame(0x40, "0001")),
        ("PUBACK 0x97 quota exceeded, reason string and user property",
            frame(0x40, r#"0001 97 [ 1f "quota" 26 "k" "v" ]"#)),
        ("PUBREC 0x80 unspecified error, empty properties", frame(0x50, "0002 80 [ ]")),
        ("PUBREC 0x10 no matching subscribers, empty properties", frame(0x50, "0002 10 [ ]")),
        ("PUBREL success with reason string", frame(0x62, r#"0003 00 [ 1f "ok" ]"#)),
        ("PUBREL short form", frame(0x62, "0003")),
        ("PUBCOMP 0x92 packet identifier not found, user property", frame(0x70, r#"0004 92 [ 26 "k" "v" ]"#)),
        ("PUBCOMP short form", frame(0x70, "0004")),
        // SUBSCRIBE: id, properties, then filter and options pairs.
        ("SUBSCRIBE every option bit: QoS, no local, retain as published, retain handling 0-2",
            frame(0x82, r##"000a [ 0b 8001 26 "k" "v" ] "q0" 00 "q1" 01 "q2" 02 "nl" 04 "rap" 08 "rh1" 10 "rh2" 20 "all/#" 2e "some/+" 1d"##)),
        ("SUBSCRIBE shared subscription, empty properties", frame(0x82, r#"000b [ ] "$share/g/a/b" 01"#)),
        // SUBACK and UNSUBACK: id, properties, one reason code per filter.
        ("SUBACK every SUBACK reason code, reason string",
            frame(0x90, r#"000a [ 1f "partly" ] 00 01 02 80 83 87 8f 91 97 9e a1 a2"#)),
        ("SUBACK one code, empty properties", frame(0x90, "000b [ ] 01")),
        ("UNSUBSCRIBE two filters, user property", frame(0xa2, r##"000c [ 26 "k" "v" ] "a/b" "c/#""##)),
        ("UNSUBACK every UNSUBACK reason code, reason string", frame(0xb0, r#"000c [ 1f "r" ] 00 11 80 83 87 8f 91"#)),
        ("UNSUBACK one code, empty properties", frame(0xb0, "000d [ ] 00")),
        ("PINGREQ", frame(0xc0, "")),
        ("PINGRESP", frame(0xd0, "")),
        // DISCONNECT: a reason and properties, both optional.
        ("DISCONNECT 0 bytes: normal disconnection", frame(0xe0, "")),
        ("DISCONNECT 0x8E session taken over, empty properties", frame(0xe0, "8e [ ]")),
        ("DISCONNECT from a client: session expiry and user property", frame(0xe0, r#"00 [ 11 0000012c 26 "k" "v" ]"#)),
        ("DISCONNECT 0x9C use another server: server reference and reason string",
            frame(0xe0, r#"9c [ 1c "other:1883" 1f "moving" ]"#)),
        // AUTH: a reason and properties.
        ("AUTH 0x18 continue authentication, method and data",
            frame(0xf0, r#"18 [ 15 "SCRAM-SHA-1" 16 0004 01020304 ]"#)),
        ("AUTH 0x19 re-authenticate, reason string and user property",
            frame(0xf0, r#"19 [ 15 "SCRAM-SHA-1" 1f "again" 26 "k" "v" ]"#)),
        ("AUTH success, empty properties", frame(0xf0, "00 [ ]")),
    ]
}

/// Layouts the spec allows that the encoder writes another way: each decodes
/// to the packet a longer (or shorter) form does.
#[rustfmt::skip]
fn short_form_cases() -> Vec<Case> {
    vec![
        ("PUBACK 3 bytes: reason 0x10, no property length", frame(0x40, "0001 10")),
        ("PUBACK 3 bytes: reason 0x00, no property length", frame(0x40, "0001 00")),
        ("PUBACK 4 bytes: reason 0x00, empty properties", frame(0x40, "0001 00 00")),
        ("PUBREC 3 bytes: reason 0x80", frame(0x50, "0001 80")),
        ("PUBREL 3 bytes: reason 0x92", frame(0x62, "0001 92")),
        ("PUBCOMP 3 bytes: reason 0x00", frame(0x70, "0001 00")),
        ("DISCONNECT 1 byte: 0x04 disconnect with will", frame(0xe0, "04")),
        ("DISCONNECT 1 byte: 0x00", frame(0xe0, "00")),
        ("DISCONNECT 2 bytes: 0x00, empty properties", frame(0xe0, "00 00")),
        ("AUTH 0 bytes: success", frame(0xf0, "")),
    ]
}

/// A CONNECT whose properties are `props`, for properties out of place.
fn connect_with(props: &str) -> Vec<u8> {
    frame(0x10, &format!(r#""MQTT" 05 02 003c [ {props} ] "c1""#))
}

/// A CONNECT with a will whose properties are `props`.
fn will_with(props: &str) -> Vec<u8> {
    frame(
        0x10,
        &format!(r#""MQTT" 05 06 003c [ ] "c1" [ {props} ] "w" "x""#),
    )
}

fn connack_with(props: &str) -> Vec<u8> {
    frame(0x20, &format!("00 00 [ {props} ]"))
}

fn publish_with(props: &str) -> Vec<u8> {
    frame(0x32, &format!(r#""a/b" 0001 [ {props} ] 6869"#))
}

fn subscribe_with(props: &str) -> Vec<u8> {
    frame(0x82, &format!(r#"0001 [ {props} ] "a" 00"#))
}

#[rustfmt::skip]
fn malformed_cases() -> Vec<Case> {
    vec![
        // Each context refuses properties the spec does not list for it
        // [MQTT-2.2.2.2]: at least one per context.
        ("CONNECT with Topic Alias (PUBLISH only)", connect_with("23 0001")),
        ("CONNECT with Will Delay Interval (will only)", connect_with("18 0000000a")),
        ("CONNECT with Maximum QoS (CONNACK only)", connect_with("24 01")),
        ("will with Topic Alias", will_with("23 0001")),
        ("will with Session Expiry Interval", will_with("11 0000000a")),
        ("will with Subscription Identifier", will_with("0b 01")),
        ("CONNACK with Request Problem Information (CONNECT only)", connack_with("17 01")),
        ("CONNACK with Will Delay Interval", connack_with("18 00000001")),
        ("PUBLISH with Session Expiry Interval", publish_with("11 0000000a")),
        ("PUBLISH with Will Delay Interval", publish_with("18 0000000a")),
        ("PUBLISH with Reason String", publish_with(r#"1f "r""#)),
        ("PUBACK with Content Type", frame(0x40, r#"0001 00 [ 03 "text/plain" ]"#)),
        ("PUBREC with Server Reference", frame(0x50, r#"0001 00 [ 1c "s" ]"#)),
        ("PUBREL with Topic Alias", frame(0x62, "0001 00 [ 23 0001 ]")),
        ("PUBCOMP with Subscription Identifier", frame(0x70, "0001 00 [ 0b 01 ]")),
        ("SUBSCRIBE with Reason String", subscribe_with(r#"1f "r""#)),
        ("SUBSCRIBE with Topic Alias", subscribe_with("23 0001")),
        ("SUBACK with Subscription Identifier", frame(0x90, "0001 [ 0b 01 ] 00")),
        ("UNSUBSCRIBE with Subscription Identifier (SUBSCRIBE only)", frame(0xa2, r#"0001 [ 0b 01 ] "a""#)),
        ("UNSUBACK with Session Expiry Interval", frame(0xb0, "0001 [ 11 00000001 ] 00")),
        ("DISCONNECT with Authentication Method", frame(0xe0, r#"00 [ 15 "m" ]"#)),
        ("DISCONNECT with Receive Maximum", frame(0xe0, "00 [ 21 0001 ]")),
        ("AUTH with Session Expiry Interval", frame(0xf0, "18 [ 11 00000001 ]")),
        ("AUTH with Server Reference", frame(0xf0, r#"18 [ 1c "s" ]"#)),
        // Only User Property, and Subscription Identifier in PUBLISH, repeat.
        ("CONNECT Session Expiry Interval twice", connect_with("11 00000001 11 00000002")),
        ("CONNECT Authentication Method twice", connect_with(r#"15 "a" 15 "a""#)),
        ("will Will Delay Interval twice", will_with("18 00000001 18 00000001")),
        ("CONNACK Reason String twice", connack_with(r#"1f "a" 1f "b""#)),
        ("PUBLISH Topic Alias twice", publish_with("23 0001 23 0002")),
        ("PUBLISH Payload Format Indicator twice, a user property between", publish_with(r#"01 00 26 "k" "v" 01 00"#)),
        ("SUBSCRIBE Subscription Identifier twice", subscribe_with("0b 01 0b 02")),
        ("PUBACK Reason String twice", frame(0x40, r#"0001 80 [ 1f "a" 1f "a" ]"#)),
        ("DISCONNECT Server Reference twice", frame(0xe0, r#"9c [ 1c "a" 1c "b" ]"#)),
        ("AUTH Authentication Data twice", frame(0xf0, r#"18 [ 15 "m" 16 0000 16 0000 ]"#)),
        // Values the spec rules out.
        ("SUBSCRIBE Subscription Identifier 0", subscribe_with("0b 00")),
        ("PUBLISH Subscription Identifier 0", publish_with("0b 00")),
        ("PUBLISH Topic Alias 0", publish_with("23 0000")),
        ("CONNECT Receive Maximum 0", connect_with("21 0000")),
        ("CONNACK Receive Maximum 0", connack_with("21 0000")),
        ("CONNECT Maximum Packet Size 0", connect_with("27 00000000")),
        ("CONNACK Maximum Packet Size 0", connack_with("27 00000000")),
        ("PUBLISH Payload Format Indicator 2", publish_with("01 02")),
        ("will Payload Format Indicator 2", will_with("01 02")),
        ("CONNECT Request Problem Information 2", connect_with("17 02")),
        ("CONNECT Request Response Information 2", connect_with("19 02")),
        ("CONNACK Maximum QoS 2", connack_with("24 02")),
        ("CONNACK Retain Available 2", connack_with("25 02")),
        ("CONNACK Wildcard Subscription Available 2", connack_with("28 02")),
        ("CONNACK Subscription Identifiers Available 2", connack_with("29 02")),
        ("CONNACK Shared Subscription Available 2", connack_with("2a 02")),
        ("PUBLISH Response Topic with a wildcard", publish_with(r#"08 "a/+""#)),
        ("PUBLISH Response Topic empty", publish_with(r#"08 """#)),
        ("PUBLISH Content Type not UTF-8", publish_with("03 0002 c328")),
        ("CONNECT User Property value contains U+0000", connect_with(r#"26 "k" 0001 00"#)),
        ("PUBLISH second User Property's key not UTF-8", publish_with(r#"26 "k" "v" 26 0002 c328 "v""#)),
        ("PUBLISH User Property value contains U+0000 after a non-ASCII byte", publish_with(r#"26 "k" 0003 c3a900"#)),
        // Identifiers the spec does not define.
        ("unknown property 0x00", publish_with("00 00")),
        ("unknown property 0x04 (a gap in the table)", publish_with("04 00")),
        ("unknown property 0x2B (after the last)", publish_with("2b 00")),
        ("unknown property 128, a two-byte identifier", publish_with("80 01 00")),
        ("unknown property 2^21, a four-byte identifier", connack_with("80 80 80 01")),
        // Lengths that do not add up.
        ("PUBACK property length 9, 4 bytes follow", frame(0x40, r#"0001 80 09 1f "r""#)),
        ("CONNECT property length past the packet", frame(0x10, r#""MQTT" 05 02 003c 7f "c1""#)),
        ("PUBLISH property length 0x68: a 3.1.1 layout read as 5.0", frame(0x30, r#""a/b" 68656c6c6f"#)),
        ("SUBSCRIBE without property length: a 3.1.1 layout read as 5.0", frame(0x82, r#"0001 "a" 00"#)),
        ("CONNACK without property length", frame(0x20, "00 00")),
        ("SUBACK properties but no reason codes", frame(0x90, "0001 [ ]")),
        ("UNSUBACK properties but no reason codes", frame(0xb0, "0001 [ ]")),
        ("CONNECT will flag, will properties cut off", frame(0x10, r#""MQTT" 05 06 003c [ ] "c1""#)),
        ("Reason String longer than its property list", frame(0x40, r#"0001 80 [ 1f 0005 61 ]"#)),
        ("Session Expiry Interval of two bytes", frame(0xe0, "00 [ 11 0000 ]")),
        ("User Property with a key and no value", connack_with(r#"26 "k""#)),
        ("User Property key longer than the properties", publish_with(r#"26 "k" "v" 26 0009 "k""#)),
        ("Subscription Identifier cut inside its varint", subscribe_with("0b 80")),
        ("property length, a varint of five bytes", frame(0x40, "0001 80 ff ff ff ff 01")),
        ("Subscription Identifier, a varint of five bytes", subscribe_with("0b 80 80 80 80 01")),
        ("property identifier, a varint of five bytes", connack_with("80 80 80 80 01")),
        // Reason codes each packet may carry [MQTT-2.4].
        ("CONNACK 0x01 (a 3.1.1 return code)", frame(0x20, "00 01 [ ]")),
        ("CONNACK 0x8B server shutting down (DISCONNECT only)", frame(0x20, "00 8b [ ]")),
        ("CONNACK 0x04 disconnect with will", frame(0x20, "00 04 [ ]")),
        ("CONNACK refusal 0x87 with session present", frame(0x20, "01 87 [ ]")),
        ("PUBACK 0x92 (PUBREL and PUBCOMP only)", frame(0x40, "0001 92")),
        ("PUBACK 0x01", frame(0x40, "0001 01 [ ]")),
        ("PUBREC 0x11 no subscription existed", frame(0x50, "0001 11 [ ]")),
        ("PUBREL 0x10 no matching subscribers", frame(0x62, "0001 10 [ ]")),
        ("PUBREL 0x80 unspecified error", frame(0x62, "0001 80")),
        ("PUBCOMP 0x97 quota exceeded", frame(0x70, "0001 97 [ ]")),
        ("SUBACK 0x11 (UNSUBACK only)", frame(0x90, "0001 [ ] 00 11")),
        ("SUBACK 0x03", frame(0x90, "0001 [ ] 03")),
        ("UNSUBACK 0x02 granted QoS 2", frame(0xb0, "0001 [ ] 02")),
        ("UNSUBACK 0x97 quota exceeded", frame(0xb0, "0001 [ ] 00 97")),
        ("DISCONNECT 0x01", frame(0xe0, "01 [ ]")),
        ("DISCONNECT 0x84 unsupported protocol version (CONNACK only)", frame(0xe0, "84")),
        ("DISCONNECT 0x18 continue authentication", frame(0xe0, "18 [ ]")),
        ("AUTH 0x04", frame(0xf0, "04 [ ]")),
        ("AUTH 0x80 unspecified error", frame(0xf0, "80 [ ]")),
        // Subscription options: bits 6-7 reserved, retain handling 3 not a
        // value [MQTT-3.8.3-5].
        ("SUBSCRIBE retain handling 3", frame(0x82, r#"0001 [ ] "a" 30"#)),
        ("SUBSCRIBE reserved bit 6", frame(0x82, r#"0001 [ ] "a" 40"#)),
        ("SUBSCRIBE reserved bit 7, second filter", frame(0x82, r#"0001 [ ] "a" 00 "b" 81"#)),
        ("SUBSCRIBE every bit set", frame(0x82, r#"0001 [ ] "a" ff"#)),
        ("SUBSCRIBE options QoS 3", frame(0x82, r#"0001 [ ] "a" 07"#)),
        // Topics.
        ("PUBLISH empty topic without topic alias", frame(0x30, r#""" [ ] 6869"#)),
        ("PUBLISH empty topic, other properties but no alias", frame(0x32, r#""" 0001 [ 01 01 02 0000000a ] 6869"#)),
        ("PUBLISH topic with a wildcard and a topic alias", frame(0x30, r#""a/#" [ 23 0001 ]"#)),
        // AUTH has no short form with a reason alone (DISCONNECT does,
        // [MQTT-3.14.2.2.1]; AUTH's 3.15.2.2.1 does not say so).
        ("AUTH 1 byte: reason without property length", frame(0xf0, "18")),
        ("AUTH flags 0001", frame(0xf1, "00 [ ]")),
        ("AUTH byte after its properties", frame(0xf0, "00 [ ] 00")),
    ]
}

/// Inputs that look wrong but that 5.0 allows.
#[rustfmt::skip]
fn near_miss_cases() -> Vec<Case> {
    vec![
        ("User Property repeated with the same key and value", publish_with(r#"26 "k" "v" 26 "k" "v""#)),
        ("User Property repeated in SUBSCRIBE, with a Subscription Identifier", subscribe_with(r#"0b 05 26 "a" "1" 26 "a" "2""#)),
        ("User Property with empty key and value", connack_with(r#"26 "" """#)),
        ("User Property key not ASCII, valid UTF-8", publish_with(r#"26 0002 c3a9 "v" 26 "k" "v""#)),
        ("CONNECT password without user name", frame(0x10, r#""MQTT" 05 42 003c [ ] "c1" 0002 7077"#)),
        ("CONNECT Topic Alias Maximum 0: no aliases", connect_with("22 0000")),
        ("CONNACK Maximum QoS 0", connack_with("24 00")),
        ("PUBLISH Message Expiry Interval 0", publish_with("02 00000000")),
        ("SUBSCRIBE Subscription Identifier 268435455, the largest", subscribe_with("0b ffffff7f")),
        ("CONNECT level 4 on a 5.0 connection: laid out as 3.1.1", frame(0x10, r#""MQTT" 04 02 003c "c1""#)),
    ]
}

/// Variable Byte Integers longer than they need be. [MQTT-1.5.5-1] binds the
/// sender; the decoder reads them for the value they carry.
#[rustfmt::skip]
fn not_minimal_cases() -> Vec<Case> {
    vec![
        ("property identifier 0x23 in two bytes (a3 00)", publish_with("a3 00 0001")),
        ("property length 0 in two bytes (80 00)", frame(0x20, "00 00 80 00")),
        ("Subscription Identifier 1 in two bytes (81 00)", subscribe_with("0b 81 00")),
        ("remaining length 0 in two bytes (80 00)", body("c0 80 00")),
    ]
}

/// The same question asked of a 3.1.1 connection.
#[rustfmt::skip]
fn v311_cases() -> Vec<Case> {
    vec![
        ("AUTH on a 3.1.1 connection, 0 bytes", frame(0xf0, "")),
        ("AUTH on a 3.1.1 connection, reason and properties", frame(0xf0, "18 [ ]")),
        ("CONNECT 3.1.1 password without user name", frame(0x10, r#""MQTT" 04 42 003c "c1" 0002 7077"#)),
        ("PUBACK with a 5.0 reason", frame(0x40, "0001 10")),
        ("SUBSCRIBE with 5.0 option bits", frame(0x82, r#"0001 "a" 2e"#)),
        ("PUBLISH empty topic (properties are not read)", frame(0x30, r#""" 03 23 0001"#)),
    ]
}

#[test]
fn valid_packets() {
    let mut out = render(&valid_cases(), &V5, true);
    out += "---- short forms, and the bytes the encoder writes for them ----\n\n";
    out += &render_reencoded(&short_form_cases(), &V5);
    insta::assert_snapshot!(out);
}

/// A PUBLISH with an empty topic names it by a Topic Alias that an earlier
/// PUBLISH on the connection set; read without the connection's aliases
/// (as a client reads a server), it cannot be resolved.
#[test]
fn an_empty_topic_is_the_one_its_alias_was_set_to() {
    let set = frame(0x30, r#""a/b" [ 23 0001 ] 6869"#);
    let by_alias = frame(0x35, r#""" 0002 [ 23 0001 ] 6869"#);
    let mut aliases = TopicAliases::new(10);
    let mut buf = BytesMut::from(&[set, by_alias.clone()].concat()[..]);
    let mut read = || match decode_with_aliases(&mut buf, &V5, &mut aliases) {
        Ok(Some(Packet::Publish(p))) => p.topic.as_str().to_owned(),
        other => panic!("a PUBLISH, not {other:?}"),
    };
    assert_eq!(read(), "a/b");
    assert_eq!(read(), "a/b");
    let mut alone = BytesMut::from(&by_alias[..]);
    assert_eq!(
        decode(&mut alone, &V5),
        Err(DecodeError::TopicAliasUnknown(1))
    );
    let mut over = BytesMut::from(&by_alias[..]);
    assert_eq!(
        decode_with_aliases(&mut over, &V5, &mut TopicAliases::new(0)),
        Err(DecodeError::TopicAliasInvalid(1))
    );
}

#[test]
fn malformed_packets() {
    let mut out = render(&malformed_cases(), &V5, false);
    out += "---- accepted, though they look wrong ----\n\n";
    out += &render(&near_miss_cases(), &V5, false);
    out += "---- accepted, though not minimal as [MQTT-1.5.5-1] asks of senders ----\n\n";
    out += &render_reencoded(&not_minimal_cases(), &V5);
    out += "---- on a 3.1.1 connection ----\n\n";
    out += &render(&v311_cases(), &DecodeOptions::default(), false);
    insta::assert_snapshot!(out);
}

/// Every property list a packet carries, the will's included.
fn properties_of(packet: &Packet) -> Vec<&Properties> {
    match packet {
        Packet::Connect(c) => {
            let will = c.will.as_ref().map(|w| &w.properties);
            [Some(&c.properties), will].into_iter().flatten().collect()
        }
        Packet::ConnAck(c) => vec![&c.properties],
        Packet::Publish(p) => vec![&p.properties],
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            vec![&a.properties]
        }
        Packet::Subscribe(s) => vec![&s.properties],
        Packet::SubAck(s) => vec![&s.properties],
        Packet::Unsubscribe(u) => vec![&u.properties],
        Packet::UnsubAck(u) => vec![&u.properties],
        Packet::PingReq | Packet::PingResp => vec![],
        Packet::Disconnect(d) => vec![&d.properties],
        Packet::Auth(a) => vec![&a.properties],
    }
}

#[test]
fn valid_packets_cover_every_type_and_every_property() {
    let mut kinds = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (name, bytes) in valid_cases() {
        let packet = decoded(name, &bytes, &V5);
        kinds.insert(packet.kind());
        for props in properties_of(&packet) {
            ids.extend(props.iter().map(|p| p.id()));
        }
    }
    assert_eq!(kinds.len(), 15, "{kinds:?}");
    assert_eq!(ids, BTreeSet::from(PROPERTY_IDS));
}

#[test]
fn valid_packets_reencode_to_the_same_bytes() {
    for (name, bytes) in valid_cases().into_iter().chain(near_miss_cases()) {
        let packet = decoded(name, &bytes, &V5);
        let version = match &packet {
            Packet::Connect(c) => c.version,
            _ => ProtocolVersion::V5,
        };
        let mut out = BytesMut::new();
        encode(&packet, version, &mut out);
        assert_eq!(spaced_hex(&out), spaced_hex(&bytes), "{name}");
        assert_eq!(encoded_len(&packet, version), bytes.len(), "{name}");
    }
}

#[test]
fn short_forms_reencode_to_the_same_packet() {
    for (name, bytes) in short_form_cases() {
        let packet = decoded(name, &bytes, &V5);
        let again = encoded([&packet], ProtocolVersion::V5);
        assert_ne!(&again[..], &bytes[..], "{name}: no longer a short form");
        assert_eq!(decoded(name, &again, &V5), packet, "{name}");
    }
}

#[test]
fn connect_is_laid_out_by_its_own_level_on_either_connection() {
    for (name, bytes) in valid_cases().into_iter().chain(near_miss_cases()) {
        if bytes[0] == 0x10 {
            let on_v311 = decode_all(&bytes, &DecodeOptions::default());
            assert_eq!(on_v311, decode_all(&bytes, &V5), "{name}");
        }
    }
}

#[test]
fn malformed_packets_are_all_refused() {
    for (name, bytes) in malformed_cases() {
        assert!(decode_all(&bytes, &V5).is_err(), "{name}");
    }
    for (name, bytes) in v311_cases() {
        let result = decode_all(&bytes, &DecodeOptions::default());
        assert!(result.is_err(), "{name}: {result:?}");
    }
    for (name, bytes) in near_miss_cases().into_iter().chain(not_minimal_cases()) {
        decoded(name, &bytes, &V5);
    }
}

#[test]
fn partial_packets_wait_and_leave_the_buffer_alone() {
    for (name, bytes) in valid_cases().into_iter().chain(short_form_cases()) {
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode(&mut buf, &V5), Ok(None), "{name} cut at {cut}");
            assert_eq!(&buf[..], &bytes[..cut], "{name} cut at {cut}");
        }
    }
}
