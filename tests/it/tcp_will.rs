//! The last will over real TCP. The dying client is a raw socket, so each
//! test controls exactly how it dies: closed (FIN) or reset (RST) with no
//! DISCONNECT publishes the will; DISCONNECT does not; a takeover does.

use rumqttc::QoS;
use tern::codec::{ConnectCode, Packet, QoS as TernQoS};

use crate::common::client::Client;
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Connects a raw client named `client_id` whose will goes to `will/<id>`.
async fn with_will(broker: &TestBroker, client_id: &str, qos: TernQoS, retain: bool) -> Raw {
    let mut connect = raw::connect_packet(client_id);
    connect.will = Some(raw::will(&format!("will/{client_id}"), "gone", qos, retain));
    let (raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    raw
}

async fn watcher(broker: &TestBroker) -> Client {
    let mut watcher = Client::connect(broker.addr, "watcher").await;
    watcher.subscribe("will/#", QoS::ExactlyOnce).await;
    watcher
}

#[tokio::test]
async fn will_is_published_when_the_socket_closes_without_disconnect() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let dying = with_will(&broker, "closed", TernQoS::AtLeastOnce, true).await;
    drop(dying);
    let will = watcher.recv().await;
    assert_eq!(will.topic, "will/closed");
    assert_eq!(will.payload, "gone");
    assert_eq!(will.qos, QoS::AtLeastOnce);
    assert!(!will.retain, "a live subscriber gets retain=false");
    assert_eq!(broker.census().retained, 1, "the will was retained");
    let mut late = Client::connect(broker.addr, "late").await;
    late.subscribe("will/#", QoS::ExactlyOnce).await;
    let retained = late.recv().await;
    assert_eq!(retained.topic, "will/closed");
    assert_eq!(retained.qos, QoS::AtLeastOnce);
    assert!(retained.retain);
    broker.stop().await;
}

#[tokio::test]
async fn will_is_published_when_the_socket_is_reset() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let dying = with_will(&broker, "reset", TernQoS::ExactlyOnce, false).await;
    dying.reset();
    let will = watcher.recv().await;
    assert_eq!(will.topic, "will/reset");
    assert_eq!(will.qos, QoS::ExactlyOnce);
    assert!(!will.retain);
    assert_eq!(broker.census().retained, 0, "this will was not retained");
    broker.stop().await;
}

#[tokio::test]
async fn will_is_not_published_after_disconnect() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let mut leaving = with_will(&broker, "polite", TernQoS::AtLeastOnce, true).await;
    leaving.send(&raw::disconnect()).await;
    leaving.expect_closed().await;
    broker.wait_connections(1).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("will/marker", QoS::AtLeastOnce, false, "marker")
        .await;
    assert_eq!(watcher.recv().await.topic, "will/marker", "no will first");
    assert_eq!(broker.census().retained, 0);
    broker.stop().await;
}

#[tokio::test]
async fn will_is_published_on_takeover() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let mut old = with_will(&broker, "twin", TernQoS::AtLeastOnce, false).await;
    let mut new = Raw::connected(broker.addr, "twin").await;
    old.expect_closed().await;
    let will = watcher.recv().await;
    assert_eq!(
        (will.topic.as_str(), will.qos),
        ("will/twin", QoS::AtLeastOnce)
    );
    broker.wait_connections(2).await;
    new.send(&Packet::PingReq).await;
    assert_eq!(
        new.recv().await,
        Packet::PingResp,
        "the newer connection lives on"
    );
    broker.stop().await;
}
