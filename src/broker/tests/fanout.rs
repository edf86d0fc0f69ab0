//! A message routed in slices: each slice's work within its bound, every
//! subscriber's copy delivered once and in its publisher's order, and the
//! publisher answered only when the last slice is done.

use super::*;
use crate::broker::fanout::{SESSIONS_PER_SLICE, WALK_WORK_PER_SLICE};

/// Levels of `overlapping`'s filters.
const LEVELS: u32 = 14;

fn topic() -> String {
    let levels: Vec<String> = (0..LEVELS).map(|i| format!("l{i}")).collect();
    levels.join("/")
}

/// 2^LEVELS filters, `+` or the topic's level in each level: the topic
/// matches them all, and its walk is 2^(LEVELS+1) - 1 nodes and 2^LEVELS
/// subscriptions, three slices' worth.
fn subscribe_overlapping(broker: &mut Broker, conn: u64) {
    let filters = (0..1u32 << LEVELS)
        .map(|mask| {
            let levels: Vec<String> = (0..LEVELS)
                .map(|i| match mask >> i & 1 {
                    1 => "+".to_owned(),
                    _ => format!("l{i}"),
                })
                .collect();
            // One of them grants QoS 1: the copy goes at the highest.
            let qos = if mask == 5 {
                QoS::AtLeastOnce
            } else {
                QoS::AtMostOnce
            };
            (
                TopicFilter::new(&levels.join("/")).unwrap(),
                SubscriptionOptions::qos(qos),
            )
        })
        .collect();
    let subscribe = Subscribe {
        packet_id: id(1),
        filters,
        properties: Default::default(),
    };
    subscribe_whole(broker, conn, subscribe);
    drain_effects(broker);
}

/// Publishes from `conn`, then resumes its route as the runtime does, a
/// hold each, until it is done: the effects of each hold, and an error if
/// a hold's walk did more work than its bound, or sorted more matches.
fn publish_in_slices(
    broker: &mut Broker,
    conn: u64,
    publish: Publish,
) -> Result<Vec<Vec<Effect>>, String> {
    let mut holds = Vec::new();
    let mut visited = broker.subscriptions_visited();
    let mut sorted = broker.matches_sorted();
    broker.publish(ConnId(conn), publish).unwrap();
    loop {
        let work = broker.subscriptions_visited() - visited;
        visited = broker.subscriptions_visited();
        if work > WALK_WORK_PER_SLICE {
            return Err(format!("hold {} walked {work}", holds.len()));
        }
        let sort = broker.matches_sorted() - sorted;
        sorted = broker.matches_sorted();
        if sort > WALK_WORK_PER_SLICE {
            return Err(format!("hold {} sorted {sort}", holds.len()));
        }
        holds.push(drain_effects(broker));
        if !broker.route_pending(ConnId(conn)) {
            return Ok(holds);
        }
        assert!(holds.len() < 1000, "the route makes progress");
        broker.resume_route(ConnId(conn));
    }
}

fn pubacks(effects: &[Effect]) -> usize {
    (effects.iter())
        .filter(|e| matches!(e, Effect::Send(_, Packet::PubAck(_))))
        .count()
}

/// The planted bug's test runs the same check with the bug planted.
fn one_publish_over_overlapping_filters(config: Config) -> Result<(), String> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "wild", true);
    connect(&mut broker, 2, "pub", true);
    subscribe_overlapping(&mut broker, 1);
    let before = broker.subscriptions_visited();
    let first = publish_in_slices(
        &mut broker,
        2,
        message(&topic(), QoS::AtLeastOnce, Some(7), "first"),
    )?;
    let walk = (1u64 << (LEVELS + 1)) - 1 + (1 << LEVELS);
    // The whole walk, and a first try of it cut short at a sixteenth of a
    // slice (`index/walk.rs`).
    let visited = broker.subscriptions_visited() - before;
    let tried = WALK_WORK_PER_SLICE / 16;
    assert!(visited == walk + tried, "the whole walk: {visited}");
    assert!(first.len() >= 3, "{} holds for {walk} work", first.len());
    // Nothing before the last hold; then the copy, then the answer.
    for hold in &first[..first.len() - 1] {
        assert!(hold.is_empty(), "{hold:?}");
    }
    assert_eq!(
        first.last().unwrap(),
        &vec![
            Effect::Send(
                ConnId(1),
                Packet::Publish(Publish {
                    packet_id: Some(id(1)),
                    ..message(&topic(), QoS::AtLeastOnce, None, "first")
                })
            ),
            Effect::Send(ConnId(2), Packet::PubAck(Ack::success(id(7)))),
        ]
    );
    // The next one from the same publisher follows it, in slices too.
    let second = publish_in_slices(
        &mut broker,
        2,
        message(&topic(), QoS::AtMostOnce, None, "second"),
    )?;
    let got: Vec<_> = second.iter().flat_map(|h| deliveries(h)).collect();
    assert_eq!(
        got,
        vec![(1, QoS::AtMostOnce, None, "second".into(), false)]
    );
    broker.check().unwrap();
    Ok(())
}

