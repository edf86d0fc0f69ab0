//! 3.1.1 and 5.0 clients on one broker over real TCP (issue 4, item 8):
//! each gets messages in its own version, so a 3.1.1 client never sees a
//! property, and wills, retained messages and sessions follow the rules of
//! the version of the client they belong to. The 3.1.1 side is rumqttc's
//! 3.1.1 client where it only needs to receive: it reads the bytes with its
//! own decoder, so a stray property would garble what it gets.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::QoS as V4QoS;
use tern::codec::{ConnectCode, Packet, Properties, Property, QoS, ReasonCode};
use tern::topic::TopicName;
use tern::Config;

use crate::common::client::{self, Client};
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Every property a PUBLISH from a client may carry and a 3.1.1 client
/// cannot.
fn rich_properties() -> Vec<Property> {
    vec![
        Property::PayloadFormatIndicator(1),
        Property::MessageExpiryInterval(600),
        Property::ContentType("text/plain".into()),
        Property::ResponseTopic(TopicName::new("reply").unwrap()),
        Property::CorrelationData(Bytes::from_static(b"c")),
        Property::UserProperty("k".into(), "v".into()),
    ]
}

async fn v5(broker: &TestBroker, client_id: &str) -> Raw {
    Raw::connected_v5(broker.addr, client_id, vec![]).await.0
}

