//! A SUBSCRIBE or UNSUBSCRIBE of many filters handled in slices: each
//! slice's work within its bound, one SUBACK or UNSUBACK with every
//! filter's code in order once the last slice is done, and the retained
//! messages after the SUBACK.

use super::*;
use crate::broker::subscribe::SUBSCRIBE_WORK_PER_SLICE;

/// Levels of each filter of the big SUBSCRIBE.
const DEPTH: usize = 16;
/// Its filters: about 50 slices' worth (thousands in the simulation's build).
const FILTERS: usize = 10_000;

/// `FILTERS` filters of `DEPTH` levels; every thousandth is refused (more
/// levels than `topic_levels_max`), and the first and the last granted
/// match a retained message.
fn big_subscribe() -> Subscribe {
    let deep = vec!["d"; DEPTH - 2].join("/");
    let too_deep = vec!["d"; 201].join("/");
    let filters = (0..FILTERS)
        .map(|i| {
            let filter = match i % 1000 {
                999 => too_deep.clone(),
                _ => format!("{deep}/f/{i}"),
            };
            let filter = TopicFilter::new(&filter).unwrap();
            (filter, SubscriptionOptions::qos(QoS::AtLeastOnce))
        })
        .collect();
    Subscribe {
        packet_id: id(9),
        filters,
        properties: Default::default(),
    }
}

fn retained(topic: &str) -> Publish {
    Publish {
        retain: true,
        ..message(topic, QoS::AtMostOnce, None, topic)
    }
}

/// Subscribes with `big_subscribe` and resumes it as the runtime does, a
/// hold each, asking for retained messages after each hold as the
/// connection does, then for the rest of them: the effects of each hold,
/// or an error if a hold did more than its bound.
fn subscribe_in_slices(broker: &mut Broker, conn: u64) -> Result<Vec<Vec<Effect>>, String> {
    let before = broker.levels_indexed;
    broker.subscribe(ConnId(conn), big_subscribe()).unwrap();
    in_slices(broker, conn, before)
}

/// The rest of the connection's SUBSCRIBE or UNSUBSCRIBE begun in the
/// last hold, as `subscribe_in_slices` says; `indexed` is the work count
/// before that hold.
fn in_slices(broker: &mut Broker, conn: u64, mut indexed: u64) -> Result<Vec<Vec<Effect>>, String> {
    let most = SUBSCRIBE_WORK_PER_SLICE + DEPTH as u64 + 4;
    let mut holds = Vec::new();
    loop {
        broker.send_retained(ConnId(conn), usize::MAX);
        let work = broker.levels_indexed - indexed;
        indexed = broker.levels_indexed;
        if work > most {
            return Err(format!("hold {} indexed {work} levels", holds.len()));
        }
        holds.push(drain_effects(broker));
        if !broker.work_pending(ConnId(conn)) {
            break;
        }
        assert!(holds.len() < 100_000, "the SUBSCRIBE makes progress");
        broker.resume_work(ConnId(conn));
    }
    // The retained messages owed, a slice at a time.
    while broker.send_retained(ConnId(conn), usize::MAX) != Owing::Nothing {
        holds.push(drain_effects(broker));
    }
    holds.push(drain_effects(broker));
    Ok(holds)
}

/// What the big SUBSCRIBE's holds sent, in order: its SUBACK's codes, and
/// the retained messages' topics.
fn suback_then_retained(holds: &[Vec<Effect>]) -> Result<(Vec<ReasonCode>, Vec<String>), String> {
    let (mut codes, mut topics) = (None, Vec::new());
    for effect in holds.iter().flatten() {
        match effect {
            Effect::Send(_, Packet::SubAck(suback)) if codes.is_none() => {
                codes = Some(suback.codes.clone())
            }
            Effect::Send(_, Packet::SubAck(_)) => return Err("a second SUBACK".into()),
            Effect::Send(_, Packet::Publish(p)) if codes.is_none() => {
                return Err(format!("{} before the SUBACK", p.topic.as_str()))
            }
            Effect::Send(_, Packet::Publish(p)) => topics.push(p.topic.as_str().to_owned()),
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    Ok((codes.ok_or("no SUBACK")?, topics))
}

fn a_big_subscribe(config: Config) -> Result<(), String> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "pub", true);
    let deep = vec!["d"; DEPTH - 2].join("/");
    let first = format!("{deep}/f/0");
    let last = format!("{deep}/f/{}", FILTERS - 2);
    publish(&mut broker, 1, retained(&first));
    publish(&mut broker, 1, retained(&last));
    connect(&mut broker, 2, "wide", true);
    let holds = subscribe_in_slices(&mut broker, 2)?;
    let (codes, topics) = suback_then_retained(&holds)?;
    assert!(holds.len() >= 10, "in slices: {} holds", holds.len());
    let expected: Vec<ReasonCode> = (0..FILTERS)
        .map(|i| match i % 1000 {
            999 => ReasonCode::TOPIC_FILTER_INVALID,
            _ => ReasonCode::granted(QoS::AtLeastOnce),
        })
        .collect();
    assert!(codes == expected, "one code a filter, in order");
    assert_eq!(topics, [first, last]);
    let granted = FILTERS - FILTERS / 1000;
    assert_eq!(broker.stats().subscriptions, granted);
    assert_eq!(broker.levels_indexed, granted as u64 * DEPTH as u64);
    broker.check()
}