#[test]
fn one_publish_over_overlapping_filters_is_walked_in_bounded_slices() {
    one_publish_over_overlapping_filters(config()).unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn the_bound_per_slice_fails_with_the_walk_done_whole() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::RouteWalkUnbounded),
        ..config()
    };
    let error = one_publish_over_overlapping_filters(config).unwrap_err();
    assert!(error.starts_with("hold 0 walked"), "{error}");
}

/// Two sessions' overlapping filters: 32,768 matches, found over several
/// slices. Each slice sorts what it found and the deliveries merge them:
/// one copy each, at the highest QoS granted. Sorted at the walk's end,
/// all of them were sorted in its last hold.
fn two_sessions_over_overlapping_filters(config: Config) -> Result<(), String> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "wild", true);
    connect(&mut broker, 2, "wilder", true);
    connect(&mut broker, 3, "pub", true);
    subscribe_overlapping(&mut broker, 1);
    subscribe_overlapping(&mut broker, 2);
    let before = broker.matches_sorted();
    let holds = publish_in_slices(
        &mut broker,
        3,
        message(&topic(), QoS::AtLeastOnce, Some(7), "m"),
    )?;
    assert_eq!(broker.matches_sorted() - before, 2 << LEVELS, "each once");
    let got: Vec<_> = holds.iter().flat_map(|h| deliveries(h)).collect();
    assert_eq!(
        got,
        vec![
            (1, QoS::AtLeastOnce, Some(1), "m".into(), false),
            (2, QoS::AtLeastOnce, Some(1), "m".into(), false),
        ]
    );
    assert_eq!(pubacks(holds.last().unwrap()), 1);
    broker.check().unwrap();
    Ok(())
}

#[test]
fn matches_found_in_slices_are_sorted_a_slice_at_a_time() {
    two_sessions_over_overlapping_filters(config()).unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn the_sort_bound_per_hold_fails_with_the_matches_sorted_whole() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::RouteSortedWhole),
        ..config()
    };
    let error = two_sessions_over_overlapping_filters(config).unwrap_err();
    assert!(error.contains("sorted 32768"), "{error}");
}

#[test]
fn a_publish_to_many_sessions_is_delivered_in_slices_of_sessions() {
    let mut broker = Broker::new(config());
    let sessions = 2 * SESSIONS_PER_SLICE as u64 + 5;
    for conn in 1..=sessions {
        connect(&mut broker, conn, &format!("s{conn}"), true);
        subscribe(&mut broker, conn, "fan/+", QoS::AtLeastOnce);
    }
    let publisher = sessions + 1;
    connect(&mut broker, publisher, "pub", true);
    let holds = publish_in_slices(
        &mut broker,
        publisher,
        message("fan/out", QoS::AtLeastOnce, Some(9), "m"),
    )
    .unwrap();
    assert_eq!(holds.len(), 3, "two full slices and the rest");
    let mut reached = Vec::new();
    for (i, hold) in holds.iter().enumerate() {
        let copies = deliveries(hold);
        assert!(
            copies.len() <= SESSIONS_PER_SLICE,
            "hold {i}: {}",
            copies.len()
        );
        reached.extend(copies.into_iter().map(|(conn, ..)| conn));
        let last = i + 1 == holds.len();
        assert_eq!(pubacks(hold), usize::from(last), "answered in the last");
    }
    assert_eq!(reached, (1..=sessions).collect::<Vec<_>>(), "each once");
    broker.check().unwrap();
}

