//! The invariants of the spec's corners that `sim/src/corners.rs` visits:
//! clean starts, assigned client ids, `$SYS`, the retain flag of what is forwarded (Retain As
//! Published), Retain Handling, No Local, and retained wills.

use std::collections::BTreeMap;
use std::time::Duration;

use tern::codec::RetainHandling;

use super::model::{Model, Received, Subscription};
use super::{healthy_window, Loss, DELIVERY_WINDOW};
use crate::history::{Ending, MessageId};

/// What is wrong, and what is missing (a retained will that a later
/// subscriber never got).
pub fn all(model: &Model, store_max: usize) -> (Vec<String>, Vec<Loss>) {
    let mut problems = clean_starts(model);
    problems.extend(sys_from_clients(model));
    problems.extend(retain_flags(model));
    problems.extend(retain_handling(model));
    problems.extend(assigned_ids(model));
    let full_from = super::retained::store_full_from(model, store_max);
    (problems, retained_wills(model, full_from))
}

/// A CONNACK to a clean CONNECT says no session is present [MQTT-3.2.2-1].
fn clean_starts(model: &Model) -> Vec<String> {
    model
        .conns
        .iter()
        .filter(|(_, c)| c.clean && c.session_present)
        .map(|(key, c)| {
            format!(
                "{key:?} connected clean at {:?}, yet its CONNACK said session present",
                c.start
            )
        })
        .collect()
}

/// A CONNECT with an empty client id gets one of the broker's choosing,
/// which a 5.0 CONNACK names [MQTT-3.2.2-16 of 5.0] and which is unique:
/// no other connection live when it was given holds it [MQTT-3.1.3-6].
/// 3.1.1 allows it only with a clean session [MQTT-3.1.3-8].
fn assigned_ids(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, assigned) in &model.assigned {
        let conn = &model.conns[key];
        let Some(id) = assigned else {
            if conn.v5 {
                problems.push(format!(
                    "{key:?} connected with an empty client id at {:?}, and its CONNACK assigned none",
                    conn.start
                ));
            } else if !conn.clean {
                problems.push(format!(
                    "{key:?} connected with an empty client id and no clean session at {:?}; it should have been refused",
                    conn.start
                ));
            }
            continue;
        };
        // Live at the broker when the CONNECT went out: a restart since
        // ended it there, whatever its client has heard yet.
        let sent = model.client_ids[key].1;
        let holder = model.client_ids.iter().find(|(other, (other_id, _))| {
            *other != key
                && other_id == id
                && model.conns.get(*other).is_some_and(|o| {
                    o.start <= sent
                        && o.end_at(model.run_end) > sent
                        && !model.restarted_during(o, sent)
                })
        });
        if let Some((other, _)) = holder {
            problems.push(format!(
                "{key:?} was assigned client id {id} for its CONNECT at {sent:?}, which {other:?} held then"
            ));
        }
    }
    problems
}

/// `$SYS` is the broker's: what a client publishes there reaches nobody.
fn sys_from_clients(model: &Model) -> Vec<String> {
    model
        .received
        .iter()
        .filter(|r| is_sys(&r.topic) && MessageId::parse(r.payload.as_bytes()).is_some())
        .map(|r| {
            format!(
                "{:?} received {} on {} at {:?}: a client's message under $SYS",
                r.conn, r.payload, r.topic, r.at
            )
        })
        .collect()
}

pub(crate) fn is_sys(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}

/// Whether `publisher` and the receiver of `r` share a client id: No Local
/// keeps such a message from a subscription that asks for it.
pub(crate) fn same_client_id(
    model: &Model,
    publisher: &(String, u32),
    receiver: &(String, u32),
) -> bool {
    let id = |key| model.client_ids.get(key).map(|(id, _)| id);
    id(publisher).is_some() && id(publisher) == id(receiver)
}

/// The subscriptions of `r`'s session that may have routed it: made before
/// it arrived, not ended before `from`, matching its topic.
fn covering<'a>(model: &'a Model, r: &'a Received, from: Duration) -> Vec<&'a Subscription> {
    let Some(conn) = model.conns.get(&r.conn) else {
        return Vec::new();
    };
    model
        .subscriptions_of(conn.session)
        .filter(|s| {
            s.sent_at <= r.at
                && (s.acked_at.is_none() || s.granted.is_some())
                && s.end >= from
                && model.filter_matches(&s.filter, &r.topic)
        })
        .collect()
}

/// A message forwarded to a subscription that existed when it was
/// published goes with retain cleared, unless a subscription asked for
/// Retain As Published, and then with its publisher's flag
/// [MQTT-3.3.1-9, MQTT-3.3.1-12 and -13 of 5.0]. Retained messages sent
/// for a new subscription are flagged retained, so a subscription whose
/// SUBACK came after the publish excuses a set flag.
fn retain_flags(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &model.received {
        let Some(id) = MessageId::parse(r.payload.as_bytes()) else {
            continue;
        };
        let Some(sent) = model.published.get(&id) else {
            continue;
        };
        let subs = covering(model, r, sent.sent_at);
        if subs.is_empty() {
            continue;
        }
        let as_published = subs
            .iter()
            .filter(|s| s.options.retain_as_published)
            .count();
        let maybe_retained_delivery = sent.retain
            && subs
                .iter()
                .any(|s| s.acked_at.is_none_or(|a| a >= sent.sent_at));
        let wrong = if r.retain {
            !sent.retain || (as_published == 0 && !maybe_retained_delivery)
        } else {
            sent.retain && as_published == subs.len()
        };
        if wrong {
            problems.push(format!(
                "{:?} received {id:?} on {} at {:?} with retain {}; it was published with retain {}, \
                 and {as_published} of the {} subscriptions covering it ask for Retain As Published",
                r.conn,
                r.topic,
                r.at,
                r.retain,
                sent.retain,
                subs.len()
            ));
        }
    }
    problems
}

