//! Property tests: any valid 3.1.1 packet survives encode then decode however its bytes arrive, and no input panics the decoder.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use tern::codec::*;
use tern::topic::{TopicFilter, TopicName};

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

fn encoded(packets: &[Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for packet in packets {
        encode(packet, ProtocolVersion::V311, &mut buf);
    }
    buf
}

/// One topic level: any characters but U+0000, the separator and wildcards.
fn level() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9]{0,6}", "[^\\x00/+#]{0,6}"]
}

fn joined(levels: Vec<String>) -> String {
    levels.join("/")
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(level(), 1..5)
        .prop_map(joined)
        .prop_filter("topic names are not empty", |s| !s.is_empty())
        .prop_map(|s| TopicName::new(&s).unwrap())
}

fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(filter_level, 0..5), any::<bool>())
        .prop_map(|(mut levels, multi)| {
            if multi {
                levels.push("#".to_owned());
            }
            joined(levels)
        })
        .prop_filter("topic filters are not empty", |s| !s.is_empty())
        .prop_map(|s| TopicFilter::new(&s).unwrap())
}

/// A UTF-8 string with no U+0000, often beyond ASCII.
fn text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,20}"
}

fn payload(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn will() -> impl Strategy<Value = LastWill> {
    (topic_name(), payload(256), qos(), any::<bool>()).prop_map(|(topic, payload, qos, retain)| {
        LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: Default::default(),
        }
    })
}

/// User name and password: a password only ever comes with a user name.
fn credentials() -> impl Strategy<Value = (Option<String>, Option<Bytes>)> {
    prop_oneof![
        Just((None, None)),
        (text(), proptest::option::of(payload(64))).prop_map(|(u, p)| (Some(u), p)),
    ]
}

fn connect() -> impl Strategy<Value = Packet> {
    let will = proptest::option::of(will());
    (any::<bool>(), any::<u16>(), text(), will, credentials()).prop_map(
        |(clean_session, keep_alive, client_id, will, (username, password))| {
            Packet::Connect(Box::new(Connect {
                version: ProtocolVersion::V311,
                clean_session,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties: Default::default(),
            }))
        },
    )
}

/// A refused CONNACK never has a session [MQTT-3.2.2-4].
fn connack() -> impl Strategy<Value = Packet> {
    let accepted = any::<bool>().prop_map(|session_present| ConnAck {
        session_present,
        code: ConnectCode::Accepted,
        properties: Default::default(),
    });
    let refused = prop_oneof![
        Just(ConnectCode::UnacceptableProtocolVersion),
        Just(ConnectCode::IdentifierRejected),
        Just(ConnectCode::ServerUnavailable),
        Just(ConnectCode::BadUsernameOrPassword),
        Just(ConnectCode::NotAuthorized),
    ]
    .prop_map(|code| ConnAck {
        session_present: false,
        code,
        properties: Default::default(),
    });
    prop_oneof![accepted, refused].prop_map(Packet::ConnAck)
}

fn publish() -> impl Strategy<Value = Packet> {
    let fields = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        packet_id(),
    );
    (fields, payload(4096)).prop_map(|((qos, dup, retain, topic, id), payload)| {
        let acked = qos != QoS::AtMostOnce;
        Packet::Publish(Publish {
            dup: dup && acked,
            qos,
            retain,
            topic,
            packet_id: acked.then_some(id),
            payload,
            properties: Default::default(),
        })
    })
}

fn ack() -> impl Strategy<Value = Ack> {
    packet_id().prop_map(Ack::success)
}

fn subscribe() -> impl Strategy<Value = Packet> {
    let options = qos().prop_map(SubscriptionOptions::qos);
    (packet_id(), vec((topic_filter(), options), 1..6)).prop_map(|(packet_id, filters)| {
        Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties: Default::default(),
        })
    })
}

fn suback() -> impl Strategy<Value = Packet> {
    let code = prop_oneof![Just(0), Just(1), Just(2), Just(0x80)].prop_map(ReasonCode);
    (packet_id(), vec(code, 1..6)).prop_map(|(packet_id, codes)| {
        Packet::SubAck(SubAck {
            packet_id,
            codes,
            properties: Default::default(),
        })
    })
}

fn unsubscribe() -> impl Strategy<Value = Packet> {
    (packet_id(), vec(topic_filter(), 1..6)).prop_map(|(packet_id, filters)| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters,
            properties: Default::default(),
        })
    })
}

