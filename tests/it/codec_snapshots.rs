//! Snapshots of what the decoder makes of named bytes: every 3.1.1 packet type, and each malformation the spec names.

use bytes::BytesMut;
use tern::codec::{decode, encode, DecodeError, DecodeOptions, Packet, ProtocolVersion};

use crate::common::codec::{
    body, decode_all, decoded, frame, frame_bytes, render, spaced_hex, Case,
};

#[rustfmt::skip]
fn valid_cases() -> Vec<Case> {
    let long_payload = [body(r#""big/payload""#), vec![b'x'; 130]].concat();
    vec![
        ("CONNECT minimal, clean session", frame(0x10, r#""MQTT" 04 02 003c "c1""#)),
        ("CONNECT empty client id, keep alive off", frame(0x10, r#""MQTT" 04 02 0000 """#)),
        ("CONNECT will QoS 1 retained, user name and binary password", frame(0x10, r#""MQTT" 04 ee 000a "dev-7" "status/dev-7" "offline" "alice" 0004 deadbeef"#)),
        ("CONNECT user name only, session kept, keep alive 65535", frame(0x10, r#""MQTT" 04 80 ffff "c2" "bob""#)),
        ("CONNECT will QoS 2 not retained, empty will payload, non-ASCII strings", frame(0x10, r#""MQTT" 04 16 001e "капибара" "état/🦀" """#)),
        ("CONNECT will QoS 0 with user name and empty password", frame(0x10, r#""MQTT" 04 c4 0005 "c3" "w" "bye" "u" 0000"#)),
        ("CONNACK accepted, session present", frame(0x20, "01 00")),
        ("CONNACK accepted, no session", frame(0x20, "00 00")),
        ("CONNACK unacceptable protocol version", frame(0x20, "00 01")),
        ("CONNACK identifier rejected", frame(0x20, "00 02")),
        ("CONNACK server unavailable", frame(0x20, "00 03")),
        ("CONNACK bad user name or password", frame(0x20, "00 04")),
        ("CONNACK not authorized", frame(0x20, "00 05")),
        ("PUBLISH QoS 0", frame(0x30, r#""a/b" 68656c6c6f"#)),
        ("PUBLISH QoS 0 retained, empty payload", frame(0x31, r#""a/b""#)),
        ("PUBLISH QoS 1", frame(0x32, r#""a/b" 0001 68656c6c6f"#)),
        ("PUBLISH QoS 1 dup", frame(0x3a, r#""a/b" 0002 68656c6c6f"#)),
        ("PUBLISH QoS 2 dup retained, non-ASCII topic", frame(0x3d, r#""capteurs/température" ffff 00ff"#)),
        ("PUBLISH QoS 2, topic of a single slash", frame(0x34, r#""/" 0007"#)),
        ("PUBLISH QoS 0 to a $SYS topic", frame(0x30, r#""$SYS/uptime" 3432"#)),
        ("PUBLISH topic starting with U+FEFF, which is kept", frame(0x30, "0004 efbbbf61")),
        ("PUBLISH 130-byte payload, two-byte remaining length", frame_bytes(0x30, &long_payload)),
        ("PUBACK", frame(0x40, "0001")),
        ("PUBREC", frame(0x50, "0102")),
        ("PUBREL", frame(0x62, "ffff")),
        ("PUBCOMP", frame(0x70, "1234")),
        ("SUBSCRIBE one filter", frame(0x82, r#"000a "a/b" 00"#)),
        ("SUBSCRIBE several filters with wildcards and every QoS", frame(0x82, r##"000b "sport/+/player" 01 "sport/#" 02 "#" 00 "+" 01 "$SYS/#" 00 "a//b" 02"##)),
        ("SUBACK one code", frame(0x90, "000a 01")),
        ("SUBACK every code", frame(0x90, "000b 00 01 02 80")),
        ("UNSUBSCRIBE one filter", frame(0xa2, r#"000c "a/b""#)),
        ("UNSUBSCRIBE several filters", frame(0xa2, r##"000d "a/b" "+/+/#" "#""##)),
        ("UNSUBACK", frame(0xb0, "000c")),
        ("PINGREQ", frame(0xc0, "")),
        ("PINGRESP", frame(0xd0, "")),
        ("DISCONNECT", frame(0xe0, "")),
    ]
}

#[rustfmt::skip]
fn malformed_cases() -> Vec<Case> {
    const CONNECT: &str = r#""MQTT" 04 02 003c "c1""#;
    vec![
        // The fixed header: type, flags and remaining length.
        ("packet type 0 is reserved", frame(0x00, "")),
        ("packet type 15 (AUTH, 5.0 only) is reserved", frame(0xf0, "")),
        ("CONNECT flags 0001", frame(0x11, CONNECT)),
        ("CONNACK flags 1000", frame(0x28, "00 00")),
        ("PUBACK flags 0010", frame(0x42, "0001")),
        ("PUBREC flags 0001", frame(0x51, "0001")),
        ("PUBREL flags 0000", frame(0x60, "0001")),
        ("PUBREL flags 0011", frame(0x63, "0001")),
        ("PUBCOMP flags 0010", frame(0x72, "0001")),
        ("SUBSCRIBE flags 0000", frame(0x80, r#"0001 "a" 00"#)),
        ("SUBSCRIBE flags 0011", frame(0x83, r#"0001 "a" 00"#)),
        ("SUBACK flags 0010", frame(0x92, "0001 00")),
        ("UNSUBSCRIBE flags 0000", frame(0xa0, r#"0001 "a""#)),
        ("UNSUBACK flags 0001", frame(0xb1, "0001")),
        ("PINGREQ flags 1000", frame(0xc8, "")),
        ("PINGRESP flags 0100", frame(0xd4, "")),
        ("DISCONNECT flags 0010", frame(0xe2, "")),
        ("remaining length of five bytes", body("30 ff ff ff ff 01")),
        ("remaining length: four continuation bytes, refused before a fifth", body("30 80 80 80 80")),
        // Fields that run past the end of the body.
        ("CONNECT protocol name cut short", frame(0x10, "0004 4d51")),
        ("CONNECT ends after keep alive", frame(0x10, r#""MQTT" 04 02 003c"#)),
        ("CONNECT will flag but no will topic", frame(0x10, r#""MQTT" 04 06 003c "c1""#)),
        ("CONNECT will topic but no will payload", frame(0x10, r#""MQTT" 04 06 003c "c1" "w""#)),
        ("CONNECT user name flag but no user name", frame(0x10, r#""MQTT" 04 82 003c "c1""#)),
        ("CONNECT password longer than the body", frame(0x10, r#""MQTT" 04 c2 003c "c1" "u" 0005 6162"#)),
        ("CONNACK of one byte", frame(0x20, "00")),
        ("PUBLISH topic longer than the body", frame(0x30, "0005 61")),
        ("PUBLISH QoS 1 without packet id", frame(0x32, r#""a""#)),
        ("PUBLISH QoS 2 with one byte of packet id", frame(0x34, r#""a" 00"#)),
        ("PUBACK of one byte", frame(0x40, "01")),
        ("PUBREL empty", frame(0x62, "")),
        ("SUBSCRIBE without packet id", frame(0x82, "")),
        ("SUBSCRIBE filter without options byte", frame(0x82, r#"0001 "a""#)),
        ("UNSUBSCRIBE filter longer than the body", frame(0xa2, "0001 0003 61")),
        ("UNSUBACK of one byte", frame(0xb0, "00")),
        // Bytes after the last field.
        ("CONNECT byte after the client id", frame(0x10, r#""MQTT" 04 02 003c "c1" 00"#)),
        ("CONNACK of three bytes", frame(0x20, "00 00 00")),
        ("PUBACK of three bytes", frame(0x40, "0001 00")),
        ("PUBCOMP of four bytes", frame(0x70, "0001 0000")),
        ("UNSUBACK with a 5.0 reason code", frame(0xb0, "0001 00")),
        ("PINGREQ with a body", frame(0xc0, "00")),
        ("PINGRESP with a body", frame(0xd0, "0000")),
        ("DISCONNECT with a 5.0 reason code", frame(0xe0, "00")),
        // Strings: well-formed UTF-8, no U+0000 [MQTT-1.5.3-1, -2].
        ("PUBLISH topic is a lone continuation byte", frame(0x30, "0001 80")),
        ("PUBLISH topic has byte FF", frame(0x30, "0003 61ff62")),
        ("PUBLISH topic encodes surrogate U+D800 (ED A0 80)", frame(0x30, "0003 eda080")),
        ("PUBLISH topic has overlong '/' (C0 AF)", frame(0x30, "0002 c0af")),
        ("PUBLISH topic has overlong U+0000 (C0 80)", frame(0x30, "0002 c080")),
        ("PUBLISH topic cut inside a character", frame(0x30, "0002 e282")),
        ("PUBLISH topic contains U+0000", frame(0x30, "0003 610062")),
        ("CONNECT client id contains U+0000", frame(0x10, r#""MQTT" 04 02 003c 0002 6300"#)),
        ("CONNECT user name is not UTF-8", frame(0x10, r#""MQTT" 04 82 003c "c1" 0002 c328"#)),
        ("CONNECT will topic encodes surrogate U+DFFF (ED BF BF)", frame(0x10, r#""MQTT" 04 06 003c "c1" 0003 edbfbf "x""#)),
        ("CONNECT protocol name is not UTF-8", frame(0x10, "0004 4d51fe54 04 02 003c 0000")),
        ("SUBSCRIBE filter contains U+0000", frame(0x82, "0001 0003 2f002f 00")),
        ("UNSUBSCRIBE filter encodes surrogate U+DBFF (ED AF BF)", frame(0xa2, "0001 0003 edafbf")),
        // Packet identifiers are never zero [MQTT-2.3.1-1].
        ("PUBLISH QoS 1 packet id 0", frame(0x32, r#""a" 0000"#)),
        ("PUBLISH QoS 2 packet id 0", frame(0x34, r#""a" 0000 01"#)),
        ("PUBACK packet id 0", frame(0x40, "0000")),
        ("PUBREC packet id 0", frame(0x50, "0000")),
        ("PUBREL packet id 0", frame(0x62, "0000")),
        ("PUBCOMP packet id 0", frame(0x70, "0000")),
        ("SUBSCRIBE packet id 0", frame(0x82, r#"0000 "a" 00"#)),
        ("SUBACK packet id 0", frame(0x90, "0000 00")),
        ("UNSUBSCRIBE packet id 0", frame(0xa2, r#"0000 "a""#)),
        ("UNSUBACK packet id 0", frame(0xb0, "0000")),
        // QoS and DUP.
        ("PUBLISH QoS 3", frame(0x36, r#""a" 0001"#)),
        ("PUBLISH QoS 3 with dup and retain", frame(0x3f, r#""a" 0001"#)),
        ("PUBLISH QoS 0 with DUP set", frame(0x38, r#""a""#)),
        ("CONNECT will QoS 3", frame(0x10, r#""MQTT" 04 1e 003c "c1" "w" "x""#)),
        ("SUBSCRIBE options QoS 3", frame(0x82, r#"0001 "a" 03"#)),
        // Topic names and filters.
        ("PUBLISH empty topic", frame(0x30, r#""" 00"#)),
        ("PUBLISH topic with '+'", frame(0x30, r#""a/+""#)),
        ("PUBLISH topic '#'", frame(0x30, r##""#""##)),
        ("PUBLISH topic with '#' inside a level", frame(0x32, r#""a/b#" 0001"#)),
        ("CONNECT will topic with '+'", frame(0x10, r#""MQTT" 04 06 003c "c1" "a/+" "x""#)),
        ("CONNECT empty will topic", frame(0x10, r#""MQTT" 04 06 003c "c1" "" "x""#)),
        ("SUBSCRIBE filter a/#/b", frame(0x82, r#"0001 "a/#/b" 00"#)),
        ("SUBSCRIBE filter a+", frame(0x82, r#"0001 "a+" 00"#)),
        ("SUBSCRIBE filter a/b#", frame(0x82, r#"0001 "a/b#" 00"#)),
        ("SUBSCRIBE empty filter", frame(0x82, r#"0001 "" 00"#)),
        ("SUBSCRIBE second filter invalid", frame(0x82, r#"0001 "a" 00 "+b" 01"#)),
        ("UNSUBSCRIBE filter a/#/b", frame(0xa2, r#"0001 "a/#/b""#)),
        ("UNSUBSCRIBE filter +a", frame(0xa2, r#"0001 "+a""#)),
        ("UNSUBSCRIBE empty filter", frame(0xa2, r#"0001 """#)),
        ("SUBSCRIBE with no filters", frame(0x82, "0001")),
        ("UNSUBSCRIBE with no filters", frame(0xa2, "0001")),
        ("SUBSCRIBE options reserved bit 2", frame(0x82, r#"0001 "a" 04"#)),
        ("SUBSCRIBE options 5.0 no-local on QoS 1", frame(0x82, r#"0001 "a" 05"#)),
        ("SUBSCRIBE options all reserved bits", frame(0x82, r#"0001 "a" fc"#)),
        ("SUBSCRIBE second filter's options reserved bit 7", frame(0x82, r#"0001 "a" 00 "b" 81"#)),
        // CONNECT's variable header.
        ("CONNECT protocol name MQTX", frame(0x10, r#""MQTX" 04 02 003c "c1""#)),
        ("CONNECT protocol name mqtt", frame(0x10, r#""mqtt" 04 02 003c "c1""#)),
        ("CONNECT protocol name empty", frame(0x10, r#""" 04 02 003c "c1""#)),
        ("CONNECT MQTT level 5", frame(0x10, r#""MQTT" 05 02 003c "c1""#)),
        ("CONNECT MQTT level 3", frame(0x10, r#""MQTT" 03 02 003c "c1""#)),
        ("CONNECT MQIsdp level 3 (MQTT 3.1)", frame(0x10, r#""MQIsdp" 03 02 003c "c1""#)),
        ("CONNECT MQIsdp level 4 (a 3.1 name with the 3.1.1 level)", frame(0x10, r#""MQIsdp" 04 02 003c "c1""#)),
        ("CONNECT reserved flag", frame(0x10, r#""MQTT" 04 03 003c "c1""#)),
        ("CONNECT will QoS 1 without will flag", frame(0x10, r#""MQTT" 04 0a 003c "c1""#)),
        ("CONNECT will QoS 2 without will flag", frame(0x10, r#""MQTT" 04 12 003c "c1""#)),
        ("CONNECT will retain without will flag", frame(0x10, r#""MQTT" 04 22 003c "c1""#)),
        ("CONNECT password without user name", frame(0x10, r#""MQTT" 04 42 003c "c1" 0002 7077"#)),
        // Server-to-client packets.
        ("CONNACK flags 0x02", frame(0x20, "02 00")),
        ("CONNACK flags 0x80", frame(0x20, "80 00")),
        ("CONNACK refusal with session present", frame(0x20, "01 05")),
        ("CONNACK return code 6", frame(0x20, "00 06")),
        ("CONNACK return code 0x80 (5.0 style)", frame(0x20, "00 80")),
        ("SUBACK with no return codes", frame(0x90, "0001")),
        ("SUBACK code 3", frame(0x90, "0001 03")),
        ("SUBACK code 0x81", frame(0x90, "0001 81")),
        ("SUBACK 0x80 then 0x04", frame(0x90, "0001 80 04")),
    ]
}

/// Packets refused by a 16-byte limit. None carries its body: the header is
/// enough to refuse them.
#[rustfmt::skip]
fn oversize_cases() -> Vec<Case> {
    vec![
        ("header announces a 100-byte body", body("30 64")),
        ("header announces a 15-byte body: 17 bytes in all", body("30 0f")),
        ("two-byte remaining length announces 128 bytes", body("82 80 01")),
        ("largest remaining length MQTT allows", body("30 ff ff ff 7f")),
    ]
}

const SMALL_LIMIT: DecodeOptions = DecodeOptions {
    version: ProtocolVersion::V311,
    packet_size_max_bytes: 16,
};

#[test]
fn valid_packets() {
    insta::assert_snapshot!(render(&valid_cases(), &DecodeOptions::default(), true));
}

#[test]
fn malformed_packets() {
    let mut out = render(&malformed_cases(), &DecodeOptions::default(), false);
    out += "---- with packet_size_max_bytes = 16 ----\n\n";
    out += &render(&oversize_cases(), &SMALL_LIMIT, false);
    insta::assert_snapshot!(out);
}

#[test]
fn valid_packets_cover_every_type_and_leave_nothing_behind() {
    let mut kinds = std::collections::BTreeSet::new();
    for (name, bytes) in valid_cases() {
        let packet = decoded(name, &bytes, &DecodeOptions::default());
        kinds.insert(packet.kind());
    }
    assert_eq!(kinds.len(), 14, "{kinds:?}");
}

#[test]
fn malformed_packets_are_all_refused() {
    for (name, bytes) in malformed_cases() {
        assert!(
            decode_all(&bytes, &DecodeOptions::default()).is_err(),
            "{name}"
        );
    }
    for (name, bytes) in oversize_cases() {
        let err = decode_all(&bytes, &SMALL_LIMIT).expect_err(name);
        assert!(
            matches!(err, DecodeError::PacketTooLarge { max: 16, .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn packet_at_the_size_limit_is_accepted() {
    let at_limit = frame(0x30, r#""a" 0102030405060708090a0b"#);
    assert_eq!(at_limit.len(), 16);
    assert!(matches!(
        decode_all(&at_limit, &SMALL_LIMIT),
        Ok(Some(Packet::Publish(_)))
    ));
    let over = frame(0x30, r#""a" 0102030405060708090a0b0c"#);
    assert!(matches!(
        decode_all(&over[..2], &SMALL_LIMIT),
        Err(DecodeError::PacketTooLarge { size: 17, max: 16 })
    ));
}

/// Every first byte MQTT allows: each type with its fixed flags, and PUBLISH
/// with QoS 0 to 2, either retain, and DUP only above QoS 0. AUTH (0xf0) is
/// 5.0's; a 3.1.1 connection refuses it once its body is read.
const VALID_FIRST_BYTES: [u8; 24] = [
    0x10, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x3a, 0x3b, 0x3c, 0x3d, 0x40, 0x50, 0x62, 0x70,
    0x82, 0x90, 0xa2, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0,
];

#[test]
fn first_byte_alone_refuses_bad_types_and_flags() {
    for first in 0..=u8::MAX {
        let result = decode_all(&[first], &DecodeOptions::default());
        let valid = VALID_FIRST_BYTES.contains(&first);
        assert_eq!(result.is_ok(), valid, "{first:#04x}: {result:?}");
    }
}

#[test]
fn valid_packets_reencode_to_the_same_bytes() {
    for (name, bytes) in valid_cases() {
        let packet = decode_all(&bytes, &DecodeOptions::default())
            .unwrap()
            .unwrap();
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V311, &mut out);
        assert_eq!(spaced_hex(&out), spaced_hex(&bytes), "{name}");
    }
}

#[test]
fn partial_packets_wait_and_leave_the_buffer_alone() {
    for (name, bytes) in valid_cases() {
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            let result = decode(&mut buf, &DecodeOptions::default());
            assert_eq!(result, Ok(None), "{name} cut at {cut}");
            assert_eq!(&buf[..], &bytes[..cut], "{name} cut at {cut}");
        }
    }
}

#[test]
fn a_header_alone_does_not_reserve_the_body_it_announces() {
    let mut buf = BytesMut::from(&body("30 ff ff ff 7f")[..]);
    assert_eq!(decode(&mut buf, &DecodeOptions::default()), Ok(None));
    assert!(
        buf.capacity() < 1 << 20,
        "{} bytes reserved",
        buf.capacity()
    );
}
