//! Topic matching over real TCP: `+` and `#`, `$`-topics kept from leading
//! wildcards, one copy per client however many of its filters match,
//! UNSUBSCRIBE, and the broker's own `$SYS` topics.

use rumqttc::{Incoming, Publish, QoS};
use tern::Config;

use crate::common::client::Client;
use crate::common::{config, TestBroker};

/// Receives until the message with payload `last`, returning (topic, QoS)
/// of everything received, `last` included.
async fn recv_through(client: &mut Client, last: &str) -> Vec<(String, QoS)> {
    let mut seen = Vec::new();
    loop {
        let Publish {
            topic,
            qos,
            payload,
            ..
        } = client.recv().await;
        seen.push((topic, qos));
        if payload == last {
            return seen;
        }
    }
}

fn topics(seen: &[(String, QoS)]) -> Vec<&str> {
    seen.iter().map(|(t, _)| t.as_str()).collect()
}

#[tokio::test]
async fn plus_matches_one_level_and_hash_the_rest() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("w/+/c", QoS::AtLeastOnce).await;
    sub.subscribe("w/x/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for topic in [
        "w/a/c", "w/a/b/c", "w/x", "w/x/y/z", "w/y/d", "w", "w/a/c/d",
    ] {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, topic)
            .await;
    }
    publisher
        .publish("w/end/c", QoS::AtLeastOnce, false, "end")
        .await;
    let seen = recv_through(&mut sub, "end").await;
    assert_eq!(topics(&seen), ["w/a/c", "w/x", "w/x/y/z", "w/end/c"]);
    broker.stop().await;
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // A client's `$` topic stands in for the broker's own here.
    let broker = TestBroker::start(tern::Config {
        dollar_topics_from_clients: true,
        ..config()
    })
    .await;
    let mut wild = Client::connect(broker.addr, "wild").await;
    wild.subscribe("#", QoS::AtMostOnce).await;
    wild.subscribe("+/y", QoS::AtMostOnce).await;
    let mut dollar = Client::connect(broker.addr, "dollar").await;
    dollar.subscribe("$x/+", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("$x/y", QoS::AtLeastOnce, false, "dollar")
        .await;
    publisher
        .publish("m/y", QoS::AtLeastOnce, false, "marker")
        .await;
    let seen = recv_through(&mut wild, "marker").await;
    assert_eq!(topics(&seen), ["m/y"], "one copy, and no $x/y before it");
    assert_eq!(dollar.recv().await.topic, "$x/y");
    broker.stop().await;
}

#[tokio::test]
async fn overlapping_filters_deliver_one_copy_at_the_highest_granted_qos() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("o/+", QoS::AtMostOnce).await;
    sub.subscribe("o/#", QoS::ExactlyOnce).await;
    sub.subscribe("o/x", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("o/x", QoS::ExactlyOnce, false, "two")
        .await;
    publisher
        .publish("o/x", QoS::AtLeastOnce, false, "one")
        .await;
    publisher
        .publish("o/end", QoS::AtMostOnce, false, "end")
        .await;
    let seen = recv_through(&mut sub, "end").await;
    let expected = [
        ("o/x".to_owned(), QoS::ExactlyOnce),
        ("o/x".to_owned(), QoS::AtLeastOnce),
        ("o/end".to_owned(), QoS::AtMostOnce),
    ];
    assert_eq!(seen, expected);
    broker.stop().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("u/a", QoS::AtLeastOnce).await;
    sub.subscribe("u/b", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("u/a", QoS::AtLeastOnce, false, "before")
        .await;
    assert_eq!(sub.recv().await.payload, "before");
    sub.unsubscribe("u/a").await;
    // A filter the client does not hold is acknowledged all the same.
    sub.unsubscribe("u/never").await;
    assert_eq!(broker.census().subscriptions, 1);
    publisher
        .publish("u/a", QoS::AtLeastOnce, false, "after")
        .await;
    publisher
        .publish("u/b", QoS::AtLeastOnce, false, "marker")
        .await;
    let seen = recv_through(&mut sub, "marker").await;
    assert_eq!(topics(&seen), ["u/b"]);
    broker.stop().await;
}

#[tokio::test]
async fn sys_topics_carry_the_census_and_stay_out_of_hash() {
    let broker = TestBroker::start(Config {
        sys_interval_secs: 1,
        ..config()
    })
    .await;
    let mut wild = Client::connect(broker.addr, "wild").await;
    wild.subscribe("#", QoS::AtMostOnce).await;
    let mut sys = Client::connect(broker.addr, "sys").await;
    sys.subscribe("$SYS/broker/connections/count", QoS::AtMostOnce)
        .await;
    // A live (not retained) count comes from a tick after both subscribed,
    // and counts both clients.
    loop {
        let count = sys.recv().await;
        if !count.retain && count.payload == "2" {
            break;
        }
    }
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("m", QoS::AtLeastOnce, false, "marker")
        .await;
    let seen = recv_through(&mut wild, "marker").await;
    assert_eq!(topics(&seen), ["m"], "no $SYS message reached #");
    sys.subscribe("$SYS/broker/version", QoS::AtMostOnce).await;
    // More counts may arrive first, one a second.
    let version = sys
        .expect("the retained version", |p| match p {
            Incoming::Publish(p) if p.topic == "$SYS/broker/version" => Some(p.clone()),
            _ => None,
        })
        .await;
    assert!(version.retain, "{version:?}");
    assert!(version.payload.starts_with(b"tern "), "{version:?}");
    broker.stop().await;
}
