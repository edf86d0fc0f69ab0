//! MQTT 5.0 sessions over real TCP (issue 4, item 2): Clean Start and
//! Session Expiry, the Assigned Client Identifier and Server Keep Alive (the
//! limits each side tells the other are in tcp5_limits). The clients are raw
//! sockets speaking 5.0, so that each test sends exactly the properties it is
//! about.

use std::time::Duration;

use tern::codec::{Property, ReasonCode};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, publish_qos1, subscriber_v5 as subscriber, TestBroker};

/// Connects a 5.0 client with Clean Start off and the given expiry.
async fn resume(broker: &TestBroker, client_id: &str, expiry_secs: u32) -> (Raw, bool) {
    let mut connect = raw::connect_v5(client_id);
    connect.clean_session = false;
    connect.properties =
        tern::codec::Properties::from(vec![Property::SessionExpiryInterval(expiry_secs)]);
    let (raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, tern::codec::ConnectCode::Accepted);
    (raw, connack.session_present)
}

/// A 5.0 client subscribed to `filter` at QoS 1.
#[tokio::test]
async fn offline_session_is_kept_until_its_expiry_and_then_ends() {
    let broker = TestBroker::start(config()).await;
    let expiry = vec![Property::SessionExpiryInterval(1)];
    let mut sub = subscriber(&broker, "keeper", expiry, "s/#").await;
    sub.send(&raw::disconnect()).await;
    sub.expect_closed().await;
    // [MQTT-3.1.2-23]: the session outlives its connection.
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    publish_qos1(&broker, "s/1", b"held").await;
    assert_eq!(broker.census().queued, 1);
    // [MQTT-3.1.2-5], [MQTT-3.2.2-3]: Clean Start 0 resumes it.
    let (mut back, present) = resume(&broker, "keeper", 1).await;
    assert!(present, "the session is resumed within its expiry");
    assert_eq!(back.recv_publish().await.payload, "held");
    back.send(&raw::disconnect()).await;
    back.expect_closed().await;
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    // After the interval the session and its subscription are gone.
    broker
        .wait_until("the session to expire", |c| {
            c.sessions_offline == 0 && c.subscriptions == 0
        })
        .await;
    let (_back, present) = resume(&broker, "keeper", 0).await;
    assert!(!present, "[MQTT-3.1.2-6]: an expired session is a new one");
    broker.stop().await;
}

#[tokio::test]
async fn session_is_not_ended_before_its_expiry() {
    let broker = TestBroker::start(config()).await;
    let sub = subscriber(
        &broker,
        "slow",
        vec![Property::SessionExpiryInterval(2)],
        "s/#",
    )
    .await;
    drop(sub);
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(broker.census().sessions_offline, 1, "still within 2 s");
    let (_back, present) = resume(&broker, "slow", 0).await;
    assert!(present);
    broker.stop().await;
}

#[tokio::test]
async fn clean_start_discards_the_session() {
    let broker = TestBroker::start(config()).await;
    let sub = subscriber(
        &broker,
        "fresh",
        vec![Property::SessionExpiryInterval(60)],
        "s/#",
    )
    .await;
    drop(sub);
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    // [MQTT-3.1.2-4], [MQTT-3.2.2-2]
    let (_raw, connack) = Raw::connected_v5(broker.addr, "fresh", vec![]).await;
    assert!(!connack.session_present);
    assert_eq!(broker.census().subscriptions, 0);
    broker.stop().await;
}