#[test]
fn a_big_subscribe_is_handled_a_slice_a_hold_and_answered_once() {
    a_big_subscribe(config()).unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn the_bound_per_hold_fails_with_the_subscribe_handled_whole() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::SubscribeUnbounded),
        ..config()
    };
    let error = a_big_subscribe(config).unwrap_err();
    assert_eq!(error, "hold 0 indexed 159840 levels");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn retained_messages_before_the_suback_fail_the_order() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::RetainedBeforeSubAck),
        ..config()
    };
    let error = a_big_subscribe(config).unwrap_err();
    assert!(error.ends_with("before the SUBACK"), "{error}");
}

/// The connection ends between slices: the filters granted so far stay
/// with its persistent session, the rest are not handled, nothing is sent,
/// and nothing of the SUBSCRIBE is kept.
#[test]
fn a_subscribe_cut_by_its_connections_end_keeps_what_it_granted() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "wide", false);
    broker.subscribe(ConnId(1), big_subscribe()).unwrap();
    broker.resume_work(ConnId(1));
    assert!(broker.work_pending(ConnId(1)));
    let granted = broker.stats().subscriptions;
    assert!(granted > 0 && granted < FILTERS / 2, "{granted}");
    broker.connection_lost(ConnId(1), false);
    assert!(!broker.work_pending(ConnId(1)));
    assert!(drain_effects(&mut broker)
        .iter()
        .all(|e| !matches!(e, Effect::Send(..))));
    assert_eq!(broker.stats().subscriptions, granted);
    broker.check().unwrap();
    // Resumed, the session has them.
    let effects = connect(&mut broker, 2, "wide", false);
    assert!(matches!(
        &effects[..],
        [Effect::Send(_, Packet::ConnAck(ack)), ..] if ack.session_present
    ));
}

/// `big_subscribe`'s filters, then an UNSUBSCRIBE of them all: in slices,
/// one UNSUBACK with a code for each in order (none existed for the
/// refused ones), and the index empty after it.
fn a_big_unsubscribe(config: Config) -> Result<(), String> {
    let mut broker = Broker::new(config);
    connect(&mut broker, 1, "wide", true);
    subscribe_whole(&mut broker, 1, big_subscribe());
    drain_effects(&mut broker);
    let filters: Vec<TopicFilter> = (big_subscribe().filters.into_iter())
        .map(|(f, _)| f)
        .collect();
    let unsubscribe = crate::codec::Unsubscribe {
        packet_id: id(10),
        filters,
        properties: Default::default(),
    };
    let before = broker.levels_indexed;
    broker.unsubscribe(ConnId(1), unsubscribe).unwrap();
    let holds = in_slices(&mut broker, 1, before)?;
    assert!(holds.len() >= 10, "in slices: {} holds", holds.len());
    let answers: Vec<&Effect> = holds.iter().flatten().collect();
    let [Effect::Send(_, Packet::UnsubAck(unsuback))] = &answers[..] else {
        return Err(format!("expected one UNSUBACK: {answers:?}"));
    };
    let expected: Vec<ReasonCode> = (0..FILTERS)
        .map(|i| match i % 1000 {
            999 => ReasonCode::NO_SUBSCRIPTION_EXISTED,
            _ => ReasonCode::SUCCESS,
        })
        .collect();
    assert!(unsuback.codes == expected, "one code a filter, in order");
    assert_eq!(broker.stats().subscriptions, 0);
    broker.check()
}

#[test]
fn a_big_unsubscribe_is_handled_a_slice_a_hold_and_answered_once() {
    a_big_unsubscribe(config()).unwrap();
}

#[cfg(feature = "planted-bugs")]
#[test]
fn the_bound_per_hold_fails_with_the_unsubscribe_handled_whole() {
    let config = Config {
        planted_bug: Some(crate::config::PlantedBug::SubscribeUnbounded),
        ..config()
    };
    let error = a_big_unsubscribe(config).unwrap_err();
    assert_eq!(error, "hold 0 indexed 159840 levels");
}