#[test]
fn a_session_ended_before_its_slice_gets_nothing_and_the_rest_get_theirs() {
    let mut broker = Broker::new(config());
    let sessions = SESSIONS_PER_SLICE as u64 + 2;
    for conn in 1..=sessions {
        connect(&mut broker, conn, &format!("s{conn}"), true);
        subscribe(&mut broker, conn, "fan/+", QoS::AtMostOnce);
    }
    let publisher = sessions + 1;
    connect(&mut broker, publisher, "pub", true);
    broker
        .publish(
            ConnId(publisher),
            message("fan/out", QoS::AtMostOnce, None, "m"),
        )
        .unwrap();
    assert!(broker.route_pending(ConnId(publisher)));
    let first = drain_effects(&mut broker);
    assert_eq!(deliveries(&first).len(), SESSIONS_PER_SLICE);
    // The last session, not reached yet, ends.
    broker.connection_lost(ConnId(sessions), true);
    assert!(!broker.resume_route(ConnId(publisher)));
    let rest: Vec<u64> = deliveries(&drain_effects(&mut broker))
        .into_iter()
        .map(|(conn, ..)| conn)
        .collect();
    assert_eq!(rest, vec![sessions - 1]);
    broker.check().unwrap();
}

#[test]
fn a_will_follows_the_route_its_client_left_unfinished() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "wild", true);
    subscribe_overlapping(&mut broker, 1);
    subscribe(&mut broker, 1, "gone", QoS::AtMostOnce);
    let mut leaving = connect_packet("pub", Some(will("gone", Bytes::from("will"))));
    leaving.clean_session = true;
    broker.connect(ConnId(2), leaving);
    drain_effects(&mut broker);
    broker
        .publish(ConnId(2), message(&topic(), QoS::AtMostOnce, None, "last"))
        .unwrap();
    assert!(broker.route_pending(ConnId(2)));
    // Lost mid-route: its session ends, and the timers carry the route on.
    broker.connection_lost(ConnId(2), false);
    let mut got = deliveries(&drain_effects(&mut broker));
    let mut ticks = 0;
    while broker.next_timer() == Some(broker.now) {
        broker.tick();
        got.extend(deliveries(&drain_effects(&mut broker)));
        ticks += 1;
        assert!(ticks < 1000, "the route makes progress");
    }
    let payloads: Vec<String> = got.into_iter().map(|(_, _, _, p, _)| p).collect();
    assert_eq!(
        payloads,
        ["last", "will"],
        "the will after its client's last"
    );
    broker.check().unwrap();
}

/// A route started when no session was owed retained messages (a will
/// queued behind its client's unfinished route) reaches a subscription
/// made before it runs, still owed the topic's retained message: that
/// message comes first, then the will. Once, the route had not read the
/// retained message it found (nothing was owed when it started), marked
/// the topic as sent, and the subscriber never got it.
fn a_will_queued_behind_a_route(config: Config) -> Vec<(String, bool)> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "wild", true);
    subscribe_overlapping(&mut broker, 1);
    while broker.send_retained(ConnId(1), usize::MAX) != Owing::Nothing {}
    connect(&mut broker, 5, "keeper", true);
    let old = Publish {
        retain: true,
        ..message("w/t", QoS::AtMostOnce, None, "old")
    };
    publish(&mut broker, 5, old);
    let mut leaving = connect_packet("pub", Some(will("w/t", Bytes::from("will"))));
    leaving.clean_session = true;
    broker.connect(ConnId(2), leaving);
    drain_effects(&mut broker);
    assert_eq!(broker.stats().retained_owed, 0);
    broker
        .publish(ConnId(2), message(&topic(), QoS::AtMostOnce, None, "last"))
        .unwrap();
    assert!(broker.route_pending(ConnId(2)));
    broker.connection_lost(ConnId(2), false);
    // Subscribed before the will's route runs, owed "old" (no room yet).
    connect(&mut broker, 3, "late", true);
    let subscribe = Subscribe {
        packet_id: id(1),
        filters: vec![(
            TopicFilter::new("w/#").unwrap(),
            SubscriptionOptions::qos(QoS::AtMostOnce),
        )],
        properties: Default::default(),
    };
    subscribe_whole(&mut broker, 3, subscribe);
    assert_eq!(broker.send_retained(ConnId(3), 0), Owing::Blocked);
    let mut effects = drain_effects(&mut broker);
    let mut ticks = 0;
    while broker.next_timer() == Some(broker.now) {
        broker.tick();
        effects.extend(drain_effects(&mut broker));
        ticks += 1;
        assert!(ticks < 1000, "the routes make progress");
    }
    while broker.send_retained(ConnId(3), usize::MAX) != Owing::Nothing {}
    effects.extend(drain_effects(&mut broker));
    broker.check().unwrap();
    published_to(&effects, ConnId(3))
}

