//! The broker's clocks over real TCP: keepalive closes a client that went
//! silent (and publishes its will), traffic keeps a client alive, and the
//! connect timeout closes a socket that never finishes its CONNECT.

use std::time::Duration;

use rumqttc::QoS;
use tern::codec::{ConnectCode, Packet, QoS as TernQoS};
use tern::Config;
use tokio::time::Instant;

use crate::common::client::Client;
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker, QUIET};

async fn connect_with_keep_alive(broker: &TestBroker, client_id: &str, secs: u16) -> Raw {
    let mut connect = raw::connect_packet(client_id);
    connect.keep_alive = secs;
    connect.will = Some(raw::will(
        "will/silent",
        "gone",
        TernQoS::AtLeastOnce,
        false,
    ));
    let (raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    raw
}

#[tokio::test]
async fn keepalive_closes_a_silent_client_and_publishes_its_will() {
    let broker = TestBroker::start(config()).await;
    let mut watcher = Client::connect(broker.addr, "watcher").await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;
    let mut silent = connect_with_keep_alive(&broker, "silent", 1).await;
    let connected = Instant::now();
    silent.expect_closed().await;
    let elapsed = connected.elapsed();
    // The broker allows 1.5 s from its own CONNACK, which we read a little
    // later; the upper bound is loose for a loaded machine.
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed <= Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    let will = watcher.recv().await;
    assert_eq!(
        (will.topic.as_str(), will.qos),
        ("will/silent", QoS::AtLeastOnce)
    );
    broker.wait_connections(1).await;
    broker.stop().await;
}

#[tokio::test]
async fn each_packet_renews_the_keepalive() {
    let broker = TestBroker::start(config()).await;
    let mut chatty = connect_with_keep_alive(&broker, "chatty", 1).await;
    // Pacing, not synchronization: a ping every 500 ms for 3 s, twice the
    // 1.5 s the broker allows between packets.
    let mut pace = tokio::time::interval(Duration::from_millis(500));
    for _ in 0..6 {
        pace.tick().await;
        chatty.send(&Packet::PingReq).await;
        assert_eq!(chatty.recv().await, Packet::PingResp);
    }
    assert_eq!(broker.census().connections, 1);
    broker.stop().await;
}

fn quick_connect_timeout() -> Config {
    Config {
        connect_timeout_ms: 200,
        ..config()
    }
}

#[tokio::test]
async fn connect_timeout_closes_a_socket_that_sends_nothing() {
    let broker = TestBroker::start(quick_connect_timeout()).await;
    let mut idle = Raw::open(broker.addr).await;
    let opened = Instant::now();
    idle.expect_closed().await;
    let elapsed = opened.elapsed();
    assert!(
        elapsed >= Duration::from_millis(100),
        "closed after {elapsed:?}"
    );
    broker.wait_connections(0).await;
    broker.stop().await;
}

#[tokio::test]
async fn connect_timeout_closes_a_socket_that_sends_half_a_connect() {
    let broker = TestBroker::start(quick_connect_timeout()).await;
    let mut slow = Raw::open(broker.addr).await;
    // A CONNECT's fixed header and the start of its protocol name.
    slow.send_bytes(&[0x10, 0x0c, 0x00, 0x04, b'M']).await;
    slow.expect_closed().await;
    broker.wait_connections(0).await;
    broker.stop().await;
}

#[tokio::test]
async fn connect_timeout_ends_with_the_connect() {
    let broker = TestBroker::start(quick_connect_timeout()).await;
    let mut client = Raw::connected(broker.addr, "patient").await;
    // A negative: nothing closes this connection once CONNECT is done. No
    // message can mark "the timeout would have fired by now", so wait
    // QUIET (300 ms), past the 200 ms timeout, and check it is still open.
    tokio::time::sleep(QUIET).await;
    client.send(&Packet::PingReq).await;
    assert_eq!(client.recv().await, Packet::PingResp);
    broker.stop().await;
}

/// Sends a PUBLISH's first bytes, then one more every 100 ms, never
/// finishing it, until the broker closes the connection: how long that took.
async fn trickle_until_closed(client: &mut Raw) -> Duration {
    // QoS 0 PUBLISH of 200 bytes: its header and the topic's length.
    client
        .send_bytes(&[0x30, 0xc8, 0x01, 0x00, 0x01, b't'])
        .await;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            read = client.read() => {
                assert!(matches!(read, raw::Read::Closed), "got {read:?}");
                return began.elapsed();
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        // The broker may close between our read and this write.
        let _ = client.try_send_bytes(b"x").await;
    }
    panic!("still open after 20 s of a packet never finished");
}

#[tokio::test]
async fn a_packet_must_be_whole_within_the_packet_timeout() {
    let broker = TestBroker::start(Config {
        packet_timeout_ms: 500,
        ..config()
    })
    .await;
    // Keepalive 60 s: only the packet timeout can close it in the test.
    let mut slow = connect_with_keep_alive(&broker, "slowloris", 60).await;
    let elapsed = trickle_until_closed(&mut slow).await;
    // Found between one and two timeouts after the first byte; the upper
    // bound is loose for a loaded machine (the trickle lasts 19 s).
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed <= Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    broker.wait_connections(0).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_partial_packet_does_not_renew_the_keepalive() {
    let broker = TestBroker::start(config()).await;
    let mut slow = connect_with_keep_alive(&broker, "dribbler", 1).await;
    let elapsed = trickle_until_closed(&mut slow).await;
    assert!(
        elapsed <= Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    broker.wait_connections(0).await;
    broker.stop().await;
}
