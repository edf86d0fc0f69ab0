//! The broker's DISCONNECT to a 5.0 client over real TCP (issue 4, item 6):
//! whatever ends a 5.0 connection from our side, the client is told why
//! before the close [MQTT-4.13.2-1], with a reason string. Reasons tested
//! elsewhere: 0x93 and 0x95, 0x94 (tcp5_session), 0x99 (tcp5_publish).

use std::time::Duration;

use tern::codec::{Packet, QoS, ReasonCode};
use tokio::time::Instant;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

#[tokio::test]
async fn keep_alive_timeout_is_0x8d() {
    let broker = TestBroker::start(config()).await;
    let mut connect = raw::connect_v5("quiet");
    connect.keep_alive = 1;
    let (mut client, _) = Raw::connect(broker.addr, connect).await;
    let since = Instant::now();
    // [MQTT-3.1.2-22]: one and a half keepalives of silence.
    let disconnect = client
        .expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT)
        .await;
    assert!(
        since.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        since.elapsed()
    );
    assert!(disconnect.properties.reason_string().is_some());
    broker.stop().await;
}

#[tokio::test]
async fn server_keep_alive_is_the_one_enforced() {
    let broker = TestBroker::start(tern::Config {
        keep_alive_max_secs: 1,
        ..config()
    })
    .await;
    let mut connect = raw::connect_v5("told");
    connect.keep_alive = 600;
    let (mut client, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.properties.server_keep_alive(), Some(1));
    // [MQTT-3.2.2-21]: the client uses it, and so does the server.
    client
        .expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_fits_the_client_maximum_packet_size() {
    let broker = TestBroker::start(config()).await;
    let mut connect = raw::connect_v5("tiny");
    connect.keep_alive = 1;
    connect.properties =
        tern::codec::Properties::from(vec![tern::codec::Property::MaximumPacketSize(16)]);
    let (mut client, _) = Raw::connect(broker.addr, connect).await;
    // [MQTT-3.14.2-3]: no Reason String that would make it too large, and
    // [MQTT-3.1.2-24]: nothing larger than the client's maximum at all.
    let disconnect = client
        .expect_disconnect(ReasonCode::KEEP_ALIVE_TIMEOUT)
        .await;
    let packet = Packet::Disconnect(disconnect);
    let size = tern::codec::encoded_len(&packet, tern::codec::ProtocolVersion::V5);
    assert!(size <= 16, "{size} bytes: {packet:?}");
    broker.stop().await;
}

#[tokio::test]
async fn session_takeover_is_0x8e() {
    let broker = TestBroker::start(config()).await;
    let (mut old, _) = Raw::connected_v5(broker.addr, "twin", vec![]).await;
    let (mut new, _) = Raw::connected_v5(broker.addr, "twin", vec![]).await;
    // [MQTT-3.1.4-3]
    old.expect_disconnect(ReasonCode::SESSION_TAKEN_OVER).await;
    new.send(&Packet::PingReq).await;
    assert_eq!(new.recv().await, Packet::PingResp);
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error_0x82() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "again", vec![]).await;
    // [MQTT-3.1.0-2]
    client
        .send(&Packet::Connect(raw::connect_v5("again").into()))
        .await;
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.stop().await;
}

#[tokio::test]
async fn malformed_packet_is_0x81() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "garbled", vec![]).await;
    // SUBSCRIBE with reserved flags 0000 instead of 0010 [MQTT-3.8.1-1].
    client
        .send_bytes(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, b'a'])
        .await;
    client.expect_disconnect(ReasonCode::MALFORMED_PACKET).await;
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_is_0x8b() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "staying", vec![]).await;
    let mut old = Raw::connected(broker.addr, "old").await;
    broker.server.stop();
    client
        .expect_disconnect(ReasonCode::SERVER_SHUTTING_DOWN)
        .await;
    // A 3.1.1 client has no DISCONNECT to be sent: only the close.
    old.expect_closed().await;
    broker.stop().await;
}

#[tokio::test]
async fn client_disconnect_gets_no_disconnect_back() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "bye", vec![]).await;
    client.send(&raw::disconnect()).await;
    // [MQTT-3.14.4-1]: the server closes; nothing is sent after.
    client.expect_closed().await;
    broker.stop().await;
}

#[tokio::test]
async fn protocol_error_to_a_v311_client_is_a_plain_close() {
    let broker = TestBroker::start(config()).await;
    let mut client = Raw::connected(broker.addr, "old").await;
    client
        .send(&Packet::Connect(raw::connect_packet("old").into()))
        .await;
    client.expect_closed().await;
    // And a 5.0 client nearby is untouched.
    let (mut v5, _) = Raw::connected_v5(broker.addr, "new", vec![]).await;
    v5.send(&raw::subscribe(1, "x", QoS::AtMostOnce)).await;
    assert!(matches!(v5.recv().await, Packet::SubAck(_)));
    broker.stop().await;
}

/// A refusal's reason quotes no client input: a topic of 64 KB over the
/// level limit once made a Reason String too long to encode, and the
/// connection's task panicked instead of saying 0x90.
#[tokio::test]
async fn a_long_topic_over_the_level_limit_is_0x90() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "long", vec![]).await;
    let topic = vec!["a"; 32_767].join("/");
    assert!(topic.len() <= 65_535);
    client
        .send(&raw::publish(&topic, QoS::AtMostOnce, 0, b"x"))
        .await;
    client
        .expect_disconnect(ReasonCode::TOPIC_NAME_INVALID)
        .await;
    broker.stop().await;
}
