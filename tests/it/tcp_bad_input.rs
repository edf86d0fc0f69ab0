//! Bad input over real TCP: a malformed, oversized or out-of-place packet
//! closes the connection that sent it and nothing else. Other clients keep
//! receiving, the broker does not panic, and a message it acknowledged
//! before the trouble is still delivered.

use rumqttc::{QoS, SubscribeReasonCode};
use tern::codec::{Packet, QoS as TernQoS};
use tern::Config;

use crate::common::client::{self, Client};
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// A broker with clients that must not notice someone else's mistake.
struct Scene {
    broker: TestBroker,
    /// Subscribed to `b/#`, connected throughout.
    bystander: Client,
    publisher: Client,
}

/// Small limits, so that "too large" and "too deep" are cheap to send.
fn limits() -> Config {
    Config {
        packet_size_max_bytes: 1024,
        topic_levels_max: 4,
        ..config()
    }
}

fn keeper_options(addr: std::net::SocketAddr) -> rumqttc::MqttOptions {
    let mut options = client::options(addr, "keeper");
    options.set_clean_session(false);
    options
}

impl Scene {
    /// Sets the scene: an offline persistent session "keeper" holds one QoS
    /// 1 message, acknowledged to its publisher, on `b/1`.
    async fn set() -> Scene {
        let broker = TestBroker::start(limits()).await;
        let (mut keeper, _) = Client::connect_with(keeper_options(broker.addr)).await;
        keeper.subscribe("b/#", QoS::AtLeastOnce).await;
        keeper.disconnect().await;
        broker
            .wait_until("the keeper to be offline", |c| c.sessions_offline == 1)
            .await;
        let mut bystander = Client::connect(broker.addr, "bystander").await;
        bystander.subscribe("b/#", QoS::AtLeastOnce).await;
        let mut publisher = Client::connect(broker.addr, "pub").await;
        publisher
            .publish("b/1", QoS::AtLeastOnce, false, "acked before")
            .await;
        assert_eq!(broker.census().queued, 1, "held for the keeper");
        Scene {
            broker,
            bystander,
            publisher,
        }
    }

    /// Opens a raw connection, CONNECTed or not.
    async fn open(&self, connected: bool) -> Raw {
        if connected {
            Raw::connected(self.broker.addr, "culprit").await
        } else {
            Raw::open(self.broker.addr).await
        }
    }

    /// Sends `bytes` on a fresh connection and asserts that exactly it is
    /// closed.
    async fn misbehave(&self, connected: bool, bytes: &[u8]) {
        let mut culprit = self.open(connected).await;
        culprit.send_bytes(bytes).await;
        culprit.expect_closed().await;
        self.broker.wait_connections(2).await;
    }

    /// The bystander and the keeper get everything sent on `b/#`, in order:
    /// the message acknowledged before, those the test sent `between`, and
    /// one published now. Then stops the broker.
    async fn check_and_stop(mut self, between: &[&str]) {
        self.publisher
            .publish("b/2", QoS::AtLeastOnce, false, "after")
            .await;
        let mut expected = vec!["acked before"];
        expected.extend_from_slice(between);
        expected.push("after");
        assert_received(&mut self.bystander, &expected).await;
        let (mut keeper, connack) = Client::connect_with(keeper_options(self.broker.addr)).await;
        assert!(connack.session_present);
        assert_received(&mut keeper, &expected).await;
        self.broker.stop().await;
    }
}

async fn assert_received(client: &mut Client, payloads: &[&str]) {
    for payload in payloads {
        assert_eq!(client.recv().await.payload, payload.as_bytes());
    }
}

fn encoded(packet: &Packet) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    tern::codec::encode(packet, tern::codec::ProtocolVersion::V311, &mut buf);
    buf.to_vec()
}

