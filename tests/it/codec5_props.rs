//! Property tests for MQTT 5.0: any valid packet with any properties its
//! context allows survives encode then decode however its bytes arrive, no
//! input panics a 5.0 decoder, and `encoded_len` is what `encode` writes in
//! either version.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;
use tern::codec::*;

use crate::common::codec::{encoded, PROPERTY_IDS, V5};
use crate::common::strategies::{
    decode_everything, framed_garbage, mutate, mutation, packet_id, payload, qos, text,
    topic_filter, topic_name,
};

use PropertyContext as C;

// Topic levels and string lengths as this file drew them before its
// strategies were shared with codec_props.rs, so that sharing them changed
// no input drawn.
const LEVELS_MAX: usize = 3;
const TEXT_MAX: usize = 12;

const CONTEXTS: [PropertyContext; 11] = [
    C::Connect,
    C::ConnAck,
    C::Publish,
    C::Will,
    C::Ack,
    C::Subscribe,
    C::SubAck,
    C::Unsubscribe,
    C::UnsubAck,
    C::Disconnect,
    C::Auth,
];

/// Where each property may appear, copied from the table of [MQTT-2.2.2.2]
/// rather than asked of the codec, so the two can be compared.
fn spec_contexts(id: u8) -> &'static [PropertyContext] {
    match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => &[C::Publish, C::Will],
        0x0B => &[C::Publish, C::Subscribe],
        0x11 => &[C::Connect, C::ConnAck, C::Disconnect],
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => &[C::ConnAck],
        0x15 | 0x16 => &[C::Connect, C::ConnAck, C::Auth],
        0x17 | 0x19 => &[C::Connect],
        0x18 => &[C::Will],
        0x1C => &[C::ConnAck, C::Disconnect],
        0x1F => &[
            C::ConnAck,
            C::Ack,
            C::SubAck,
            C::UnsubAck,
            C::Disconnect,
            C::Auth,
        ],
        0x21 | 0x22 | 0x27 => &[C::Connect, C::ConnAck],
        0x23 => &[C::Publish],
        0x26 => &CONTEXTS,
        _ => panic!("0x{id:02x} is not a property"),
    }
}

/// A valid value of the property `id`: flags 0 or 1, no zero where zero is
/// refused, a Subscription Identifier that fits four varint bytes.
fn property(id: u8) -> BoxedStrategy<Property> {
    use Property::*;
    let flag = || 0..=1u8;
    match id {
        0x01 => flag().prop_map(PayloadFormatIndicator).boxed(),
        0x02 => any::<u32>().prop_map(MessageExpiryInterval).boxed(),
        0x03 => text(TEXT_MAX).prop_map(ContentType).boxed(),
        0x08 => topic_name(LEVELS_MAX).prop_map(ResponseTopic).boxed(),
        0x09 => payload(16).prop_map(CorrelationData).boxed(),
        0x0B => (1..=268_435_455u32)
            .prop_map(SubscriptionIdentifier)
            .boxed(),
        0x11 => any::<u32>().prop_map(SessionExpiryInterval).boxed(),
        0x12 => text(TEXT_MAX).prop_map(AssignedClientIdentifier).boxed(),
        0x13 => any::<u16>().prop_map(ServerKeepAlive).boxed(),
        0x15 => text(TEXT_MAX).prop_map(AuthenticationMethod).boxed(),
        0x16 => payload(16).prop_map(AuthenticationData).boxed(),
        0x17 => flag().prop_map(RequestProblemInformation).boxed(),
        0x18 => any::<u32>().prop_map(WillDelayInterval).boxed(),
        0x19 => flag().prop_map(RequestResponseInformation).boxed(),
        0x1A => text(TEXT_MAX).prop_map(ResponseInformation).boxed(),
        0x1C => text(TEXT_MAX).prop_map(ServerReference).boxed(),
        0x1F => text(TEXT_MAX).prop_map(ReasonString).boxed(),
        0x21 => (1..=u16::MAX).prop_map(ReceiveMaximum).boxed(),
        0x22 => any::<u16>().prop_map(TopicAliasMaximum).boxed(),
        0x23 => (1..=u16::MAX).prop_map(TopicAlias).boxed(),
        0x24 => flag().prop_map(MaximumQos).boxed(),
        0x25 => flag().prop_map(RetainAvailable).boxed(),
        0x26 => (text(TEXT_MAX), text(TEXT_MAX))
            .prop_map(|(k, v)| UserProperty(k, v))
            .boxed(),
        0x27 => (1..=u32::MAX).prop_map(MaximumPacketSize).boxed(),
        0x28 => flag().prop_map(WildcardSubscriptionAvailable).boxed(),
        0x29 => flag().prop_map(SubscriptionIdentifierAvailable).boxed(),
        0x2A => flag().prop_map(SharedSubscriptionAvailable).boxed(),
        _ => panic!("0x{id:02x} is not a property"),
    }
}