#[tokio::test]
async fn no_session_expiry_ends_the_session_with_the_connection() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(&broker, "brief", vec![], "s/#").await;
    sub.send(&raw::disconnect()).await;
    sub.expect_closed().await;
    // An absent Session Expiry Interval is 0 (3.1.2.11.2).
    broker
        .wait_until("no session", |c| {
            c.sessions_offline == 0 && c.subscriptions == 0
        })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_shortens_the_session_expiry() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(
        &broker,
        "s",
        vec![Property::SessionExpiryInterval(600)],
        "s/#",
    )
    .await;
    let to_zero = raw::disconnect_with(
        ReasonCode::SUCCESS,
        vec![Property::SessionExpiryInterval(0)],
    );
    sub.send(&to_zero).await;
    sub.expect_closed().await;
    broker.wait_connections(0).await;
    let census = broker.census();
    assert_eq!(census.sessions_offline, 0, "0 in DISCONNECT ends it now");
    assert_eq!(census.subscriptions, 0);

    let mut sub = subscriber(
        &broker,
        "s",
        vec![Property::SessionExpiryInterval(600)],
        "s/#",
    )
    .await;
    let to_one = raw::disconnect_with(
        ReasonCode::SUCCESS,
        vec![Property::SessionExpiryInterval(1)],
    );
    sub.send(&to_one).await;
    sub.expect_closed().await;
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    broker
        .wait_until("the new, shorter expiry", |c| c.sessions_offline == 0)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_setting_an_expiry_after_none_is_a_protocol_error() {
    let broker = TestBroker::start(config()).await;
    let mut sub = subscriber(&broker, "s", vec![], "s/#").await;
    // 3.14.2.2.2: non-zero in DISCONNECT after 0 in CONNECT.
    let set = raw::disconnect_with(
        ReasonCode::SUCCESS,
        vec![Property::SessionExpiryInterval(60)],
    );
    sub.send(&set).await;
    sub.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.wait_connections(0).await;
    assert_eq!(
        broker.census().sessions_offline,
        0,
        "the session ended anyway"
    );
    broker.stop().await;
}

#[tokio::test]
async fn session_expiry_is_capped_by_the_broker_and_said_in_connack() {
    let broker = TestBroker::start(Config {
        session_expiry_max_secs: 5,
        ..config()
    })
    .await;
    let (_raw, connack) = Raw::connected_v5(
        broker.addr,
        "long",
        vec![Property::SessionExpiryInterval(3600)],
    )
    .await;
    // 3.2.2.3.2: the server says which interval it uses.
    assert_eq!(connack.properties.session_expiry_interval(), Some(5));
    broker.stop().await;
}

#[tokio::test]
async fn empty_client_id_gets_an_assigned_client_identifier() {
    let broker = TestBroker::start(config()).await;
    let (mut first, connack) = Raw::connected_v5(broker.addr, "", vec![]).await;
    // [MQTT-3.1.3-6], [MQTT-3.2.2-16]
    let assigned = connack
        .properties
        .assigned_client_identifier()
        .expect("an Assigned Client Identifier")
        .to_owned();
    assert!(!assigned.is_empty());
    let (_second, connack) = Raw::connected_v5(broker.addr, "", vec![]).await;
    let other = connack.properties.assigned_client_identifier().unwrap();
    assert_ne!(assigned, other, "each client gets its own");
    // The identifier is the session's: connecting with it takes it over.
    let (_third, _) = Raw::connected_v5(broker.addr, &assigned, vec![]).await;
    first
        .expect_disconnect(ReasonCode::SESSION_TAKEN_OVER)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn keep_alive_above_the_maximum_gets_a_server_keep_alive() {
    let broker = TestBroker::start(Config {
        keep_alive_max_secs: 30,
        ..config()
    })
    .await;
    let mut connect = raw::connect_v5("ka");
    connect.keep_alive = 60;
    let (_raw, connack) = Raw::connect(broker.addr, connect).await;
    // 3.2.2.3.14: accepted, with the keepalive the server will enforce.
    assert_eq!(connack.code, tern::codec::ConnectCode::Accepted);
    assert_eq!(connack.properties.server_keep_alive(), Some(30));
    let mut connect = raw::connect_v5("ka2");
    connect.keep_alive = 20;
    let (_raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(
        connack.properties.server_keep_alive(),
        None,
        "20 is allowed"
    );
    broker.stop().await;
}
