//! The limits a 5.0 client and the broker tell each other, over real TCP
//! (issue 4, item 2): Receive Maximum, Maximum Packet Size and Topic Alias
//! Maximum, each enforced in both directions. The clients are raw sockets
//! speaking 5.0, so that each test sends exactly what it is about.

use tern::codec::{Packet, Property, QoS, ReasonCode};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, publish_qos1, subscriber_v5 as subscriber, TestBroker};

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 payload")
}

#[tokio::test]
async fn connack_describes_the_broker_limits() {
    let broker = TestBroker::start(Config {
        receive_maximum: 7,
        packet_size_max_bytes: 4096,
        topic_alias_max: 3,
        ..config()
    })
    .await;
    let (_raw, connack) = Raw::connected_v5(broker.addr, "c", vec![]).await;
    let p = &connack.properties;
    assert_eq!(p.receive_maximum(), Some(7));
    assert_eq!(p.maximum_packet_size(), Some(4096));
    assert_eq!(p.topic_alias_maximum(), Some(3));
    broker.stop().await;
}

#[tokio::test]
async fn broker_never_exceeds_the_client_receive_maximum() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(&broker, "narrow", vec![Property::ReceiveMaximum(2)], "r/#").await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    for i in 1..=5u16 {
        let payload = format!("m{i}");
        publisher
            .send(&raw::publish(
                "r/x",
                QoS::AtLeastOnce,
                i,
                payload.as_bytes(),
            ))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
    // [MQTT-3.3.4-9]: two unacknowledged at most.
    let mut held = Vec::new();
    for _ in 0..2 {
        match sub.recv().await {
            Packet::Publish(p) => held.push(p),
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    sub.expect_silence().await;
    let census = broker.census();
    assert_eq!((census.inflight, census.queued), (2, 3));
    // Each PUBACK lets one more through, in order.
    let mut payloads: Vec<String> = held.iter().map(|p| utf8(&p.payload)).collect();
    for p in held {
        sub.send(&raw::puback(p.packet_id.unwrap().get())).await;
    }
    for _ in 0..3 {
        payloads.push(utf8(&sub.recv_publish().await.payload));
    }
    assert_eq!(payloads, ["m1", "m2", "m3", "m4", "m5"]);
    broker.stop().await;
}

#[tokio::test]
async fn client_exceeding_the_broker_receive_maximum_is_disconnected_with_0x93() {
    let broker = TestBroker::start(Config {
        receive_maximum: 2,
        ..config()
    })
    .await;
    let (mut client, connack) = Raw::connected_v5(broker.addr, "eager", vec![]).await;
    assert_eq!(connack.properties.receive_maximum(), Some(2));
    for id in 1..=2 {
        client
            .send(&raw::publish("q/2", QoS::ExactlyOnce, id, b"x"))
            .await;
        assert!(matches!(client.recv().await, Packet::PubRec(_)));
    }
    // Two QoS 2 PUBLISHes await PUBREL; a third is over the maximum (3.3.4).
    client
        .send(&raw::publish("q/2", QoS::ExactlyOnce, 3, b"x"))
        .await;
    client
        .expect_disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn inbound_packet_over_the_maximum_size_gets_disconnect_0x95() {
    let broker = TestBroker::start(Config {
        packet_size_max_bytes: 1024,
        ..config()
    })
    .await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "big", vec![]).await;
    // 3.2.2.3.6 and 4.13: the client must not send more than the CONNACK said.
    client
        .send(&raw::publish("b/1", QoS::AtMostOnce, 0, &[b'x'; 2000]))
        .await;
    client.expect_disconnect(ReasonCode::PACKET_TOO_LARGE).await;
    broker.stop().await;
}

#[tokio::test]
async fn outbound_message_over_the_client_maximum_is_dropped_and_counted() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(
        &broker,
        "small",
        vec![Property::MaximumPacketSize(100)],
        "m/#",
    )
    .await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    publisher
        .send(&raw::publish("m/big", QoS::AtLeastOnce, 1, &[b'x'; 200]))
        .await;
    // [MQTT-3.1.2-25]: as if sent, so the publisher's flow completes.
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    publisher
        .send(&raw::publish("m/small", QoS::AtLeastOnce, 2, b"fits"))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    // [MQTT-3.1.2-24]: never sent; the next one is.
    let next = sub.recv_publish().await;
    assert_eq!(next.payload, "fits");
    let census = broker
        .wait_until("the PUBACK of the one sent", |c| c.inflight == 0)
        .await;
    assert_eq!(census.dropped.too_large, 1);
    assert_eq!(census.queued, 0, "the dropped one is not left waiting");
    broker.stop().await;
}

#[tokio::test]
async fn topic_alias_is_set_then_used() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(&broker, "sub", vec![], "a/#").await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "aliaser", vec![]).await;
    let set = raw::publish_with(
        "a/long/topic",
        QoS::AtLeastOnce,
        1,
        b"one",
        vec![Property::TopicAlias(1)],
    );
    client.send(&set).await;
    assert!(matches!(client.recv().await, Packet::PubAck(_)));
    let by_alias = raw::publish_with(
        "a/x",
        QoS::AtLeastOnce,
        2,
        b"two",
        vec![Property::TopicAlias(1)],
    );
    client.send_by_alias(&by_alias).await;
    assert!(matches!(client.recv().await, Packet::PubAck(_)));
    for payload in ["one", "two"] {
        let got = sub.recv_publish().await;
        assert_eq!(
            (got.topic.as_str(), utf8(&got.payload).as_str()),
            ("a/long/topic", payload)
        );
        // The alias was the publisher's connection's, not the subscriber's.
        assert_eq!(got.properties.topic_alias(), None);
    }
    // [MQTT-3.3.2-7]: aliases do not outlive the connection.
    client.send(&raw::disconnect()).await;
    client.expect_closed().await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "aliaser", vec![]).await;
    client.send_by_alias(&by_alias).await;
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.stop().await;
}