/// Whether the spec lets `id` appear more than once in `context`.
fn spec_may_repeat(id: u8, context: PropertyContext) -> bool {
    id == 0x26 || (id == 0x0B && context == C::Publish)
}

/// Up to six properties allowed in `context`, each at most once unless the
/// spec lets it repeat (the later copies are dropped).
fn properties(context: PropertyContext) -> impl Strategy<Value = Properties> {
    let allowed = PROPERTY_IDS
        .into_iter()
        .filter(|&id| spec_contexts(id).contains(&context))
        .map(property);
    vec(Union::new(allowed), 0..6).prop_map(move |list| {
        let mut kept = Properties::new();
        for p in list {
            let seen = kept.iter().any(|q| q.id() == p.id());
            if !seen || spec_may_repeat(p.id(), context) {
                kept.push(p);
            }
        }
        kept
    })
}

/// One of `codes`, as a reason.
fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    select(codes).prop_map(ReasonCode)
}

fn will() -> impl Strategy<Value = LastWill> {
    let fields = (topic_name(LEVELS_MAX), payload(64), qos(), any::<bool>());
    (fields, properties(C::Will)).prop_map(|((topic, payload, qos, retain), properties)| LastWill {
        topic,
        payload,
        qos,
        retain,
        properties,
    })
}

/// In 5.0 a password may come without a user name.
fn connect() -> impl Strategy<Value = Packet> {
    let fields = (any::<bool>(), any::<u16>(), text(TEXT_MAX));
    let credentials = (
        proptest::option::of(text(TEXT_MAX)),
        proptest::option::of(payload(16)),
    );
    let rest = (proptest::option::of(will()), properties(C::Connect));
    (fields, credentials, rest).prop_map(
        |((clean_session, keep_alive, client_id), (username, password), (will, properties))| {
            Packet::Connect(Box::new(Connect {
                version: ProtocolVersion::V5,
                clean_session,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            }))
        },
    )
}

const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];

/// A refused CONNACK never has a session [MQTT-3.2.2-6].
fn connack() -> impl Strategy<Value = Packet> {
    let code =
        select(CONNACK_REASONS).prop_map(|v| ConnectCode::from_v5(v).expect("a CONNACK reason"));
    (code, any::<bool>(), properties(C::ConnAck)).prop_map(|(code, session, properties)| {
        Packet::ConnAck(ConnAck {
            session_present: session && code == ConnectCode::Accepted,
            code,
            properties,
        })
    })
}

/// A decoder without a connection's aliases keeps a Topic Alias as it is.
fn publish() -> impl Strategy<Value = Packet> {
    let fields = (qos(), any::<bool>(), any::<bool>(), packet_id());
    let rest = (topic_name(LEVELS_MAX), payload(512), properties(C::Publish));
    (fields, rest).prop_map(|((qos, dup, retain, id), (topic, payload, properties))| {
        let acked = qos != QoS::AtMostOnce;
        Packet::Publish(Publish {
            dup: dup && acked,
            qos,
            retain,
            topic,
            packet_id: acked.then_some(id),
            payload,
            properties,
        })
    })
}

