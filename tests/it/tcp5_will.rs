//! MQTT 5.0 wills over real TCP (issue 4, item 5): the Will Delay Interval
//! (sent after the delay, cancelled by a reconnect within it, sent when the
//! session ends if that is sooner), will properties forwarded, and
//! DISCONNECT 0x04, which asks for the will.

use std::time::Duration;

use bytes::Bytes;
use tern::codec::{ConnectCode, Packet, Properties, Property, Publish, QoS, ReasonCode};
use tern::topic::TopicName;
use tokio::time::Instant;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Connects a 5.0 client whose will goes to `will/<id>`, with `will_props`
/// on the will and `props` on the CONNECT.
async fn with_will(
    broker: &TestBroker,
    client_id: &str,
    clean_start: bool,
    will_props: Vec<Property>,
    props: Vec<Property>,
) -> Raw {
    let mut connect = raw::connect_v5(client_id);
    connect.clean_session = clean_start;
    let mut will = raw::will(
        &format!("will/{client_id}"),
        "gone",
        QoS::AtLeastOnce,
        false,
    );
    will.properties = Properties::from(will_props);
    connect.will = Some(will);
    connect.properties = Properties::from(props);
    let (raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    raw
}

/// A 5.0 client subscribed to `will/#`.
async fn watcher(broker: &TestBroker) -> Raw {
    let (mut raw, _) = Raw::connected_v5(broker.addr, "watcher", vec![]).await;
    raw.send(&raw::subscribe(1, "will/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(raw.recv().await, Packet::SubAck(_)));
    raw
}

async fn recv_will(watcher: &mut Raw) -> Publish {
    let will = watcher.recv_publish().await;
    assert!(will.topic.as_str().starts_with("will/"), "{will:?}");
    will
}

#[tokio::test]
async fn will_is_sent_after_its_delay() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let dying = with_will(
        &broker,
        "late",
        true,
        vec![Property::WillDelayInterval(1)],
        vec![Property::SessionExpiryInterval(60)],
    )
    .await;
    let closed = Instant::now();
    drop(dying);
    // 3.1.3.2.2: not before the delay.
    let will = recv_will(&mut watcher).await;
    let waited = closed.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "sent after {waited:?}"
    );
    assert_eq!(will.topic.as_str(), "will/late");
    assert_eq!(
        will.properties.will_delay_interval(),
        None,
        "not a PUBLISH property"
    );
    broker.stop().await;
}

#[tokio::test]
async fn reconnect_within_the_delay_cancels_the_will() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let expiry = || vec![Property::SessionExpiryInterval(60)];
    let delay = || vec![Property::WillDelayInterval(1)];
    let dying = with_will(&broker, "back", true, delay(), expiry()).await;
    drop(dying);
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    // [MQTT-3.1.3-9]: a new connection to the session within the delay.
    let mut back = with_will(&broker, "back", false, delay(), expiry()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watcher.expect_silence().await;
    // The new connection's own will still works.
    back.send(&raw::disconnect_with(
        ReasonCode::DISCONNECT_WITH_WILL,
        vec![],
    ))
    .await;
    back.expect_closed().await;
    // 0x04 asks for the will, after its delay as for any other end.
    let will = recv_will(&mut watcher).await;
    assert_eq!(will.topic.as_str(), "will/back");
    watcher.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn will_is_sent_when_the_session_ends_before_the_delay() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let dying = with_will(
        &broker,
        "brief",
        true,
        vec![Property::WillDelayInterval(60)],
        vec![Property::SessionExpiryInterval(1)],
    )
    .await;
    let closed = Instant::now();
    drop(dying);
    // 3.1.3.2.2: "or the Session ends, whichever happens first".
    let will = recv_will(&mut watcher).await;
    let waited = closed.elapsed();
    assert!(
        (Duration::from_millis(950)..Duration::from_secs(5)).contains(&waited),
        "sent after {waited:?}"
    );
    assert_eq!(will.topic.as_str(), "will/brief");
    broker
        .wait_until("the session ended", |c| c.sessions_offline == 0)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn will_delay_with_no_session_expiry_sends_the_will_at_once() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let dying = with_will(
        &broker,
        "now",
        true,
        vec![Property::WillDelayInterval(60)],
        vec![],
    )
    .await;
    drop(dying);
    // The session ends with the connection, so the delay ends too.
    let will = tokio::time::timeout(Duration::from_secs(2), recv_will(&mut watcher))
        .await
        .expect("the will without waiting out its delay");
    assert_eq!(will.topic.as_str(), "will/now");
    broker.stop().await;
}

#[tokio::test]
async fn clean_start_reconnect_ends_the_session_and_sends_the_delayed_will() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let dying = with_will(
        &broker,
        "restart",
        true,
        vec![Property::WillDelayInterval(60)],
        vec![Property::SessionExpiryInterval(60)],
    )
    .await;
    drop(dying);
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    // Clean Start discards the session [MQTT-3.1.2-4], which ends the delay.
    let _fresh = Raw::connected_v5(broker.addr, "restart", vec![]).await;
    let will = tokio::time::timeout(Duration::from_secs(2), recv_will(&mut watcher))
        .await
        .expect("the will when its session is discarded");
    assert_eq!(will.topic.as_str(), "will/restart");
    broker.stop().await;
}