#[tokio::test]
async fn unknown_topic_alias_is_a_protocol_error() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "c", vec![]).await;
    let publish = raw::publish_with("x", QoS::AtMostOnce, 0, b"?", vec![Property::TopicAlias(4)]);
    client.send_by_alias(&publish).await;
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.stop().await;
}

#[tokio::test]
async fn topic_alias_above_the_maximum_gets_0x94() {
    let broker = TestBroker::start(Config {
        topic_alias_max: 2,
        ..config()
    })
    .await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "c", vec![]).await;
    // [MQTT-3.3.2-9]
    let publish = raw::publish_with("t", QoS::AtMostOnce, 0, b"?", vec![Property::TopicAlias(3)]);
    client.send(&publish).await;
    client
        .expect_disconnect(ReasonCode::TOPIC_ALIAS_INVALID)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn resent_messages_respect_the_receive_maximum_of_the_new_connection() {
    let broker = TestBroker::start(config()).await;
    let props = |receive_max| {
        vec![
            Property::SessionExpiryInterval(60),
            Property::ReceiveMaximum(receive_max),
        ]
    };
    let mut sub = subscriber(&broker, "shrinking", props(5), "r/#").await;
    for i in 1..=5u16 {
        publish_qos1(&broker, "r/x", format!("m{i}").as_bytes()).await;
    }
    for _ in 0..5 {
        assert!(
            matches!(sub.recv().await, Packet::Publish(_)),
            "unacknowledged"
        );
    }
    drop(sub);
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    let mut connect = raw::connect_v5("shrinking");
    connect.clean_session = false;
    connect.properties = tern::codec::Properties::from(props(2));
    let (mut sub, connack) = Raw::connect(broker.addr, connect).await;
    assert!(connack.session_present);
    // [MQTT-4.4.0-1] resends with the original ids, but the send quota is
    // that of the new connection (4.9): two at a time [MQTT-3.3.4-9].
    let mut resent = Vec::new();
    for _ in 0..2 {
        match sub.recv().await {
            Packet::Publish(p) => resent.push(p),
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
    sub.expect_silence().await;
    broker
        .server
        .check()
        .expect("the broker's own counts and limits hold");
    for p in resent {
        sub.send(&raw::puback(p.packet_id.unwrap().get())).await;
    }
    for _ in 0..3 {
        assert!(sub.recv_publish().await.dup);
    }
    broker.stop().await;
}
