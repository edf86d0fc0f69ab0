//! Property tests: any valid 3.1.1 packet survives encode then decode however its bytes arrive, and no input panics the decoder.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use tern::codec::*;
use tern::topic::TopicName;

use crate::common::codec::{encoded, V311};
use crate::common::strategies::{
    decode_everything, framed_garbage, mutate, mutation, packet_id, payload, qos, text,
    topic_filter, topic_name,
};

// Topic levels and string lengths as this file drew them before its
// strategies were shared with codec5_props.rs, so that sharing them changed
// no input drawn.
const LEVELS_MAX: usize = 4;
const TEXT_MAX: usize = 20;

fn will() -> impl Strategy<Value = LastWill> {
    (topic_name(LEVELS_MAX), payload(256), qos(), any::<bool>()).prop_map(
        |(topic, payload, qos, retain)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties: Default::default(),
        },
    )
}

/// User name and password: a password only ever comes with a user name.
fn credentials() -> impl Strategy<Value = (Option<String>, Option<Bytes>)> {
    prop_oneof![
        Just((None, None)),
        (text(TEXT_MAX), proptest::option::of(payload(64))).prop_map(|(u, p)| (Some(u), p)),
    ]
}

fn connect() -> impl Strategy<Value = Packet> {
    let will = proptest::option::of(will());
    (
        any::<bool>(),
        any::<u16>(),
        text(TEXT_MAX),
        will,
        credentials(),
    )
        .prop_map(
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
        topic_name(LEVELS_MAX),
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
    (packet_id(), vec((topic_filter(LEVELS_MAX), options), 1..6)).prop_map(
        |(packet_id, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties: Default::default(),
            })
        },
    )
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
    (packet_id(), vec(topic_filter(LEVELS_MAX), 1..6)).prop_map(|(packet_id, filters)| {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_packet_back(p in packet()) {
        let mut buf = encoded([&p], ProtocolVersion::V311);
        prop_assert_eq!(decode(&mut buf, &V311), Ok(Some(p)));
        prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    }

    #[test]
    fn packets_back_to_back_decode_in_order(packets in vec(packet(), 1..8)) {
        let mut buf = encoded(&packets, ProtocolVersion::V311);
        for p in packets {
            prop_assert_eq!(decode(&mut buf, &V311), Ok(Some(p)));
        }
        prop_assert_eq!(decode(&mut buf, &V311), Ok(None));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn bytes_arriving_one_at_a_time_wait_for_the_last(p in packet()) {
        let bytes = encoded([&p], ProtocolVersion::V311);
        let (last, init) = bytes.split_last().unwrap();
        let mut buf = BytesMut::new();
        for &byte in init {
            buf.extend_from_slice(&[byte]);
            prop_assert_eq!(decode(&mut buf, &V311), Ok(None));
        }
        prop_assert_eq!(&buf[..], init);
        buf.extend_from_slice(&[*last]);
        prop_assert_eq!(decode(&mut buf, &V311), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        decode_everything(&bytes, ProtocolVersion::V311)?;
    }

    #[test]
    fn random_bodies_behind_honest_headers_never_panic(bytes in framed_garbage(any::<u8>())) {
        decode_everything(&bytes, ProtocolVersion::V311)?;
    }

    #[test]
    fn mutated_encodings_never_panic(p in packet(), mutations in vec(mutation(), 1..4)) {
        let bytes = mutations
            .iter()
            .fold(encoded([&p], ProtocolVersion::V311).to_vec(), mutate);
        decode_everything(&bytes, ProtocolVersion::V311)?;
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
        let mut buf = encoded([&p], ProtocolVersion::V311);
        assert_eq!(buf.len(), header_len + body_len, "body of {body_len}");
        assert_eq!(decode(&mut buf, &V311), Ok(Some(p)), "body of {body_len}");
        assert!(buf.is_empty());
    }
}
