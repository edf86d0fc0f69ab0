//! An ended session's many filters leave the index and their groups in
//! slices, the first in the hold that ends it, and nothing is routed to
//! them meanwhile, shared or not.

use super::*;
use crate::broker::reaping::LEVELS_PER_SLICE;

/// Subscribes `conn` to `filters` in SUBSCRIBEs of 4,096 filters each.
fn subscribe_all(broker: &mut Broker, conn: u64, filters: Vec<String>, qos: QoS) {
    for chunk in filters.chunks(4096) {
        let subscribe = Subscribe {
            packet_id: id(1),
            filters: (chunk.iter())
                .map(|f| (TopicFilter::new(f).unwrap(), SubscriptionOptions::qos(qos)))
                .collect(),
            properties: Default::default(),
        };
        subscribe_whole(broker, conn, subscribe);
        drain_effects(broker);
    }
}

#[test]
fn a_big_sessions_filters_leave_in_slices_and_route_nothing_meanwhile() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "deep", true);
    connect(&mut broker, 2, "pub", true);
    // 200 filters of 200 levels: 40,000 levels, over two slices.
    let deep = |i: usize| format!("{i}{}", "/l".repeat(199));
    subscribe_all(
        &mut broker,
        1,
        (0..200).map(deep).collect(),
        QoS::AtMostOnce,
    );
    broker.connection_lost(ConnId(1), true);
    drain_effects(&mut broker);
    assert_eq!(broker.stats().subscriptions, 0);
    // 82 of them (16,400 levels) taken out as the session ended.
    assert_eq!(broker.stats().subscriptions_ending, 118);
    // The last of its filters to be taken out (the first in order).
    let routed = publish(
        &mut broker,
        2,
        message(&deep(0), QoS::AtMostOnce, None, "x"),
    );
    assert!(deliveries(&routed).is_empty(), "{routed:?}");
    assert!(broker.reap(), "one slice is not all of it");
    assert!(!broker.reap());
    assert_eq!(broker.stats().subscriptions_ending, 0);
    assert_eq!(broker.index.len(), 0);
    broker.check().unwrap();
}

/// 32,768 shared filters of 4 levels and 32,768 others of 2: 196,608
/// levels, twelve slices' worth. The hold that ends the session and each
/// slice after it take out a slice's worth, counted as the work it is,
/// shared and not alike. The planted bug's test runs the same check with
/// the bug planted.
fn a_session_of_65536_filters_ending(config: Config) -> Result<(), String> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "big", true);
    let shared = (0..32_768).map(|i| format!("$share/g/s/{i}"));
    let unshared = (0..32_768).map(|i| format!("u/{i}"));
    subscribe_all(
        &mut broker,
        1,
        shared.chain(unshared).collect(),
        QoS::AtMostOnce,
    );
    assert_eq!(broker.stats().subscriptions, 65_536);
    // At most one filter past the bound: the slice stops after it.
    let bound = LEVELS_PER_SLICE + 4;
    let mut work = broker.index_work();
    broker.connection_lost(ConnId(1), true);
    drain_effects(&mut broker);
    let mut holds = vec![broker.index_work() - work];
    if holds[0] > bound {
        return Err(format!("the session's end took {} levels", holds[0]));
    }
    // Its shared filters are taken out last, by `reap`.
    if broker.shared.members() != 32_768 {
        return Err(format!(
            "{} members left in the groups as the session ended",
            broker.shared.members()
        ));
    }
    assert_eq!(broker.stats().subscriptions, 0);
    broker.check()?;
    loop {
        work = broker.index_work();
        let more = broker.reap();
        holds.push(broker.index_work() - work);
        if *holds.last().unwrap() > bound {
            return Err(format!("slice {} took {holds:?} levels", holds.len()));
        }
        if !more {
            break;
        }
    }
    // The unshared ones' 65,536 levels in 4 holds, then the shared ones'
    // 131,072, each weighed thrice (`SHARED_WEIGHT`), in 24.
    let total: u64 = holds.iter().sum();
    if total != 196_608 || holds.len() != 28 {
        return Err(format!("levels counted in each hold: {holds:?}"));
    }
    assert_eq!(broker.stats().subscriptions_ending, 0);
    assert!(broker.shared.is_empty());
    assert_eq!(broker.index.len(), 0);
    broker.check()
}

#[test]
fn a_big_sessions_end_does_a_slices_work_in_each_hold() {
    a_session_of_65536_filters_ending(config()).unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn the_bound_per_hold_fails_with_the_session_ended_whole() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::SessionEndUnbounded),
        ..config()
    };
    let error = a_session_of_65536_filters_ending(config).unwrap_err();
    assert_eq!(error, "the session's end took 196608 levels");
}

/// A session in two groups ends with more filters than a slice, so its
/// memberships stay until `reap`: its unacknowledged messages go to the
/// other member of `g`, and so do new ones; `h`, with no other member,
/// sends none. With the bug planted the group chooses the ended session,
/// which the broker no longer has, and panics.
fn a_shared_group_with_an_ended_member(config: Config) {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "big", true);
    connect(&mut broker, 2, "live", true);
    connect(&mut broker, 3, "pub", true);
    // Taken out last: `$` comes before the letters.
    let mut filters = vec!["$share/g/s".to_owned(), "$share/h/t".to_owned()];
    filters.extend((0..20_000).map(|i| format!("x/{i}")));
    subscribe_all(&mut broker, 1, filters, QoS::AtLeastOnce);
    subscribe(&mut broker, 2, "$share/g/s", QoS::AtLeastOnce);
    // In turn, two for each member, none acknowledged: both windows full.
    for n in 1..=4 {
        publish(&mut broker, 3, message("s", QoS::AtLeastOnce, Some(n), "q"));
    }
    assert_eq!(broker.stats().inflight, 4);
    broker.connection_lost(ConnId(1), true);
    drain_effects(&mut broker);
    assert_eq!(broker.shared.members(), 3, "still in `g` and `h`");
    // `big`'s two wait in `live`'s queue.
    let stats = broker.stats();
    assert_eq!((stats.inflight, stats.queued), (2, 2));
    assert_eq!(stats.dropped.shared_undeliverable, 0);
    for n in 0..4 {
        let routed = publish(&mut broker, 3, message("s", QoS::AtMostOnce, None, "p"));
        let to = deliveries(&routed);
        assert_eq!(to, [(2, QoS::AtMostOnce, None, "p".into(), false)], "{n}");
    }
    let routed = publish(&mut broker, 3, message("t", QoS::AtMostOnce, None, "p"));
    assert!(deliveries(&routed).is_empty(), "{routed:?}");
    broker.check().unwrap();
    while broker.reap() {}
    assert_eq!(broker.shared.members(), 1);
    broker.check().unwrap();
}

#[test]
fn a_shared_group_sends_to_its_live_member_while_another_is_reaped() {
    a_shared_group_with_an_ended_member(config());
}

#[cfg(feature = "planted-bugs")]
#[test]
#[should_panic(expected = "no entry found for key")]
fn a_shared_group_that_chooses_an_ended_member_panics() {
    a_shared_group_with_an_ended_member(Config {
        planted_bug: Some(crate::config::PlantedBug::SharedPicksReaped),
        ..config()
    });
}