#[tokio::test]
async fn will_properties_are_forwarded() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let props = vec![
        Property::PayloadFormatIndicator(1),
        Property::ContentType("text/plain".into()),
        Property::ResponseTopic(TopicName::new("reply/here").unwrap()),
        Property::CorrelationData(Bytes::from_static(b"id-9")),
        Property::UserProperty("k".into(), "v1".into()),
        Property::UserProperty("k".into(), "v2".into()),
    ];
    let mut will_props = props.clone();
    will_props.push(Property::MessageExpiryInterval(600));
    let dying = with_will(&broker, "props", true, will_props, vec![]).await;
    drop(dying);
    let will = recv_will(&mut watcher).await;
    // [MQTT-3.1.3-10]: user properties in order; the rest as for PUBLISH.
    let (mut expiry, mut others) = (None, Vec::new());
    for p in will.properties.iter() {
        match p {
            Property::MessageExpiryInterval(secs) => expiry = Some(secs),
            other => others.push(other),
        }
    }
    assert_eq!(others, props);
    assert!(
        expiry.is_some_and(|s| (598..=600).contains(&s)),
        "{expiry:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_0x04_sends_the_will_and_0x00_does_not() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let mut polite = with_will(&broker, "polite", true, vec![], vec![]).await;
    polite.send(&raw::disconnect()).await;
    polite.expect_closed().await;
    // 3.14.2.1: 0x04 Disconnect with Will Message.
    let mut asking = with_will(&broker, "asking", true, vec![], vec![]).await;
    asking
        .send(&raw::disconnect_with(
            ReasonCode::DISCONNECT_WITH_WILL,
            vec![],
        ))
        .await;
    asking.expect_closed().await;
    let will = recv_will(&mut watcher).await;
    assert_eq!(will.topic.as_str(), "will/asking", "and none for polite");
    watcher.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn takeover_within_the_will_delay_does_not_send_the_will() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = watcher(&broker).await;
    let expiry = || vec![Property::SessionExpiryInterval(60)];
    let delay = || vec![Property::WillDelayInterval(1)];
    let mut old = with_will(&broker, "twin", true, delay(), expiry()).await;
    // [MQTT-3.1.4-3] ends the old connection; the new one, Clean Start 0,
    // is a new connection to the session within the delay [MQTT-3.1.3-9].
    let _new = with_will(&broker, "twin", false, vec![], expiry()).await;
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    watcher.expect_silence().await;
    broker.stop().await;
}