/// Whether `sub` asks for no retained messages: Retain Handling 2, or 1
/// for a filter its session held already [MQTT-3.3.1-10, -11 of 5.0].
pub(crate) fn refuses_retained(model: &Model, sub: &Subscription) -> bool {
    match sub.options.retain_handling {
        RetainHandling::OnSubscribe => false,
        RetainHandling::Never => true,
        RetainHandling::OnNewSubscription => model.subscriptions_of(sub.session).any(|old| {
            !std::ptr::eq(old, sub)
                && old.filter == sub.filter
                && old.granted.is_some()
                && old.acked_at.is_some_and(|a| a < sub.sent_at)
                && old.end >= sub.sent_at
        }),
    }
}

/// A subscription that refuses retained messages gets none: nothing
/// flagged retained arrives for its filter between its SUBSCRIBE and the
/// next, that another subscription of the session could explain.
fn retain_handling(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    let mut received_by_session: BTreeMap<usize, Vec<&Received>> = BTreeMap::new();
    for r in model.received.iter().filter(|r| r.retain) {
        if let Some(conn) = model.conns.get(&r.conn) {
            received_by_session.entry(conn.session).or_default().push(r);
        }
    }
    for sub in &model.subscriptions {
        if !refuses_retained(model, sub) || sub.granted.is_none() {
            continue;
        }
        let Some(acked) = sub.acked_at else { continue };
        let window_end = model
            .subscriptions_of(sub.session)
            .filter(|s| s.sent_at > sub.sent_at)
            .map(|s| s.sent_at)
            .min()
            .unwrap_or(Duration::MAX)
            .min(acked + DELIVERY_WINDOW);
        for r in received_by_session.get(&sub.session).into_iter().flatten() {
            if r.at < sub.sent_at
                || r.at > window_end
                || !model.filter_matches(&sub.filter, &r.topic)
            {
                continue;
            }
            let explained = model.subscriptions_of(sub.session).any(|other| {
                !std::ptr::eq(other, sub)
                    && other.sent_at <= r.at
                    && model.filter_matches(&other.filter, &r.topic)
                    && (other.options.retain_as_published || !refuses_retained(model, other))
            });
            if !explained {
                problems.push(format!(
                    "{:?} received {:?} on {} at {:?} flagged retained, after a SUBSCRIBE to {} at {:?} with Retain Handling {:?}",
                    r.conn, r.payload, r.topic, r.at, sub.filter, sub.sent_at, sub.options.retain_handling
                ));
            }
        }
    }
    problems
}

/// A will published with retain is retained: a subscription made after it
/// was published gets it, flagged retained [MQTT-3.1.2-17]. Checked for a
/// connection that dropped (the broker sees it at once) with no will
/// delay, on a topic that nothing else retains (`corners::retained_will_topic`),
/// while the retained store cannot have been full (from `full_from` on, a
/// new topic may be refused).
fn retained_wills(model: &Model, full_from: Duration) -> Vec<Loss> {
    let mut missing = Vec::new();
    for (key, conn) in &model.conns {
        let Some((topic, _, true)) = &conn.will else {
            continue;
        };
        if *topic != crate::corners::retained_will_topic(&key.0) || model.will_delay(key) > 0 {
            continue;
        }
        let Some((ended, Ending::Dropped)) = conn.end else {
            continue;
        };
        if model.taken_over(key, ended) || conn.held || ended >= full_from {
            continue;
        }
        // Latency and a hold of the dropping client's link, at most.
        let published_by = ended + Duration::from_secs(1);
        let payload = format!("will:{}:{}", key.0, key.1);
        for sub in &model.subscriptions {
            let (Some(acked), Some(_)) = (sub.acked_at, sub.granted) else {
                continue;
            };
            if sub.sent_at < published_by
                || sub.is_shared()
                || refuses_retained(model, sub)
                || !model.filter_matches(&sub.filter, topic)
                || !model.may_read(sub.session, topic)
                || model.restarted_during(conn, acked)
            {
                continue;
            }
            let Some(start) = healthy_window(model, sub.session, acked) else {
                continue;
            };
            if sub.end < start + DELIVERY_WINDOW {
                continue;
            }
            let got = model.received.iter().any(|r| {
                r.retain
                    && r.payload == payload
                    && r.at >= sub.sent_at
                    && model
                        .conns
                        .get(&r.conn)
                        .is_some_and(|c| c.session == sub.session)
            });
            if !got {
                missing.push(Loss::of(
                    sub.session,
                    format!(
                        "{key:?} dropped at {ended:?} with a retained will on {topic}, but {} subscribed to {} at {:?} and never got it",
                        model.sessions[sub.session].0, sub.filter, sub.sent_at
                    ),
                ));
            }
        }
    }
    missing
}