fn unsuback() -> impl Strategy<Value = Packet> {
    packet_id().prop_map(|packet_id| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            codes: Vec::new(),
            properties: Default::default(),
        })
    })
}

/// Any valid MQTT 3.1.1 packet, all fourteen kinds.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect(),
        connack(),
        publish(),
        ack().prop_map(Packet::PubAck),
        ack().prop_map(Packet::PubRec),
        ack().prop_map(Packet::PubRel),
        ack().prop_map(Packet::PubComp),
        subscribe(),
        suback(),
        unsubscribe(),
        unsuback(),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        Just(Packet::Disconnect(Disconnect {
            reason: ReasonCode::SUCCESS,
            properties: Default::default(),
        })),
    ]
}

/// Damage done to an encoding: flip one bit, cut it short, or add a byte.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::FlipBit(..) | Mutation::Truncate(_) if bytes.is_empty() => {}
        Mutation::FlipBit(at, bit) => {
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        Mutation::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
    }
    bytes
}

/// A header that tells the truth about the length of an arbitrary body, so
/// the body parsers, not only the header check, see the garbage.
fn framed_garbage() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), vec(any::<u8>(), 0..200)).prop_map(|(first, body)| {
        let mut bytes = vec![first];
        let len = body.len();
        if len < 128 {
            bytes.push(len as u8);
        } else {
            bytes.extend([(len % 128) as u8 | 0x80, (len / 128) as u8]);
        }
        bytes.extend(body);
        bytes
    })
}

/// Decodes until the decoder stops: it must not panic, each packet it yields
/// must consume bytes and be one the encoder reproduces, and `Ok(None)` must
/// leave the buffer as it was.
fn decode_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(bytes);
    loop {
        let before = buf.clone();
        match decode(&mut buf, &opts()) {
            Ok(Some(p)) => {
                prop_assert!(buf.len() < before.len(), "a packet consumed nothing");
                let mut again = encoded(std::slice::from_ref(&p));
                prop_assert_eq!(decode(&mut again, &opts()), Ok(Some(p)));
            }
            Ok(None) => {
                prop_assert_eq!(buf, before);
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_packet_back(p in packet()) {
        let mut buf = encoded(std::slice::from_ref(&p));
        prop_assert_eq!(decode(&mut buf, &opts()), Ok(Some(p)));
        prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    }

    #[test]
    fn packets_back_to_back_decode_in_order(packets in vec(packet(), 1..8)) {
        let mut buf = encoded(&packets);
        for p in packets {
            prop_assert_eq!(decode(&mut buf, &opts()), Ok(Some(p)));
        }
        prop_assert_eq!(decode(&mut buf, &opts()), Ok(None));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn bytes_arriving_one_at_a_time_wait_for_the_last(p in packet()) {
        let bytes = encoded(std::slice::from_ref(&p));
        let (last, init) = bytes.split_last().unwrap();
        let mut buf = BytesMut::new();
        for &byte in init {
            buf.extend_from_slice(&[byte]);
            prop_assert_eq!(decode(&mut buf, &opts()), Ok(None));
        }
        prop_assert_eq!(&buf[..], init);
        buf.extend_from_slice(&[*last]);
        prop_assert_eq!(decode(&mut buf, &opts()), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        decode_everything(&bytes)?;
    }

    #[test]
    fn random_bodies_behind_honest_headers_never_panic(bytes in framed_garbage()) {
        decode_everything(&bytes)?;
    }

    #[test]
    fn mutated_encodings_never_panic(p in packet(), mutations in vec(mutation(), 1..4)) {
        let bytes = mutations
            .iter()
            .fold(encoded(&[p]).to_vec(), mutate);
        decode_everything(&bytes)?;
    }
}

#[test]
fn remaining_length_boundaries_round_trip() {
    let boundaries = [
        (127, 2),
        (128, 3),
        (16_383, 3),
        (16_384, 4),
        (2_097_151, 4),
        (2_097_152, 5),
    ];
    for (body_len, header_len) in boundaries {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: TopicName::new("t").unwrap(),
            packet_id: None,
            payload: Bytes::from(vec![7; body_len - 3]),
            properties: Default::default(),
        });
        let mut buf = encoded(std::slice::from_ref(&p));
        assert_eq!(buf.len(), header_len + body_len, "body of {body_len}");
        assert_eq!(decode(&mut buf, &opts()), Ok(Some(p)), "body of {body_len}");
        assert!(buf.is_empty());
    }
}