#[tokio::test]
async fn v311_subscriber_gets_a_v5_message_without_its_properties() {
    let broker = TestBroker::start(config()).await;
    let mut old = Client::connect(broker.addr, "old").await;
    old.subscribe("m/#", V4QoS::AtLeastOnce).await;
    let mut old_raw = Raw::connected(broker.addr, "old-raw").await;
    old_raw
        .send(&raw::subscribe(1, "m/#", QoS::ExactlyOnce))
        .await;
    assert!(matches!(old_raw.recv().await, Packet::SubAck(_)));
    let mut new = v5(&broker, "new").await;
    let publish = raw::publish_with("m/1", QoS::AtLeastOnce, 1, b"hello", rich_properties());
    new.send(&publish).await;
    assert!(matches!(new.recv().await, Packet::PubAck(_)));
    let got = old.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("m/1", &b"hello"[..])
    );
    assert_eq!(got.qos, V4QoS::AtLeastOnce);
    let got = old_raw.recv_publish().await;
    assert_eq!(
        &got.payload[..],
        b"hello",
        "no property bytes in the payload"
    );
    assert!(got.properties.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn v5_subscriber_gets_a_v311_message() {
    let broker = TestBroker::start(config()).await;
    let mut new = v5(&broker, "new").await;
    new.send(&raw::subscribe(1, "m/#", QoS::AtLeastOnce)).await;
    assert!(matches!(new.recv().await, Packet::SubAck(_)));
    let mut old = Client::connect(broker.addr, "old").await;
    old.publish("m/2", V4QoS::ExactlyOnce, false, "from 3.1.1")
        .await;
    let got = new.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("m/2", &b"from 3.1.1"[..])
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(got.properties.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn retained_message_crosses_versions() {
    let broker = TestBroker::start(config()).await;
    let mut new = v5(&broker, "new").await;
    let Packet::Publish(mut publish) =
        raw::publish_with("r/5", QoS::AtLeastOnce, 1, b"kept5", rich_properties())
    else {
        unreachable!()
    };
    publish.retain = true;
    new.send(&Packet::Publish(publish)).await;
    assert!(matches!(new.recv().await, Packet::PubAck(_)));
    let mut old = Client::connect(broker.addr, "old").await;
    old.publish("r/3", V4QoS::AtLeastOnce, true, "kept3").await;

    let mut late_old = Client::connect(broker.addr, "late-old").await;
    late_old.subscribe("r/#", V4QoS::AtLeastOnce).await;
    let mut got: Vec<_> = Vec::new();
    for _ in 0..2 {
        let p = late_old.recv().await;
        assert!(p.retain);
        got.push((p.topic.clone(), p.payload.clone()));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("r/3".to_owned(), Bytes::from("kept3")),
            ("r/5".to_owned(), Bytes::from("kept5"))
        ]
    );

    let mut late_new = v5(&broker, "late-new").await;
    late_new
        .send(&raw::subscribe(1, "r/5", QoS::AtLeastOnce))
        .await;
    assert!(matches!(late_new.recv().await, Packet::SubAck(_)));
    let p = late_new.recv_publish().await;
    assert!(p.retain);
    // The 5.0 subscriber gets the properties that were retained with it.
    assert_eq!(p.properties.payload_format_indicator(), Some(1));
    assert_eq!(
        p.properties.user_properties().collect::<Vec<_>>(),
        [("k", "v")]
    );
    assert!(p.properties.message_expiry_interval().is_some());
    broker.stop().await;
}

#[tokio::test]
async fn wills_cross_versions() {
    let broker = TestBroker::start(config()).await;
    let mut old_watcher = Client::connect(broker.addr, "old-watcher").await;
    old_watcher.subscribe("will/#", V4QoS::AtLeastOnce).await;
    let mut new_watcher = v5(&broker, "new-watcher").await;
    new_watcher
        .send(&raw::subscribe(1, "will/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(new_watcher.recv().await, Packet::SubAck(_)));

    let mut connect = raw::connect_v5("dying5");
    let mut will = raw::will("will/5", "bye5", QoS::AtLeastOnce, false);
    will.properties = Properties::from(rich_properties());
    connect.will = Some(will);
    let (dying5, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    drop(dying5);
    let got = old_watcher.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("will/5", &b"bye5"[..])
    );
    let got = new_watcher.recv_publish().await;
    assert_eq!(got.topic.as_str(), "will/5");
    let content_type = Property::ContentType("text/plain".into());
    assert!(got.properties.iter().any(|p| p == content_type), "{got:?}");

    let mut connect = raw::connect_packet("dying3");
    connect.will = Some(raw::will("will/3", "bye3", QoS::AtLeastOnce, false));
    let (dying3, _) = Raw::connect(broker.addr, connect).await;
    drop(dying3);
    let got = old_watcher.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("will/3", &b"bye3"[..])
    );
    let got = new_watcher.recv_publish().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("will/3", &b"bye3"[..])
    );
    assert!(got.properties.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn each_session_follows_its_own_version() {
    let broker = TestBroker::start(Config {
        session_expiry_max_secs: 1,
        ..config()
    })
    .await;
    // 3.1.1 persistent session: kept with no expiry.
    let mut options = client::options(broker.addr, "old");
    options.set_clean_session(false);
    let (old, _) = Client::connect_with(options.clone()).await;
    old.disconnect().await;
    // 5.0 session: capped at the broker's 1 s.
    let (mut new, _) = Raw::connected_v5(
        broker.addr,
        "new",
        vec![Property::SessionExpiryInterval(60)],
    )
    .await;
    new.send(&raw::disconnect()).await;
    new.expect_closed().await;
    broker
        .wait_until("two offline sessions", |c| c.sessions_offline == 2)
        .await;
    broker
        .wait_until("the 5.0 one to expire", |c| c.sessions_offline == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_old, connack) = Client::connect_with(options).await;
    assert!(connack.session_present, "the 3.1.1 session never expires");
    broker.stop().await;
}

#[tokio::test]
async fn v311_client_gets_0x80_for_a_refused_filter() {
    let broker = TestBroker::start(Config {
        shared_subscriptions: false,
        ..config()
    })
    .await;
    let mut old = Raw::connected(broker.addr, "old").await;
    old.send(&raw::subscribe(1, "$share/g/x", QoS::AtLeastOnce))
        .await;
    match old.recv().await {
        // 3.1.1 has one failure code [MQTT-3.9.3-2 of 3.1.1].
        Packet::SubAck(suback) => assert_eq!(suback.codes, [ReasonCode::UNSPECIFIED_ERROR]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    broker.stop().await;
}