#[tokio::test]
async fn malformed_packet_closes_only_its_connection() {
    let scene = Scene::set().await;
    // Packet type 0 is reserved.
    scene.misbehave(true, &[0x00, 0x00]).await;
    scene.check_and_stop(&[]).await;
}

#[tokio::test]
async fn assorted_malformed_packets_each_close_only_their_connection() {
    let scene = Scene::set().await;
    let after_connect: [&[u8]; 7] = [
        // PUBLISH with QoS 3.
        &[0x36, 0x05, 0x00, 0x01, b'b', 0x00, 0x01],
        // PUBLISH whose topic is not UTF-8.
        &[0x30, 0x05, 0x00, 0x02, 0xff, 0xfe, b'x'],
        // PUBLISH to a filter, not a name.
        &[0x30, 0x05, 0x00, 0x03, b'b', b'/', b'#'],
        // A remaining length of five bytes.
        &[0x30, 0xff, 0xff, 0xff, 0xff, 0x7f],
        // SUBSCRIBE with reserved flags 0000 instead of 0010.
        &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'b', 0x00],
        // SUBSCRIBE with no filter.
        &[0x82, 0x02, 0x00, 0x01],
        // PUBACK with packet id 0.
        &[0x40, 0x02, 0x00, 0x00],
    ];
    for bytes in after_connect {
        scene.misbehave(true, bytes).await;
    }
    // An HTTP request where a CONNECT should be.
    scene.misbehave(false, b"GET / HTTP/1.1\r\n\r\n").await;
    // A topic deeper than topic_levels_max.
    let deep = raw::publish("b/1/2/3/4", TernQoS::AtMostOnce, 0, b"deep");
    scene.misbehave(true, &encoded(&deep)).await;
    scene.check_and_stop(&[]).await;
}

#[tokio::test]
async fn packet_over_the_size_limit_is_refused_from_its_header() {
    let scene = Scene::set().await;
    // A PUBLISH announcing 2000 bytes; only its fixed header is sent, so the
    // broker must refuse it before the body arrives.
    scene.misbehave(true, &[0x30, 0xd0, 0x0f]).await;
    // The same before CONNECT.
    scene.misbehave(false, &[0x10, 0xd0, 0x0f]).await;
    scene.check_and_stop(&[]).await;
}

#[tokio::test]
async fn publish_before_connect_closes_the_connection() {
    let scene = Scene::set().await;
    let publish = raw::publish("b/x", TernQoS::AtLeastOnce, 1, b"too early");
    scene.misbehave(false, &encoded(&publish)).await;
    scene.check_and_stop(&[]).await;
}

#[tokio::test]
async fn second_connect_closes_the_connection_and_publishes_the_will() {
    let scene = Scene::set().await;
    let mut connect = raw::connect_packet("culprit");
    connect.will = Some(raw::will("b/will", "violated", TernQoS::AtLeastOnce, false));
    let (mut culprit, _) = Raw::connect(scene.broker.addr, connect.clone()).await;
    culprit.send(&Packet::Connect(connect.into())).await;
    culprit.expect_closed().await;
    scene.broker.wait_connections(2).await;
    scene.check_and_stop(&["violated"]).await;
}

#[tokio::test]
async fn pingresp_from_a_client_closes_the_connection() {
    let scene = Scene::set().await;
    scene.misbehave(true, &encoded(&Packet::PingResp)).await;
    scene.check_and_stop(&[]).await;
}

#[tokio::test]
async fn refused_subscription_is_not_a_close() {
    let scene = Scene::set().await;
    let mut client = Client::connect(scene.broker.addr, "deep").await;
    let code = client.subscribe("b/1/2/3/#", QoS::AtLeastOnce).await;
    assert_eq!(code, SubscribeReasonCode::Failure);
    client
        .publish("b/ok", QoS::AtLeastOnce, false, "still here")
        .await;
    drop(client);
    scene.broker.wait_connections(2).await;
    scene.check_and_stop(&["still here"]).await;
}