const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_REASONS: &[u8] = &[0x00, 0x92];
const SUBACK_REASONS: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];

fn ack(codes: &'static [u8]) -> impl Strategy<Value = Ack> {
    (packet_id(), reason(codes), properties(C::Ack)).prop_map(|(packet_id, reason, properties)| {
        Ack {
            packet_id,
            reason,
            properties,
        }
    })
}

fn retain_handling() -> impl Strategy<Value = RetainHandling> {
    prop_oneof![
        Just(RetainHandling::OnSubscribe),
        Just(RetainHandling::OnNewSubscription),
        Just(RetainHandling::Never),
    ]
}

fn subscription_options() -> impl Strategy<Value = SubscriptionOptions> {
    (qos(), any::<bool>(), any::<bool>(), retain_handling()).prop_map(
        |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
            qos,
            no_local,
            retain_as_published,
            retain_handling,
        },
    )
}

fn subscribe() -> impl Strategy<Value = Packet> {
    let filters = vec((topic_filter(LEVELS_MAX), subscription_options()), 1..5);
    (packet_id(), filters, properties(C::Subscribe)).prop_map(|(packet_id, filters, properties)| {
        Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties,
        })
    })
}

fn suback() -> impl Strategy<Value = Packet> {
    let codes = vec(reason(SUBACK_REASONS), 1..6);
    (packet_id(), codes, properties(C::SubAck)).prop_map(|(packet_id, codes, properties)| {
        Packet::SubAck(SubAck {
            packet_id,
            codes,
            properties,
        })
    })
}

fn unsubscribe() -> impl Strategy<Value = Packet> {
    let filters = vec(topic_filter(LEVELS_MAX), 1..5);
    (packet_id(), filters, properties(C::Unsubscribe)).prop_map(
        |(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        },
    )
}

fn unsuback() -> impl Strategy<Value = Packet> {
    let codes = vec(reason(UNSUBACK_REASONS), 1..6);
    (packet_id(), codes, properties(C::UnsubAck)).prop_map(|(packet_id, codes, properties)| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            codes,
            properties,
        })
    })
}

fn disconnect() -> impl Strategy<Value = Packet> {
    (reason(DISCONNECT_REASONS), properties(C::Disconnect))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
}

fn auth() -> impl Strategy<Value = Packet> {
    (reason(AUTH_REASONS), properties(C::Auth))
        .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }))
}

/// Any valid MQTT 5.0 packet, all fifteen kinds.
fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect(),
        connack(),
        publish(),
        ack(PUBACK_REASONS).prop_map(Packet::PubAck),
        ack(PUBACK_REASONS).prop_map(Packet::PubRec),
        ack(PUBREL_REASONS).prop_map(Packet::PubRel),
        ack(PUBREL_REASONS).prop_map(Packet::PubComp),
        subscribe(),
        suback(),
        unsubscribe(),
        unsuback(),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(),
        auth(),
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

/// Any packet as the types allow it, its CONNECT of either level: what
/// `encoded_len` must measure whichever version it is asked about.
fn packet_of_either_version() -> impl Strategy<Value = Packet> {
    (packet(), version()).prop_map(|(mut p, v)| {
        if let Packet::Connect(c) = &mut p {
            c.version = v;
        }
        p
    })
}

