//! Sessions over real TCP: a persistent session keeps its subscriptions and
//! collects QoS 1 messages while its client is away; a clean one does not;
//! a second connection with the same client id takes over the first.

use rumqttc::QoS;
use tern::codec::{Ack, ConnectCode, Packet, Publish, QoS as TernQoS};

use crate::common::client::{self, Client};
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

async fn connect(broker: &TestBroker, client_id: &str, clean: bool) -> (Client, bool) {
    let mut options = client::options(broker.addr, client_id);
    options.set_clean_session(clean);
    let (client, connack) = Client::connect_with(options).await;
    assert_eq!(connack.code, rumqttc::ConnectReturnCode::Success);
    (client, connack.session_present)
}

#[tokio::test]
async fn persistent_session_receives_what_was_published_while_offline() {
    let broker = TestBroker::start(config()).await;
    let (mut keeper, present) = connect(&broker, "keeper", false).await;
    assert!(!present, "a new session");
    keeper.subscribe("p/#", QoS::AtLeastOnce).await;
    keeper.disconnect().await;
    broker
        .wait_until("the session to be offline", |c| {
            c.connections == 0 && c.sessions_offline == 1 && c.subscriptions == 1
        })
        .await;

    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("p/1", QoS::AtLeastOnce, false, "one")
        .await;
    // QoS 0 is not kept for an offline client.
    publisher
        .publish("p/0", QoS::AtMostOnce, false, "zero")
        .await;
    publisher
        .publish("p/2", QoS::AtLeastOnce, false, "two")
        .await;
    publisher
        .publish("p/3", QoS::AtLeastOnce, false, "three")
        .await;
    assert_eq!(broker.census().queued, 3);

    let (mut keeper, present) = connect(&broker, "keeper", false).await;
    assert!(present, "the session was kept");
    for expected in ["one", "two", "three"] {
        let got = keeper.recv().await;
        assert_eq!(got.payload, expected);
        assert_eq!(got.qos, QoS::AtLeastOnce);
    }
    broker
        .wait_until("every queued message to be acknowledged", |c| {
            c.queued == 0 && c.inflight == 0
        })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn clean_session_keeps_nothing() {
    let broker = TestBroker::start(config()).await;
    let (mut forgetful, present) = connect(&broker, "forgetful", true).await;
    assert!(!present);
    forgetful.subscribe("c/#", QoS::AtLeastOnce).await;
    forgetful.disconnect().await;
    broker
        .wait_until("the session to end", |c| {
            c.connections == 0 && c.sessions_offline == 0 && c.subscriptions == 0
        })
        .await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("c/1", QoS::AtLeastOnce, false, "lost")
        .await;
    assert_eq!(broker.census().queued, 0);

    let (mut forgetful, present) = connect(&broker, "forgetful", true).await;
    assert!(!present);
    forgetful.subscribe("c/#", QoS::AtLeastOnce).await;
    publisher
        .publish("c/2", QoS::AtLeastOnce, false, "marker")
        .await;
    assert_eq!(
        forgetful.recv().await.payload,
        "marker",
        "nothing before it"
    );
    broker.stop().await;
}

#[tokio::test]
async fn clean_connect_discards_a_persistent_session() {
    let broker = TestBroker::start(config()).await;
    let (mut keeper, _) = connect(&broker, "keeper", false).await;
    keeper.subscribe("d/#", QoS::AtLeastOnce).await;
    keeper.disconnect().await;
    broker
        .wait_until("the session to be offline", |c| c.sessions_offline == 1)
        .await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("d/1", QoS::AtLeastOnce, false, "queued")
        .await;
    assert_eq!(broker.census().queued, 1);

    let (_keeper, present) = connect(&broker, "keeper", true).await;
    assert!(!present, "clean session starts afresh");
    let census = broker.census();
    assert_eq!((census.queued, census.subscriptions), (0, 0), "{census:#?}");
    broker.stop().await;
}

/// A QoS 1 message sent but not acknowledged before the client vanished is
/// sent again, with DUP and the same packet id, when the session resumes.
#[tokio::test]
async fn unacknowledged_message_is_resent_with_dup_on_resume() {
    let broker = TestBroker::start(config()).await;
    let mut persistent = raw::connect_packet("keeper");
    persistent.clean_session = false;
    let (mut keeper, _) = Raw::connect(broker.addr, persistent.clone()).await;
    keeper
        .send(&raw::subscribe(1, "r/#", TernQoS::AtLeastOnce))
        .await;
    assert!(matches!(keeper.recv().await, Packet::SubAck(_)));
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("r/1", QoS::AtLeastOnce, false, "again")
        .await;
    let Packet::Publish(first) = keeper.recv().await else {
        panic!("expected PUBLISH")
    };
    assert!(!first.dup);
    drop(keeper);
    broker.wait_connections(1).await;

    let (mut keeper, connack) = Raw::connect(broker.addr, persistent).await;
    assert!(connack.session_present);
    let Packet::Publish(again) = keeper.recv().await else {
        panic!("expected PUBLISH")
    };
    assert!(again.dup, "{again:?}");
    assert_eq!(
        (again.packet_id, &again.payload),
        (first.packet_id, &first.payload)
    );
    let id = again.packet_id.expect("QoS 1 has a packet id").get();
    keeper.send(&raw::puback(id)).await;
    broker
        .wait_until("the PUBACK to end the flow", |c| c.inflight == 0)
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn second_connection_with_the_same_id_takes_over() {
    let broker = TestBroker::start(config()).await;
    let mut first = Raw::connected(broker.addr, "twin").await;
    let mut second = Raw::connected(broker.addr, "twin").await;
    first.expect_closed().await;
    let census = broker.wait_connections(1).await;
    assert_eq!((census.sessions_connected, census.sessions_offline), (1, 0));
    second.send(&Packet::PingReq).await;
    assert_eq!(second.recv().await, Packet::PingResp);
    broker.stop().await;
}

#[tokio::test]
async fn takeover_of_a_persistent_session_keeps_its_subscriptions() {
    let broker = TestBroker::start(config()).await;
    let mut persistent = raw::connect_packet("twin");
    persistent.clean_session = false;
    let (mut first, _) = Raw::connect(broker.addr, persistent.clone()).await;
    first
        .send(&raw::subscribe(1, "k/#", TernQoS::AtMostOnce))
        .await;
    assert!(matches!(first.recv().await, Packet::SubAck(_)));
    let (mut second, connack) = Raw::connect(broker.addr, persistent).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    assert!(connack.session_present);
    first.expect_closed().await;
    broker.wait_connections(1).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("k/x", QoS::AtMostOnce, false, "kept")
        .await;
    let Packet::Publish(got) = second.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(got.payload, "kept");
    broker.stop().await;
}

/// A QoS 2 message released (PUBREL sent) but not completed when the
/// client vanished: on resume the broker sends PUBREL again, not the
/// message, so the client cannot deliver it twice.
#[tokio::test]
async fn released_qos2_message_is_resumed_with_pubrel() {
    let broker = TestBroker::start(config()).await;
    let mut persistent = raw::connect_packet("keeper");
    persistent.clean_session = false;
    let (mut keeper, _) = Raw::connect(broker.addr, persistent.clone()).await;
    keeper
        .send(&raw::subscribe(1, "x/#", TernQoS::ExactlyOnce))
        .await;
    assert!(matches!(keeper.recv().await, Packet::SubAck(_)));
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("x/1", QoS::ExactlyOnce, false, "once")
        .await;
    let Packet::Publish(message) = keeper.recv().await else {
        panic!("expected PUBLISH")
    };
    let id = message.packet_id.expect("QoS 2 has a packet id");
    keeper.send(&Packet::PubRec(Ack::success(id))).await;
    assert_eq!(keeper.recv().await, Packet::PubRel(Ack::success(id)));
    drop(keeper);
    broker.wait_connections(1).await;

    let (mut keeper, connack) = Raw::connect(broker.addr, persistent).await;
    assert!(connack.session_present);
    assert_eq!(keeper.recv().await, Packet::PubRel(Ack::success(id)));
    keeper.send(&Packet::PubComp(Ack::success(id))).await;
    broker
        .wait_until("PUBCOMP to end the flow", |c| c.inflight == 0)
        .await;
    broker.stop().await;
}

/// A publisher that vanished between PUBREC and PUBREL resends the QoS 2
/// PUBLISH when its session resumes; the broker has already routed it and
/// must not route it again.
#[tokio::test]
async fn qos2_resent_after_resume_is_routed_once() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("y/#", QoS::ExactlyOnce).await;
    let mut persistent = raw::connect_packet("pub");
    persistent.clean_session = false;
    let (mut publisher, _) = Raw::connect(broker.addr, persistent.clone()).await;
    let message = raw::publish("y/1", TernQoS::ExactlyOnce, 9, b"once");
    publisher.send(&message).await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(9)))
    );
    drop(publisher);
    broker.wait_connections(1).await;

    let (mut publisher, connack) = Raw::connect(broker.addr, persistent).await;
    assert!(connack.session_present);
    let Packet::Publish(message) = message else {
        unreachable!("built as a PUBLISH")
    };
    let resend = Packet::Publish(Publish {
        dup: true,
        ..message
    });
    publisher.send(&resend).await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(9)))
    );
    publisher
        .send(&Packet::PubRel(Ack::success(raw::packet_id(9))))
        .await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubComp(Ack::success(raw::packet_id(9)))
    );
    publisher
        .send(&raw::publish("y/1", TernQoS::AtMostOnce, 0, b"marker"))
        .await;
    assert_eq!(sub.recv().await.payload, "once");
    assert_eq!(
        sub.recv().await.payload,
        "marker",
        "no second copy before it"
    );
    broker.stop().await;
}
