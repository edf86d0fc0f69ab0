//! What one client may cost in sessions (issue 12, row 7): a 3.1.1
//! persistent session expires after `persistent_session_expiry_secs`
//! offline (mosquitto's `persistent_client_expiration`), and a client id is
//! at most `client_id_max_bytes`.

use tern::codec::ConnectCode;
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

#[tokio::test]
async fn a_3_1_1_persistent_session_expires_once_offline_for_its_expiry() {
    let broker = TestBroker::start(Config {
        persistent_session_expiry_secs: 1,
        ..config()
    })
    .await;
    let mut connect = raw::connect_packet("persistent");
    connect.clean_session = false;
    let (mut client, connack) = Raw::connect(broker.addr, connect.clone()).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    client.send(&raw::disconnect()).await;
    client.expect_closed().await;
    broker
        .wait_until("the session to be offline", |c| c.sessions_offline == 1)
        .await;
    broker
        .wait_until("the session to expire", |c| c.sessions_offline == 0)
        .await;
    let (_client, connack) = Raw::connect(broker.addr, connect).await;
    assert!(!connack.session_present, "{connack:?}");
    broker.stop().await;
}

#[tokio::test]
async fn a_client_id_over_the_limit_is_refused() {
    let broker = TestBroker::start(Config {
        client_id_max_bytes: 64,
        ..config()
    })
    .await;
    let (_ok, connack) = Raw::connect(broker.addr, raw::connect_packet(&"a".repeat(64))).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    for connect in [
        raw::connect_packet(&"b".repeat(65)),
        raw::connect_v5(&"c".repeat(65)),
    ] {
        let (_refused, connack) = Raw::connect(broker.addr, connect).await;
        assert_eq!(connack.code, ConnectCode::IdentifierRejected);
    }
    broker.stop().await;
}