/// First bytes that pass the fixed-header check, so that garbage framed
/// behind them reaches the body parsers. Bodies often start like a property
/// list.
const FIRST: &[u8] = &[
    0x10, 0x20, 0x30, 0x32, 0x35, 0x40, 0x50, 0x62, 0x70, 0x82, 0x90, 0xa2, 0xb0, 0xe0, 0xf0, 0x3b,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A PUBLISH that sets an alias, then one that names its topic by the
    /// alias alone: a server reads the second with the first's topic.
    #[test]
    fn a_publish_by_alias_reads_back_with_the_topic_that_set_it(
        p in publish(),
        alias in 1..=u16::MAX,
    ) {
        let Packet::Publish(mut p) = p else { unreachable!("publish() makes PUBLISH") };
        p.properties.retain(|q| !matches!(q, Property::TopicAlias(_)));
        p.properties.push(Property::TopicAlias(alias));
        let mut aliases = TopicAliases::new(u16::MAX);
        let mut buf = encoded([&Packet::Publish(p.clone())], ProtocolVersion::V5);
        encode_by_alias(&p, &mut buf);
        for _ in 0..2 {
            let read = decode_with_aliases(&mut buf, &V5, &mut aliases);
            prop_assert_eq!(read, Ok(Some(Packet::Publish(p.clone()))));
        }
        prop_assert!(buf.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_packet_back(p in packet()) {
        let mut buf = encoded([&p], ProtocolVersion::V5);
        prop_assert_eq!(decode(&mut buf, &V5), Ok(Some(p)));
        prop_assert!(buf.is_empty(), "{} bytes left over", buf.len());
    }

    #[test]
    fn packets_back_to_back_decode_in_order(packets in vec(packet(), 1..6)) {
        let mut buf = encoded(&packets, ProtocolVersion::V5);
        for p in packets {
            prop_assert_eq!(decode(&mut buf, &V5), Ok(Some(p)));
        }
        prop_assert_eq!(decode(&mut buf, &V5), Ok(None));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn bytes_arriving_one_at_a_time_wait_for_the_last(p in packet()) {
        let bytes = encoded([&p], ProtocolVersion::V5);
        let (last, init) = bytes.split_last().unwrap();
        let mut buf = BytesMut::new();
        for &byte in init {
            buf.extend_from_slice(&[byte]);
            prop_assert_eq!(decode(&mut buf, &V5), Ok(None));
        }
        prop_assert_eq!(&buf[..], init);
        buf.extend_from_slice(&[*last]);
        prop_assert_eq!(decode(&mut buf, &V5), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_packet_split_anywhere_decodes_once_whole(p in packet(), at in any::<Index>()) {
        let bytes = encoded([&p], ProtocolVersion::V5);
        let at = at.index(bytes.len());
        let mut buf = BytesMut::from(&bytes[..at]);
        prop_assert_eq!(decode(&mut buf, &V5), Ok(None));
        buf.extend_from_slice(&bytes[at..]);
        prop_assert_eq!(decode(&mut buf, &V5), Ok(Some(p)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encoded_len_is_what_encode_writes(p in packet_of_either_version(), v in version()) {
        let mut buf = BytesMut::new();
        encode(&p, v, &mut buf);
        prop_assert_eq!(encoded_len(&p, v), buf.len());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        decode_everything(&bytes, ProtocolVersion::V5)?;
    }

    #[test]
    fn random_bodies_behind_honest_headers_never_panic(bytes in framed_garbage(select(FIRST))) {
        decode_everything(&bytes, ProtocolVersion::V5)?;
    }

    #[test]
    fn mutated_encodings_never_panic(p in packet(), mutations in vec(mutation(), 1..4)) {
        let bytes = mutations
            .iter()
            .fold(encoded([&p], ProtocolVersion::V5).to_vec(), mutate);
        decode_everything(&bytes, ProtocolVersion::V5)?;
    }
}

/// The codec's table of where each property may appear is the spec's.
#[test]
fn allowed_contexts_are_those_of_the_spec() {
    let runner = &mut proptest::test_runner::TestRunner::deterministic();
    for id in PROPERTY_IDS {
        let example = property(id).new_tree(runner).unwrap().current();
        assert_eq!(example.id(), id);
        for context in CONTEXTS {
            let spec = spec_contexts(id).contains(&context);
            assert_eq!(
                example.allowed_in(context),
                spec,
                "0x{id:02x} in {context:?}"
            );
            let repeat = spec_may_repeat(id, context);
            assert_eq!(
                example.may_repeat(context),
                repeat,
                "0x{id:02x} in {context:?}"
            );
        }
    }
}
