//! MQTT 5.0 PUBLISH properties over real TCP (issue 4, item 3): Message
//! Expiry, the properties a broker forwards unaltered, a payload that says it
//! is UTF-8 and is not, and Subscription Identifiers.

use std::time::Duration;

use bytes::Bytes;
use tern::codec::{
    ConnectCode, Packet, Properties, Property, Publish, QoS, ReasonCode, SubscriptionOptions,
};
use tern::topic::TopicName;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// A 5.0 client subscribed to `filter` at `qos`, with `props` on the
/// SUBSCRIBE.
async fn subscriber(
    broker: &TestBroker,
    client_id: &str,
    filter: &str,
    props: Vec<Property>,
) -> Raw {
    let (mut raw, _) = Raw::connected_v5(broker.addr, client_id, vec![]).await;
    let options = SubscriptionOptions::qos(QoS::AtLeastOnce);
    raw.send(&raw::subscribe_with(1, filter, options, props))
        .await;
    assert!(matches!(raw.recv().await, Packet::SubAck(_)));
    raw
}

/// A 5.0 publisher.
async fn publisher(broker: &TestBroker) -> Raw {
    Raw::connected_v5(broker.addr, "pub", vec![]).await.0
}

/// Sends a QoS 1 PUBLISH and returns the PUBACK's reason.
async fn publish_acked(client: &mut Raw, publish: Packet) -> ReasonCode {
    client.send(&publish).await;
    match client.recv().await {
        Packet::PubAck(ack) => ack.reason,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn request_response_properties_are_forwarded_unaltered() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(&broker, "sub", "req/#", vec![]).await;
    let mut client = publisher(&broker).await;
    let props = vec![
        Property::PayloadFormatIndicator(1),
        Property::ContentType("application/json".into()),
        Property::ResponseTopic(TopicName::new("resp/42").unwrap()),
        Property::CorrelationData(Bytes::from_static(b"\x00\x01corr")),
        Property::UserProperty("b".into(), "2".into()),
        Property::UserProperty("a".into(), "1".into()),
        Property::UserProperty("b".into(), "3".into()),
    ];
    let publish = raw::publish_with("req/x", QoS::AtLeastOnce, 1, b"{}", props.clone());
    assert_eq!(
        publish_acked(&mut client, publish).await,
        ReasonCode::SUCCESS
    );
    let got = sub.recv_publish().await;
    // [MQTT-3.3.2-4] PFI, [MQTT-3.3.2-20] Content Type, [MQTT-3.3.2-15]
    // Response Topic, [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-17] and
    // [MQTT-3.3.2-18] User Properties, all of them, in order.
    assert_eq!(got.properties, Properties::from(props));
    broker.stop().await;
}

#[tokio::test]
async fn puback_says_when_no_one_was_subscribed() {
    let broker = TestBroker::start(config()).await;
    let mut client = publisher(&broker).await;
    let publish = raw::publish("nobody/here", QoS::AtLeastOnce, 1, b"x");
    // 3.4.2.1: 0x10 No matching subscribers.
    assert_eq!(
        publish_acked(&mut client, publish).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    broker.stop().await;
}

#[tokio::test]
async fn payload_said_to_be_utf8_and_not_is_refused_with_0x99() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(&broker, "sub", "u/#", vec![]).await;
    let mut client = publisher(&broker).await;
    let pfi = || vec![Property::PayloadFormatIndicator(1)];
    // 3.3.2.3.2: a QoS 1 message is refused in its PUBACK ...
    let bad = raw::publish_with("u/1", QoS::AtLeastOnce, 1, b"\xff\xfe", pfi());
    assert_eq!(
        publish_acked(&mut client, bad).await,
        ReasonCode::PAYLOAD_FORMAT_INVALID
    );
    // ... and not routed; a valid one is.
    let good = raw::publish_with("u/2", QoS::AtLeastOnce, 2, "héllo".as_bytes(), pfi());
    assert_eq!(publish_acked(&mut client, good).await, ReasonCode::SUCCESS);
    assert_eq!(sub.recv_publish().await.topic.as_str(), "u/2");
    // A QoS 0 one, which has no ack, closes the connection with 0x99.
    let bad = raw::publish_with("u/3", QoS::AtMostOnce, 0, b"\xc3\x28", pfi());
    client.send(&bad).await;
    client
        .expect_disconnect(ReasonCode::PAYLOAD_FORMAT_INVALID)
        .await;
    sub.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn will_payload_said_to_be_utf8_and_not_is_refused_in_connack() {
    let broker = TestBroker::start(config()).await;
    let mut connect = raw::connect_v5("w");
    let mut will = raw::will("w/t", "", QoS::AtMostOnce, false);
    will.payload = Bytes::from_static(b"\xff");
    will.properties = Properties::from(vec![Property::PayloadFormatIndicator(1)]);
    connect.will = Some(will);
    let (_raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, ConnectCode::PayloadFormatInvalid);
    broker.stop().await;
}

#[tokio::test]
async fn expired_message_is_not_delivered_to_an_offline_session() {
    let broker = TestBroker::start(config()).await;
    let expiry = vec![Property::SessionExpiryInterval(60)];
    let (mut sub, _) = Raw::connected_v5(broker.addr, "away", expiry.clone()).await;
    sub.send(&raw::subscribe(1, "e/#", QoS::AtLeastOnce)).await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    sub.send(&raw::disconnect()).await;
    sub.expect_closed().await;
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    let mut client = publisher(&broker).await;
    let short = raw::publish_with(
        "e/short",
        QoS::AtLeastOnce,
        1,
        b"short",
        vec![Property::MessageExpiryInterval(1)],
    );
    let long = raw::publish_with(
        "e/long",
        QoS::AtLeastOnce,
        2,
        b"long",
        vec![Property::MessageExpiryInterval(60)],
    );
    let forever = raw::publish("e/forever", QoS::AtLeastOnce, 3, b"forever");
    for publish in [short, long, forever] {
        assert_eq!(
            publish_acked(&mut client, publish).await,
            ReasonCode::SUCCESS
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut connect = raw::connect_v5("away");
    connect.clean_session = false;
    connect.properties = Properties::from(expiry);
    let (mut sub, connack) = Raw::connect(broker.addr, connect).await;
    assert!(connack.session_present);
    // [MQTT-3.3.2-5]: the expired copy is deleted, the others delivered.
    let got = sub.recv_publish().await;
    assert_eq!(got.topic.as_str(), "e/long");
    // [MQTT-3.3.2-6]: with the time it has left, about 58 s.
    let left = got
        .properties
        .message_expiry_interval()
        .expect("an interval");
    assert!((55..=59).contains(&left), "{left} s left");
    let got = sub.recv_publish().await;
    assert_eq!(got.topic.as_str(), "e/forever");
    assert_eq!(got.properties.message_expiry_interval(), None);
    assert_eq!(broker.census().dropped.expired, 1);
    broker.stop().await;
}

#[tokio::test]
async fn expired_retained_message_is_not_sent_to_a_new_subscriber() {
    let broker = TestBroker::start(config()).await;
    let mut client = publisher(&broker).await;
    for (topic, secs) in [("r/short", 1), ("r/long", 60)] {
        let Packet::Publish(mut publish) = raw::publish_with(
            topic,
            QoS::AtLeastOnce,
            1,
            b"r",
            vec![Property::MessageExpiryInterval(secs)],
        ) else {
            unreachable!()
        };
        publish.retain = true;
        publish_acked(&mut client, Packet::Publish(publish)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut sub = subscriber(&broker, "late", "r/#", vec![]).await;
    let got = sub.recv_publish().await;
    assert_eq!(got.topic.as_str(), "r/long");
    assert!(got.retain);
    let left = got.properties.message_expiry_interval().unwrap();
    assert!((55..=59).contains(&left), "{left} s left");
    sub.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn subscription_identifiers_are_attached_to_what_each_delivers() {
    let broker = TestBroker::start(config()).await;
    let (mut sub, _) = Raw::connected_v5(broker.addr, "ids", vec![]).await;
    let options = SubscriptionOptions::qos(QoS::AtLeastOnce);
    let filters = [("i/#", Some(7)), ("i/+/x", Some(300_000)), ("i/a/+", None)];
    for (n, (filter, id)) in filters.into_iter().enumerate() {
        let props = id
            .map(Property::SubscriptionIdentifier)
            .into_iter()
            .collect();
        sub.send(&raw::subscribe_with(n as u16 + 1, filter, options, props))
            .await;
        assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    }
    let mut client = publisher(&broker).await;
    for (n, topic) in ["i/a/x", "i/b", "i/a/y"].into_iter().enumerate() {
        let publish = raw::publish(topic, QoS::AtLeastOnce, n as u16 + 1, b"x");
        publish_acked(&mut client, publish).await;
    }
    // [MQTT-3.3.4-3], [MQTT-3.3.4-4]: one copy, with the identifier of
    // every matching subscription that has one.
    let ids = |p: &Publish| {
        let mut ids: Vec<u32> = p.properties.subscription_identifiers().collect();
        ids.sort_unstable();
        ids
    };
    let got = sub.recv_publish().await;
    assert_eq!((got.topic.as_str(), ids(&got)), ("i/a/x", vec![7, 300_000]));
    let got = sub.recv_publish().await;
    assert_eq!((got.topic.as_str(), ids(&got)), ("i/b", vec![7]));
    let got = sub.recv_publish().await;
    assert_eq!((got.topic.as_str(), ids(&got)), ("i/a/y", vec![7]));
    sub.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn client_publish_with_a_subscription_identifier_is_a_protocol_error() {
    let broker = TestBroker::start(config()).await;
    let mut client = publisher(&broker).await;
    // [MQTT-3.3.4-6]
    let publish = raw::publish_with(
        "x",
        QoS::AtMostOnce,
        0,
        b"x",
        vec![Property::SubscriptionIdentifier(1)],
    );
    client.send(&publish).await;
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.stop().await;
}

#[tokio::test]
async fn subscription_identifier_is_attached_to_retained_messages() {
    let broker = TestBroker::start(config()).await;
    let mut client = publisher(&broker).await;
    let Packet::Publish(mut publish) = raw::publish("kept/1", QoS::AtLeastOnce, 1, b"k") else {
        unreachable!()
    };
    publish.retain = true;
    publish_acked(&mut client, Packet::Publish(publish)).await;
    let mut sub = subscriber(
        &broker,
        "sub",
        "kept/#",
        vec![Property::SubscriptionIdentifier(9)],
    )
    .await;
    let got = sub.recv_publish().await;
    assert!(got.retain);
    // [MQTT-3.3.4-3]: the identifier of the subscription that matched.
    assert_eq!(
        got.properties
            .subscription_identifiers()
            .collect::<Vec<_>>(),
        [9]
    );
    broker.stop().await;
}

#[tokio::test]
async fn pubrel_for_an_unknown_id_gets_pubcomp_0x92() {
    let broker = TestBroker::start(config()).await;
    let mut client = publisher(&broker).await;
    let pubrel = Packet::PubRel(tern::codec::Ack::success(raw::packet_id(77)));
    client.send(&pubrel).await;
    // 3.7.2.1: 0x92 Packet Identifier not found, and the flow can finish.
    match client.recv().await {
        Packet::PubComp(ack) => {
            assert_eq!(ack.packet_id.get(), 77);
            assert_eq!(ack.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    broker.stop().await;
}
