//! Authentication hooks over real TCP (issue 4, item 7): the broker knows no
//! enhanced authentication method yet, so it refuses one in CONNECT with
//! 0x8C, and an AUTH packet without one is a protocol error.

use tern::codec::{Auth, ConnectCode, Packet, Properties, Property, ReasonCode};

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

#[tokio::test]
async fn unknown_authentication_method_gets_connack_0x8c() {
    let broker = TestBroker::start(config()).await;
    let mut connect = raw::connect_v5("auth");
    connect.properties =
        Properties::from(vec![Property::AuthenticationMethod("SCRAM-SHA-1".into())]);
    let (mut client, connack) = Raw::connect(broker.addr, connect).await;
    // [MQTT-4.12.0-1]: 0x8C Bad authentication method, and the close
    // [MQTT-3.2.2-7].
    assert_eq!(connack.code, ConnectCode::BadAuthenticationMethod);
    assert_eq!(connack.code.v5(), 0x8C);
    client.expect_closed().await;
    broker.wait_connections(0).await;
    assert_eq!(broker.census().sessions_offline, 0, "no session was made");
    broker.stop().await;
}

#[tokio::test]
async fn auth_packet_without_a_method_is_a_protocol_error() {
    let broker = TestBroker::start(config()).await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "c", vec![]).await;
    let auth = Auth {
        reason: ReasonCode::RE_AUTHENTICATE,
        properties: Properties::from(vec![Property::AuthenticationMethod("x".into())]),
    };
    // [MQTT-4.12.1-1]: re-authentication only with the method of CONNECT.
    client.send(&Packet::Auth(auth)).await;
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.stop().await;
}
