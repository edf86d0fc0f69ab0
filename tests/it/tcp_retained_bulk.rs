//! Retained messages by the thousand: a new subscription gets every one it
//! matches, however small the connection's outbound queue, and a filter
//! that matches nothing costs nothing, however large the store
//! [MQTT-3.3.1-6].

use std::collections::BTreeSet;

use bytes::BytesMut;
use tern::codec::{self, Packet, ProtocolVersion, Publish, QoS, Subscribe, SubscriptionOptions};
use tern::topic::{TopicFilter, TopicName};

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Stores `count` retained messages, on `prefix/0` and up, at `qos`, in one
/// write, and waits until the broker holds them all.
async fn load_retained(broker: &TestBroker, prefix: &str, count: usize, qos: QoS) {
    let mut publisher = Raw::connected(broker.addr, "loader").await;
    let mut bytes = BytesMut::new();
    for i in 0..count {
        let publish = Publish {
            dup: false,
            qos,
            retain: true,
            topic: TopicName::new(&format!("{prefix}/{i}")).unwrap(),
            packet_id: (qos != QoS::AtMostOnce).then(|| raw::packet_id(1 + (i % 60_000) as u16)),
            payload: bytes::Bytes::from(format!("{i}")),
            properties: Default::default(),
        };
        codec::encode(&Packet::Publish(publish), ProtocolVersion::V311, &mut bytes);
    }
    publisher.send_bytes(&bytes).await;
    broker
        .wait_until("every retained message stored", |c| c.retained >= count)
        .await;
}

/// Reads `count` PUBLISHes (acknowledging QoS 1), all retained; returns
/// their topics.
async fn read_retained(sub: &mut Raw, count: usize) -> BTreeSet<String> {
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let publish = sub.recv_publish().await;
        assert!(publish.retain, "{publish:?}");
        topics.insert(publish.topic.as_str().to_owned());
    }
    topics
}

#[tokio::test]
async fn a_subscriber_to_everything_gets_every_retained_message() {
    const COUNT: usize = 20_000;
    let broker = TestBroker::start(tern::Config {
        outbound_packets_max: 50,
        ..config()
    })
    .await;
    load_retained(&broker, "bulk", COUNT, QoS::AtMostOnce).await;
    let mut sub = Raw::connected(broker.addr, "everything").await;
    sub.send(&raw::subscribe(1, "#", QoS::AtMostOnce)).await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let topics = read_retained(&mut sub, COUNT).await;
    assert_eq!(topics.len(), COUNT, "each topic once");
    let census = broker.census();
    assert_eq!(census.dropped.outbound_full, 0, "{census:#?}");
    broker.stop().await;
}

#[tokio::test]
async fn retained_qos1_beyond_the_window_and_queue_all_arrive() {
    const COUNT: usize = 3_000;
    let broker = TestBroker::start(tern::Config {
        outbound_packets_max: 50,
        inflight_messages_max: 5,
        queued_messages_max: 100,
        ..config()
    })
    .await;
    load_retained(&broker, "q", COUNT, QoS::AtLeastOnce).await;
    let mut sub = Raw::connected(broker.addr, "qos1").await;
    sub.send(&raw::subscribe(1, "q/+", QoS::AtLeastOnce)).await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let topics = read_retained(&mut sub, COUNT).await;
    assert_eq!(topics.len(), COUNT, "each topic once");
    let census = broker.census();
    assert_eq!(census.dropped.total(), 0, "{census:#?}");
    broker.stop().await;
}

#[tokio::test]
async fn filters_that_match_nothing_look_at_almost_nothing() {
    const TOPICS: usize = 5_000;
    const FILTERS: usize = 100;
    let broker = TestBroker::start(config()).await;
    load_retained(&broker, "a", TOPICS, QoS::AtMostOnce).await;
    let before = broker.census().retained_visited;
    let mut sub = Raw::connected(broker.addr, "nomatch").await;
    let filters = (0..FILTERS)
        .map(|i| {
            let filter = TopicFilter::new(&format!("+/nomatch{i}")).unwrap();
            (filter, SubscriptionOptions::qos(QoS::AtMostOnce))
        })
        .collect();
    sub.send(&Packet::Subscribe(Subscribe {
        packet_id: raw::packet_id(1),
        filters,
        properties: Default::default(),
    }))
    .await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let visited = broker.census().retained_visited - before;
    // A level-indexed store looks at the one first level `a`, and finds no
    // `nomatchN` under it: a few entries per filter, not the whole store.
    assert!(
        visited <= 10 * FILTERS as u64,
        "{visited} retained entries looked at for {FILTERS} filters that match nothing"
    );
    broker.stop().await;
}
