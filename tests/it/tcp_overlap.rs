//! One client's overlapping filters (issue 12, row 10): a topic that all
//! of them match makes each publish to it walk them all, however few
//! copies it sends. That work is counted in the census, and a batch of
//! such publishes is split between holds of the broker's lock, so that the
//! others wait for one walk at a time, not for a batch of them.

use bytes::BytesMut;
use tern::codec::{self, Packet, ProtocolVersion, QoS, Subscribe, SubscriptionOptions};
use tern::topic::TopicFilter;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Each filter is `+` or the topic's own level in each of these levels:
/// 2^14 filters, and the topic matches every one.
const LEVELS: u32 = 14;
/// Publishes sent in one write, so that the broker reads them as one batch.
const BURST: u64 = 32;

pub(crate) fn topic() -> String {
    let levels: Vec<String> = (0..LEVELS).map(|i| format!("l{i}")).collect();
    levels.join("/")
}

/// Every filter that `topic()` matches with `+` or its literal per level.
pub(crate) fn overlapping() -> Vec<TopicFilter> {
    (0..1u32 << LEVELS)
        .map(|mask| {
            let levels: Vec<String> = (0..LEVELS)
                .map(|i| match mask >> i & 1 {
                    1 => "+".to_owned(),
                    _ => format!("l{i}"),
                })
                .collect();
            TopicFilter::new(&levels.join("/")).unwrap()
        })
        .collect()
}

pub(crate) async fn subscribe_all(client: &mut Raw, filters: Vec<TopicFilter>) {
    let publishes = subscribe_all_reading(client, filters).await;
    assert!(publishes.is_empty(), "{publishes:?}");
}

