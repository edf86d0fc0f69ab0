//! A durable session's queue past the memory budget: its tail waits on
//! disk (here, a map standing in for the store) and comes back in order,
//! behind what was in memory and ahead of what came meanwhile.

use std::collections::BTreeMap;

use super::*;

fn budget_zero() -> Config {
    Config {
        inflight_messages_max: 2,
        queued_messages_max: 100,
        offline_memory_max_bytes: 0,
        ..Config::default()
    }
}

/// Session "sub" offline and persistent, subscribed to `t` at QoS 1, with
/// no room in memory for its queue; "pub" connected as connection 2.
fn offline_subscriber_and_publisher() -> Broker {
    let mut broker = Broker::new(budget_zero());
    broker.keep_changes();
    connect(&mut broker, 1, "sub", false);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    broker.connection_lost(ConnId(1), true);
    connect(&mut broker, 2, "pub", true);
    broker
}

/// The messages the store would hold after a commit of what changed.
fn commit(broker: &mut Broker, store: &mut BTreeMap<u64, Stored>) {
    for change in broker.take_changes() {
        if let Change::Message(_, seq, stored, _) = change {
            match stored {
                Some(stored) => store.insert(seq, stored),
                None => store.remove(&seq),
            };
        }
    }
}

/// What a read of the store gives from `from` on.
fn read(store: &BTreeMap<u64, Stored>, from: u64) -> Vec<(u64, Stored)> {
    store.range(from..).map(|(s, m)| (*s, m.clone())).collect()
}

/// "pub" publishes `count` messages to `t` at QoS 1, "0" onwards.
fn queue_messages(broker: &mut Broker, count: u16) {
    for n in 0..count {
        let payload = n.to_string();
        publish(
            broker,
            2,
            message("t", QoS::AtLeastOnce, Some(10 + n), &payload),
        );
    }
}

fn payloads(effects: &[Effect]) -> Vec<String> {
    deliveries(effects).into_iter().map(|d| d.3).collect()
}

#[test]
fn an_offline_queue_past_the_budget_waits_on_disk_and_comes_back_in_order() {
    let mut broker = offline_subscriber_and_publisher();
    let mut store = BTreeMap::new();
    queue_messages(&mut broker, 5);
    commit(&mut broker, &mut store);
    let stats = broker.stats();
    assert_eq!(
        (
            stats.queued,
            stats.queued_on_disk,
            stats.queued_memory_bytes
        ),
        (5, 5, 0)
    );
    assert_eq!(store.len(), 5, "each written with its body");
    assert!(
        broker.take_tail_reads().is_empty(),
        "offline: nothing to read"
    );
    broker.check().unwrap();

    let effects = connect(&mut broker, 3, "sub", false);
    assert!(payloads(&effects).is_empty(), "its queue is on disk");
    let reads = broker.take_tail_reads();
    assert_eq!(reads.len(), 1);
    // Online, behind its tail: this one waits behind the five.
    publish(
        &mut broker,
        2,
        message("t", QoS::AtLeastOnce, Some(20), "5"),
    );
    commit(&mut broker, &mut store);
    assert_eq!(broker.stats().queued_on_disk, 6);
    broker.check().unwrap();

    broker
        .tail_read(reads[0], Ok(read(&store, reads[0].from)))
        .unwrap();
    let mut got = payloads(&drain_effects(&mut broker));
    assert_eq!(broker.stats().queued_on_disk, 0);
    broker.check().unwrap();
    for packet_id in 1..=6 {
        broker.puback(ConnId(3), id(packet_id));
        got.extend(payloads(&drain_effects(&mut broker)));
    }
    assert_eq!(got, ["0", "1", "2", "3", "4", "5"]);
    assert_eq!(broker.stats().read_back, 6);
    assert_eq!(broker.stats().spilled, 6);
}

#[test]
fn a_read_for_a_session_that_ended_is_dropped() {
    let mut broker = offline_subscriber_and_publisher();
    let mut store = BTreeMap::new();
    publish(
        &mut broker,
        2,
        message("t", QoS::AtLeastOnce, Some(10), "0"),
    );
    commit(&mut broker, &mut store);
    connect(&mut broker, 3, "sub", false);
    let reads = broker.take_tail_reads();
    // A clean start ends the session, and its tail with it.
    connect(&mut broker, 4, "sub", true);
    assert_eq!(broker.stats().queued, 0);
    broker
        .tail_read(reads[0], Ok(read(&store, reads[0].from)))
        .unwrap();
    assert!(payloads(&drain_effects(&mut broker)).is_empty());
    assert_eq!(broker.stats().queued, 0);
    broker.check().unwrap();
}

/// The simulation holds a session's missing messages against the drops
/// counted for its client: a tail the store no longer holds is such drops.
#[cfg(feature = "sim")]
#[test]
fn a_tail_the_store_lost_is_counted_against_its_client() {
    let mut broker = offline_subscriber_and_publisher();
    queue_messages(&mut broker, 3);
    connect(&mut broker, 3, "sub", false);
    let reads = broker.take_tail_reads();
    assert!(broker.tail_read(reads[0], Ok(Vec::new())).is_err());
    assert_eq!(broker.stats().dropped.queue_full, 3);
    assert_eq!(broker.dropped_by_client().get("sub"), Some(&3));
    broker.check().unwrap();
}

/// A 5.0 client resumes its session with expiry 0: the session no longer
/// outlives the connection, its rows leave the store, and the tail on
/// disk is lost with them, counted against its client.
#[cfg(feature = "sim")]
#[test]
fn a_tail_a_session_no_longer_keeps_is_counted_against_its_client() {
    let mut broker = offline_subscriber_and_publisher();
    queue_messages(&mut broker, 2);
    assert_eq!(broker.stats().queued_on_disk, 2);
    let resume = Connect {
        version: ProtocolVersion::V5,
        clean_session: false,
        ..connect_packet("sub", None)
    };
    broker.connect(ConnId(3), resume);
    drain_effects(&mut broker);
    assert_eq!(broker.stats().queued_on_disk, 0);
    assert_eq!(broker.stats().dropped.queue_full, 2);
    assert_eq!(broker.dropped_by_client().get("sub"), Some(&2));
    broker.check().unwrap();
}
