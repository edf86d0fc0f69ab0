//! `$` topics are the broker's (issue 12, rows 9 and 11): a client's PUBLISH
//! to `$SYS/...` or any other `$` topic is dropped and counted, never
//! retained or routed (5.0 is told 0x87), as mosquitto drops them; and a
//! will's topic passes the checks a PUBLISH's topic does.

use tern::codec::{ConnectCode, Packet, QoS, ReasonCode};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// A watcher of every `$` topic, and of everything else.
async fn watcher(broker: &TestBroker) -> Raw {
    let mut watcher = Raw::connected(broker.addr, "watcher").await;
    for (id, filter) in [(1, "$SYS/#"), (2, "$fake/#"), (3, "#")] {
        watcher
            .send(&raw::subscribe(id, filter, QoS::AtLeastOnce))
            .await;
        assert!(matches!(watcher.recv().await, Packet::SubAck(_)));
    }
    watcher
}

#[tokio::test]
async fn a_clients_publish_to_a_dollar_topic_is_dropped_and_counted() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let mut client = Raw::connected(broker.addr, "intruder").await;
    let topics = ["$SYS/broker/clients/connected", "$SYS/fake", "$fake/x"];
    for (id, topic) in (1..).zip(topics) {
        let mut publish = raw::publish(topic, QoS::AtLeastOnce, id, b"999");
        if let Packet::Publish(p) = &mut publish {
            p.retain = true;
        }
        client.send(&publish).await;
        // 3.1.1 has no way to say no: the PUBACK is owed all the same.
        assert!(matches!(client.recv().await, Packet::PubAck(_)));
    }
    client
        .send(&raw::publish("$SYS/q0", QoS::AtMostOnce, 0, b"0"))
        .await;
    watcher.expect_silence().await;
    let census = broker.census();
    assert_eq!(census.retained, 0, "{census:#?}");
    assert_eq!(census.dropped.not_authorized, 4, "{census:#?}");
    // And a later subscriber finds nothing retained there either.
    let mut late = Raw::connected(broker.addr, "late").await;
    late.send(&raw::subscribe(1, "$SYS/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(late.recv().await, Packet::SubAck(_)));
    late.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_5_0_client_is_told_it_may_not_publish_to_a_dollar_topic() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "intruder", vec![]).await;
    client
        .send(&raw::publish("$SYS/x", QoS::AtLeastOnce, 1, b"1"))
        .await;
    match client.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    client
        .send(&raw::publish("$SYS/x", QoS::ExactlyOnce, 2, b"2"))
        .await;
    match client.recv().await {
        Packet::PubRec(ack) => assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn dollar_topics_other_than_sys_may_be_allowed() {
    let broker = TestBroker::start(Config {
        dollar_topics_from_clients: true,
        ..config()
    })
    .await;
    let mut watcher = watcher(&broker).await;
    let mut client = Raw::connected(broker.addr, "c").await;
    client
        .send(&raw::publish("$fake/x", QoS::AtLeastOnce, 1, b"ok"))
        .await;
    assert!(matches!(client.recv().await, Packet::PubAck(_)));
    match watcher.recv().await {
        Packet::Publish(p) => assert_eq!(p.topic.as_str(), "$fake/x"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    // `$SYS` stays the broker's whatever the setting.
    client
        .send(&raw::publish("$SYS/x", QoS::AtLeastOnce, 2, b"no"))
        .await;
    assert!(matches!(client.recv().await, Packet::PubAck(_)));
    watcher.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn a_will_topic_is_checked_as_a_publish_topic_is() {
    let broker = TestBroker::start(Config {
        topic_levels_max: 8,
        ..config()
    })
    .await;
    let deep = ["l"; 9].join("/");
    for (topic, code) in [
        (deep.as_str(), ConnectCode::TopicNameInvalid),
        ("$SYS/broker/uptime", ConnectCode::NotAuthorized),
    ] {
        let mut connect = raw::connect_v5("dying");
        connect.will = Some(raw::will(topic, "gone", QoS::AtLeastOnce, true));
        let (_raw, connack) = Raw::connect(broker.addr, connect).await;
        assert_eq!(connack.code, code, "will topic {topic:?}");
    }
    let census = broker.census();
    assert_eq!(census.sessions_connected + census.sessions_offline, 0);
    broker.stop().await;
}