/// Subscribes to every filter, in SUBSCRIBEs of 1,024 sent at once; the
/// PUBLISHes read among the SUBACKs.
async fn subscribe_all_reading(client: &mut Raw, filters: Vec<TopicFilter>) -> Vec<Packet> {
    let chunks: Vec<_> = filters.chunks(1024).map(<[_]>::to_vec).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let filters = chunk
            .iter()
            .map(|f| (f.clone(), SubscriptionOptions::qos(QoS::AtMostOnce)))
            .collect();
        let id = u16::try_from(i + 1).unwrap();
        client
            .send(&Packet::Subscribe(Subscribe {
                packet_id: raw::packet_id(id),
                filters,
                properties: Default::default(),
            }))
            .await;
    }
    let (mut subacks, mut publishes) = (0, Vec::new());
    while subacks < chunks.len() {
        match client.recv().await {
            Packet::SubAck(_) => subacks += 1,
            publish @ Packet::Publish(_) => publishes.push(publish),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    publishes
}

#[tokio::test]
async fn a_burst_over_overlapping_filters_is_counted_and_split_between_holds() {
    let broker = TestBroker::start(config()).await;
    let mut wild = Raw::connected(broker.addr, "wild").await;
    subscribe_all(&mut wild, overlapping()).await;
    let mut publisher = Raw::connected(broker.addr, "publisher").await;
    let topic = topic();
    let mut burst = BytesMut::new();
    for i in 0..BURST {
        // The last one is QoS 1: its PUBACK says the whole burst is routed.
        let (qos, id) = if i + 1 == BURST {
            (QoS::AtLeastOnce, 1)
        } else {
            (QoS::AtMostOnce, 0)
        };
        let publish = raw::publish(&topic, qos, id, b"x");
        codec::encode(&publish, ProtocolVersion::V311, &mut burst);
    }
    let before = broker.census();
    publisher.send_bytes(&burst).await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    let after = broker.census();
    for _ in 0..BURST {
        assert_eq!(
            wild.recv_publish().await.topic.as_str(),
            topic,
            "one copy each"
        );
    }
    wild.expect_silence().await;
    // Each publish walks every prefix of every filter, root included, and
    // appends each filter's subscription: 2^15 - 1 nodes and 2^14; and
    // before that a try of the whole walk, cut short at a sixteenth of a
    // slice's 16,384 (`broker/index/walk.rs`).
    let per_publish = (1u64 << (LEVELS + 1)) - 1 + (1 << LEVELS);
    let tried = 16_384 / 16;
    let visited = after.subscriptions_visited - before.subscriptions_visited;
    assert_eq!(visited, BURST * (per_publish + tried));
    // Each walk is over the budget of a hold, so each publish takes a hold
    // of its own; in one hold the others waited for all 32 walks at once.
    let holds = after.lock_holds - before.lock_holds;
    assert!(
        holds >= BURST,
        "{holds} holds of the lock for {BURST} publishes of {per_publish} visits each"
    );
    broker.stop().await;
}

/// Row 1's shape: many deep filters, SUBSCRIBEs sent in one write. Each
/// SUBSCRIBE's 100 filters of 200 levels are 20,000 levels of work on the
/// index, over the budget of a hold, so each gets a hold of its own; in
/// one hold the others waited for the whole batch (320 ms for 64 of them).
#[tokio::test]
async fn a_burst_of_deep_subscribes_is_split_between_holds() {
    const SUBSCRIBES: u64 = 16;
    let broker = TestBroker::start(config()).await;
    let mut deep = Raw::connected(broker.addr, "deep").await;
    let mut burst = BytesMut::new();
    for i in 0..SUBSCRIBES {
        codec::encode(
            &raw::deep_subscribe(i as usize, 100, 200),
            ProtocolVersion::V311,
            &mut burst,
        );
    }
    let before = broker.census();
    deep.send_bytes(&burst).await;
    for _ in 0..SUBSCRIBES {
        assert!(matches!(deep.recv().await, Packet::SubAck(_)));
    }
    let holds = broker.census().lock_holds - before.lock_holds;
    assert!(
        holds >= SUBSCRIBES,
        "{holds} holds of the lock for {SUBSCRIBES} SUBSCRIBEs"
    );
    broker.stop().await;
}

/// One SUBSCRIBE of 2,000 filters of 200 levels, 400,000 levels of work on
/// the index: it is handled in slices, each a hold of its own, and answered
/// by one SUBACK with a code for each filter, in order. In one hold, one
/// SUBSCRIBE of 20,000 such filters held the others back 541 ms, and one of
/// 200,000 short ones 455 ms (measured over TCP against the release binary).
#[tokio::test]
async fn one_big_subscribe_is_split_between_holds_and_answered_once() {
    const FILTERS: usize = 2000;
    let broker = TestBroker::start(config()).await;
    let mut deep = Raw::connected(broker.addr, "deep").await;
    let mut subscribe = raw::deep_subscribe(0, FILTERS, 200);
    // One in a hundred refused: over `topic_levels_max`.
    if let Packet::Subscribe(s) = &mut subscribe {
        for (j, (filter, _)) in s.filters.iter_mut().enumerate().skip(99).step_by(100) {
            *filter = TopicFilter::new(&format!("{j}{}", "/l".repeat(200))).unwrap();
        }
    }
    let before = broker.census();
    deep.send(&subscribe).await;
    let Packet::SubAck(suback) = deep.recv().await else {
        panic!("expected the SUBACK");
    };
    let refused = |j: usize| j % 100 == 99;
    assert_eq!(suback.codes.len(), FILTERS);
    for (j, code) in suback.codes.iter().enumerate() {
        assert_eq!(code.is_error(), refused(j), "filter {j}: {code:?}");
    }
    deep.expect_silence().await;
    let after = broker.census();
    assert_eq!(after.subscriptions, FILTERS - FILTERS / 100);
    // 4,096 levels a slice (a few in the simulation's build), and a little
    // more a filter: about 100 slices.
    let holds = after.lock_holds - before.lock_holds;
    assert!(holds >= 24, "{holds} holds of the lock for one SUBSCRIBE");
    broker.stop().await;
}

/// A client with many deep filters leaves: its session ends at once, and
/// its filters are taken out of the index a slice at a time, each slice a
/// hold of its own, not all in one (135 to 220 ms, measured).
#[tokio::test]
async fn a_session_with_many_deep_filters_ends_in_slices() {
    const SUBSCRIBES: u64 = 10;
    let broker = TestBroker::start(config()).await;
    let mut deep = Raw::connected(broker.addr, "deep").await;
    for i in 0..SUBSCRIBES {
        deep.send(&raw::deep_subscribe(i as usize, 100, 200)).await;
        assert!(matches!(deep.recv().await, Packet::SubAck(_)));
    }
    let before = broker.census();
    assert_eq!(before.subscriptions, 1000);
    deep.send(&raw::disconnect()).await;
    deep.expect_closed().await;
    broker
        .wait_until("the filters taken out", |c| {
            c.subscriptions == 0 && c.subscriptions_ending == 0
        })
        .await;
    // 1,000 filters of 200 levels, 16,384 levels a slice: 13 slices.
    let holds = broker.census().lock_holds - before.lock_holds;
    assert!(holds >= 13, "{holds} holds of the lock to end the session");
    broker.stop().await;
}

/// Retained messages follow SUBACKs, also when a batch of SUBSCRIBEs is
/// split between holds by its work: the hold that ended with the last of
/// them once skipped the slice, and 10,240 of 16,384 filters stayed owed
/// for good (found with the census while profiling row 10).
#[tokio::test]
async fn retained_messages_follow_subscribes_split_between_holds() {
    let broker = TestBroker::start(config()).await;
    let mut publisher = Raw::connected(broker.addr, "publisher").await;
    let mut retained = raw::publish(&topic(), QoS::AtLeastOnce, 1, b"kept");
    if let Packet::Publish(p) = &mut retained {
        p.retain = true;
    }
    publisher.send(&retained).await;
    assert_eq!(publisher.recv().await, raw::puback(1));
    let mut wild = Raw::connected(broker.addr, "wild").await;
    // A retained message per filter that matches it [MQTT-3.3.1-6]: all of them.
    let filters = overlapping();
    let count = filters.len();
    let mut got = subscribe_all_reading(&mut wild, filters).await.len();
    while got < count {
        let publish = wild.recv_publish().await;
        assert_eq!(
            (publish.topic.as_str(), publish.retain),
            (topic().as_str(), true)
        );
        got += 1;
    }
    broker
        .wait_until("every filter's retained walk done", |c| {
            c.retained_owed == 0
        })
        .await;
    broker.stop().await;
}