/// The payloads of the PUBLISH packets sent to `conn`, each with its
/// retain flag.
fn published_to(effects: &[Effect], conn: ConnId) -> Vec<(String, bool)> {
    (effects.iter())
        .filter_map(|e| match e {
            Effect::Send(c, Packet::Publish(p)) if *c == conn => {
                Some((String::from_utf8(p.payload.to_vec()).unwrap(), p.retain))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_subscription_owed_a_retained_message_gets_it_before_a_will_queued_behind_a_route() {
    let got = a_will_queued_behind_a_route(config());
    assert_eq!(got, [("old".to_owned(), true), ("will".to_owned(), false)]);
}

/// A subscription made while a retained message's route is in slices,
/// and found by the rest of its walk, is owed the retained message of
/// its own time, which that route stored, not the one the route
/// replaced (found while looking into `partition_heal` seed 110267,
/// which was the check's fault).
fn subscribed_during_a_retained_route(config: Config) -> Vec<(String, bool)> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "wild", true);
    connect(&mut broker, 2, "pub", true);
    connect(&mut broker, 3, "late", true);
    subscribe_overlapping(&mut broker, 1);
    let retained = |payload| Publish {
        retain: true,
        ..message(&topic(), QoS::AtMostOnce, None, payload)
    };
    publish_in_slices(&mut broker, 2, retained("old")).unwrap();
    broker.publish(ConnId(2), retained("new")).unwrap();
    drain_effects(&mut broker);
    assert!(broker.route_pending(ConnId(2)), "a route in slices");
    // A filter the rest of the walk reaches (`#` and the topic's own are
    // behind it by now): the route's copy comes to it live.
    subscribe_whole(
        &mut broker,
        3,
        Subscribe {
            packet_id: id(1),
            filters: vec![(
                TopicFilter::new("+/#").unwrap(),
                SubscriptionOptions::qos(QoS::AtMostOnce),
            )],
            properties: Default::default(),
        },
    );
    // No room yet: the retained message is owed.
    assert_eq!(broker.send_retained(ConnId(3), 0), Owing::Blocked);
    let mut effects = drain_effects(&mut broker);
    while broker.route_pending(ConnId(2)) {
        broker.resume_route(ConnId(2));
        effects.extend(drain_effects(&mut broker));
    }
    assert_eq!(broker.send_retained(ConnId(3), usize::MAX), Owing::Nothing);
    effects.extend(drain_effects(&mut broker));
    broker.check().unwrap();
    published_to(&effects, ConnId(3))
}

#[test]
fn a_subscription_made_during_a_retained_route_gets_the_message_stored_then() {
    let got = subscribed_during_a_retained_route(config());
    let want = [("new".to_owned(), true), ("new".to_owned(), false)];
    assert_eq!(got, want);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_later_subscription_settled_with_the_replaced_message_gets_a_stale_one() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::LaterOwedGetPrevious),
        ..config()
    };
    let got = subscribed_during_a_retained_route(config);
    let want = [("old".to_owned(), true), ("new".to_owned(), false)];
    assert_eq!(got, want);
}
