//! QoS 0, 1 and 2 over real TCP: what a subscriber receives is the lesser of
//! the publish QoS and the granted QoS, and QoS 2 arrives exactly once in
//! both directions of the broker.

use rumqttc::{QoS, SubscribeReasonCode};
use tern::codec::{Ack, Packet, Publish, QoS as TernQoS};
use tern::Config;

use crate::common::client::Client;
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

fn lesser(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) {
        a
    } else {
        b
    }
}

#[tokio::test]
async fn delivered_qos_is_the_lesser_of_publish_and_granted() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    for granted in QOS {
        let code = sub
            .subscribe(&format!("q/{}", granted as u8), granted)
            .await;
        assert_eq!(code, SubscribeReasonCode::Success(granted));
    }
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for sent in QOS {
        for granted in QOS {
            let topic = format!("q/{}", granted as u8);
            let payload = format!("sent {} granted {}", sent as u8, granted as u8);
            publisher.publish(&topic, sent, false, &payload).await;
            let got = sub.recv().await;
            assert_eq!(got.topic, topic);
            assert_eq!(got.payload, payload.as_bytes());
            assert_eq!(got.qos, lesser(sent, granted), "{payload}");
            assert!(!got.retain && !got.dup, "{got:?}");
        }
    }
    broker
        .wait_until("every flow to complete", |c| {
            c.inflight == 0 && c.queued == 0
        })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn qos2_reaches_a_client_subscriber_once() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("once/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("once/a", QoS::ExactlyOnce, false, "exactly once")
        .await;
    // Messages on one topic keep their order, so anything sent twice would
    // come before this marker.
    publisher
        .publish("once/a", QoS::AtLeastOnce, false, "marker")
        .await;
    let first = sub.recv().await;
    assert_eq!(first.payload, "exactly once");
    assert_eq!(first.qos, QoS::ExactlyOnce);
    assert_eq!(sub.recv().await.payload, "marker");
    broker
        .wait_until("the QoS 2 flow to complete", |c| c.inflight == 0)
        .await;
    broker.stop().await;
}

/// A publisher that resends a QoS 2 PUBLISH (DUP) before PUBREL must not
/// have it routed twice; after PUBREL the same id is a new message.
#[tokio::test]
async fn qos2_resent_by_a_publisher_is_routed_once() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("dup/#", QoS::ExactlyOnce).await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    let first = raw::publish("dup/a", TernQoS::ExactlyOnce, 7, b"first");
    publisher.send(&first).await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(7)))
    );
    let Packet::Publish(first) = first else {
        unreachable!("built as a PUBLISH")
    };
    let resend = Packet::Publish(Publish { dup: true, ..first });
    publisher.send(&resend).await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(7)))
    );
    publisher
        .send(&Packet::PubRel(Ack::success(raw::packet_id(7))))
        .await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubComp(Ack::success(raw::packet_id(7)))
    );
    publisher
        .send(&raw::publish("dup/a", TernQoS::AtMostOnce, 0, b"marker"))
        .await;
    publisher
        .send(&raw::publish("dup/a", TernQoS::ExactlyOnce, 7, b"second"))
        .await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(7)))
    );
    assert_eq!(sub.recv().await.payload, "first");
    assert_eq!(sub.recv().await.payload, "marker");
    assert_eq!(sub.recv().await.payload, "second");
    broker.stop().await;
}

/// The broker's side of QoS 2 towards a subscriber, step by step: the
/// message stays in flight until PUBCOMP.
#[tokio::test]
async fn qos2_to_a_raw_subscriber_is_in_flight_until_pubcomp() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Raw::connected(broker.addr, "sub").await;
    sub.send(&raw::subscribe(1, "flow/#", TernQoS::ExactlyOnce))
        .await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("flow/a", QoS::ExactlyOnce, false, "step")
        .await;
    let Packet::Publish(message) = sub.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(message.qos, TernQoS::ExactlyOnce);
    assert_eq!(message.payload, "step");
    let id = message.packet_id.expect("QoS 2 has a packet id");
    assert_eq!(broker.census().inflight, 1);
    sub.send(&Packet::PubRec(Ack::success(id))).await;
    assert_eq!(sub.recv().await, Packet::PubRel(Ack::success(id)));
    assert_eq!(broker.census().inflight, 1, "released, not yet complete");
    sub.send(&Packet::PubComp(Ack::success(id))).await;
    broker
        .wait_until("PUBCOMP to end the flow", |c| c.inflight == 0)
        .await;
    broker.stop().await;
}

/// QoS 1 beyond the inflight window waits in the session and is sent as
/// acknowledgements make room, in publish order.
#[tokio::test]
async fn inflight_window_refills_as_acknowledgements_arrive() {
    let broker = TestBroker::start(Config {
        inflight_messages_max: 2,
        ..config()
    })
    .await;
    let mut sub = Raw::connected(broker.addr, "sub").await;
    sub.send(&raw::subscribe(1, "win/#", TernQoS::AtLeastOnce))
        .await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for i in 0..5 {
        publisher
            .publish("win/a", QoS::AtLeastOnce, false, &i.to_string())
            .await;
    }
    let census = broker.census();
    assert_eq!((census.inflight, census.queued), (2, 3), "{census:#?}");
    for i in 0..5 {
        let Packet::Publish(message) = sub.recv().await else {
            panic!("expected PUBLISH")
        };
        assert_eq!(message.payload, i.to_string().as_bytes());
        let id = message.packet_id.expect("QoS 1 has a packet id");
        sub.send(&Packet::PubAck(Ack::success(id))).await;
    }
    broker
        .wait_until("every message to be acknowledged", |c| {
            c.inflight == 0 && c.queued == 0
        })
        .await;
    broker.stop().await;
}
