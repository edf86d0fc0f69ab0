//! The story of the leak (README, "Where it comes from"), told over real TCP: subscribers that
//! vanish without DISCONNECT leave no task, no subscription and no session
//! behind, and the census shows it the way the post's goroutine profile
//! showed the leak.

use std::collections::BTreeMap;

use rumqttc::QoS;
use tern::codec::{Packet, QoS as TernQoS};
use tern::{Census, Config};

use crate::common::client::Client;
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker, IDLE_TASKS};

/// A subscriber like `mosquitto_sub -t story/#`, on a raw socket so that it
/// can be killed the way Ctrl-C kills one: the socket closes, no DISCONNECT.
async fn subscriber(broker: &TestBroker, client_id: &str) -> Raw {
    let mut sub = Raw::connected(broker.addr, client_id).await;
    sub.send(&raw::subscribe(1, "story/#", TernQoS::AtLeastOnce))
        .await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    sub
}

/// Connections, subscriptions and connection tasks: the post's
/// handle / handleSub / relay counts.
fn counts(census: &Census) -> (usize, usize, usize) {
    (
        census.connections,
        census.subscriptions,
        census.tasks_of("connection"),
    )
}

/// Nothing left but the acceptor.
fn is_idle(census: &Census) -> bool {
    census.connections == 0
        && census.subscriptions == 0
        && census.sessions_connected == 0
        && census.sessions_offline == 0
        && census.queued == 0
        && census.inflight == 0
        && census.tasks == BTreeMap::from(IDLE_TASKS)
}

#[tokio::test]
async fn killed_subscriber_leaves_nothing_behind() {
    let broker = TestBroker::start(config()).await;
    let first = subscriber(&broker, "first").await;
    let mut second = subscriber(&broker, "second").await;
    assert_eq!(counts(&broker.census()), (2, 2, 2));

    // Ctrl-C on the first subscriber.
    drop(first);
    let census = broker
        .wait_until("the killed subscriber to be gone", |c| {
            counts(c) == (1, 1, 1)
        })
        .await;
    assert_eq!((census.sessions_connected, census.sessions_offline), (1, 0));

    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("story/1", QoS::AtLeastOnce, false, "still here?")
        .await;
    let Packet::Publish(got) = second.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(got.payload, "still here?");
    second
        .send(&raw::puback(got.packet_id.expect("QoS 1").get()))
        .await;
    publisher.disconnect().await;
    broker
        .wait_until("the publisher to be gone", |c| {
            counts(c) == (1, 1, 1) && c.inflight == 0
        })
        .await;

    // And Ctrl-C on the second.
    drop(second);
    broker.wait_until("the idle baseline", is_idle).await;
    broker.stop().await;
}

/// Every way a client can leave, at once: none leaves anything behind but a
/// persistent session, which is kept by design until a clean CONNECT ends
/// it.
#[tokio::test]
async fn every_way_of_leaving_leaves_nothing_behind() {
    let broker = TestBroker::start(config()).await;
    let closed = subscriber(&broker, "closed").await;
    let reset = subscriber(&broker, "reset").await;
    let mut half = subscriber(&broker, "half").await;
    let mut polite = subscriber(&broker, "polite").await;
    let mut rude = subscriber(&broker, "rude").await;
    let mut twin = subscriber(&broker, "twin").await;
    let mut persistent = raw::connect_packet("persistent");
    persistent.clean_session = false;
    let (mut keeper, _) = Raw::connect(broker.addr, persistent).await;
    keeper
        .send(&raw::subscribe(1, "story/#", TernQoS::AtLeastOnce))
        .await;
    assert!(matches!(keeper.recv().await, Packet::SubAck(_)));
    assert_eq!(counts(&broker.census()), (7, 7, 7));

    drop(closed);
    reset.reset();
    // Half a PUBLISH, then gone.
    half.send_bytes(&[0x30, 0x10, 0x00]).await;
    drop(half);
    polite.send(&raw::disconnect()).await;
    polite.expect_closed().await;
    rude.send(&Packet::PingResp).await;
    rude.expect_closed().await;
    let mut twin_again = Raw::connected(broker.addr, "twin").await;
    twin.expect_closed().await;
    twin_again.send(&raw::disconnect()).await;
    twin_again.expect_closed().await;
    drop(keeper);

    let census = broker
        .wait_until("everyone to be gone", |c| {
            c.connections == 0 && c.tasks == BTreeMap::from(IDLE_TASKS)
        })
        .await;
    assert_eq!(
        (
            census.subscriptions,
            census.sessions_connected,
            census.sessions_offline
        ),
        (1, 0, 1),
        "only the persistent session remains: {census:#?}"
    );

    let mut discard = raw::connect_packet("persistent");
    discard.clean_session = true;
    let (mut cleaner, _) = Raw::connect(broker.addr, discard).await;
    cleaner.send(&raw::disconnect()).await;
    cleaner.expect_closed().await;
    broker.wait_until("the idle baseline", is_idle).await;
    broker.stop().await;
}

/// A clean session that drops abruptly takes its QoS 1 messages, sent and
/// waiting, with it: nothing is kept for a client that will never ask.
#[tokio::test]
async fn killed_clean_session_takes_its_messages_with_it() {
    let broker = TestBroker::start(Config {
        inflight_messages_max: 1,
        ..config()
    })
    .await;
    let sub = subscriber(&broker, "sub").await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for i in 0..3 {
        publisher
            .publish("story/1", QoS::AtLeastOnce, false, &i.to_string())
            .await;
    }
    let census = broker.census();
    assert_eq!((census.inflight, census.queued), (1, 2), "{census:#?}");
    drop(sub);
    publisher.disconnect().await;
    broker.wait_until("the idle baseline", is_idle).await;
    broker.stop().await;
}
