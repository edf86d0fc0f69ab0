//! The invariants of MQTT 5.0's features: Receive Maximum, Message Expiry,
//! Subscription Identifiers, shared subscriptions, Will Delay and Session
//! Expiry. Each needs a margin for what the harness cannot see exactly
//! (latency, ticks of the broker's timer); each margin is named.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tern::codec::QoS;

use super::model::{Model, Received, Sent, Subscription};
use super::DELIVERY_WINDOW;
use crate::history::{Ending, MessageId};
use crate::workload::EXPIRY_OUTLIVES_RUN;

/// Latency both ways and the broker's timer tick: how far the broker's view
/// of a moment can be from the client's.
const MARGIN: Duration = Duration::from_millis(500);

/// The longest a broker may take to notice a client that died silently:
/// 1.5 times the longest keepalive of the workloads, 5 s.
const KEEPALIVE_MAX: Duration = Duration::from_millis(7_500);

/// What is wrong, and what is missing (which, with small queues, may be a
/// counted drop).
pub fn all(model: &Model) -> (Vec<String>, Vec<String>) {
    let mut problems = model.violations.clone();
    problems.extend(message_expiry(model));
    problems.extend(subscription_ids(model));
    let (wrong, missing) = shared_groups(model);
    problems.extend(wrong);
    problems.extend(will_delay(model));
    problems.extend(session_expiry(model));
    (problems, missing)
}

/// Nothing is delivered after its Message Expiry Interval, counted from
/// when the broker had it (at the latest, the publisher's acknowledgement),
/// and a 5.0 receiver is told the time it has left, never more than given.
/// A resend (DUP) of a PUBLISH already sent is exempt: its delivery began
/// in time [MQTT-4.3.3-7 of 5.0].
fn message_expiry(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &model.received {
        let Some(id) = MessageId::parse(r.payload.as_bytes()) else {
            continue;
        };
        let Some(sent) = model.published.get(&id) else {
            continue;
        };
        let Some(expiry) = sent.expiry else { continue };
        let conn = &model.conns[&r.conn];
        if conn.v5 && r.expiry.is_none_or(|left| left > expiry) {
            problems.push(format!(
                "{:?} received {id:?} with {:?} s to live; it was published with {expiry} s",
                r.conn, r.expiry
            ));
        }
        // A receiver that reads late, or whose link was held, can find an
        // expired message in its socket that the broker sent in time.
        let Some(acked) = sent.acked_at else { continue };
        if r.dup || conn.held || conn.healthy_until(model.run_end) < r.at {
            continue;
        }
        let expired = model.after_broker(acked, Duration::from_secs(u64::from(expiry))) + MARGIN;
        if r.at > expired {
            problems.push(format!(
                "{:?} received {id:?} at {:?}, after it expired ({expiry} s from its acknowledgement at {acked:?})",
                r.conn, r.at
            ));
        }
    }
    problems
}

/// Each Subscription Identifier a delivery carries is that of a
/// subscription of the receiving session that matches the topic.
fn subscription_ids(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &model.received {
        let session = model.conns[&r.conn].session;
        for id in &r.sub_ids {
            let known = model
                .subscriptions_of(session)
                .any(|s| s.sub_id == Some(*id) && model.filter_matches(&s.filter, &r.topic));
            if !known {
                problems.push(format!(
                    "{:?} received {:?} on {} with subscription id {id}, which no matching subscription of its session has",
                    r.conn, r.payload, r.topic
                ));
            }
        }
    }
    problems
}

/// A shared subscription delivers each message to one member of its group;
/// another member gets it only after the first one's session has ended
/// (its unacknowledged messages move on). While every member is healthy,
/// an acknowledged QoS 1/2 message reaches one of them.
fn shared_groups(model: &Model) -> (Vec<String>, Vec<String>) {
    let mut wrong = Vec::new();
    // Per group and message, each session's first receipt through it.
    let mut receipts: BTreeMap<(&str, &str), BTreeMap<usize, &Received>> = BTreeMap::new();
    for r in model
        .received
        .iter()
        .filter(|r| !r.retain && !r.payload.is_empty())
    {
        if let Some(group) = model.shared_group_of(r) {
            let session = model.conns[&r.conn].session;
            receipts
                .entry((group, r.payload.as_str()))
                .or_default()
                .entry(session)
                .or_insert(r);
        }
    }
    for ((group, payload), by_session) in &receipts {
        // A publisher's resend is routed again: a new pick of a member.
        let resent = MessageId::parse(payload.as_bytes())
            .and_then(|id| model.published.get(&id))
            .is_some_and(|sent| sent.resent);
        if resent {
            continue;
        }
        // Whether the session that received `r` may have ended by `at`.
        // The broker ends a session before its client hears of it, and a
        // silent client's any time after it went silent (what it reads
        // then, the broker sent before); a held link's too, which the
        // broker hears nothing from (seed 9200391 of partition_heal: c23's
        // client put its PUBACK off by 224 ms, its link was held before the
        // PUBACK arrived, keepalive ended its session of expiry 0, and the
        // unacknowledged message went on to another member, as it should).
        let gone_by = |r: &Received, at: Duration| {
            let holder = &model.conns[&r.conn];
            let silent = match (holder.silent_from, model.held_from(&r.conn)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let end = match (holder.end, silent) {
                (Some((end, _)), Some(silent)) => Some(end.min(silent)),
                (Some((end, _)), None) => Some(end),
                (None, silent) => silent,
            };
            end.is_some_and(|end| end <= at + MARGIN)
                && model.session_expiry(holder.session) < EXPIRY_OUTLIVES_RUN
        };
        let mut firsts: Vec<&&Received> = by_session.values().collect();
        firsts.sort_by_key(|r| r.at);
        for pair in firsts.windows(2) {
            let (earlier, later) = (pair[0], pair[1]);
            // Either order: a client that reads late (paused, hung) sees
            // a message long after the broker sent it.
            if !gone_by(earlier, later.at) && !gone_by(later, earlier.at) {
                wrong.push(format!(
                    "{payload} reached two members of {group} whose sessions both lived on: {:?} at {:?} and {:?} at {:?}",
                    earlier.conn, earlier.at, later.conn, later.at
                ));
            }
        }
    }
    let mut missing = Vec::new();
    let groups: BTreeSet<&str> = model
        .subscriptions
        .iter()
        .filter(|s| s.is_shared())
        .map(|s| s.filter.as_str())
        .collect();
    for group in groups {
        let members: Vec<_> = model
            .subscriptions
            .iter()
            .filter(|s| s.filter.as_str() == group)
            .collect();
        for (id, sent) in &model.published {
            let Some(acked) = sent.acked_at else { continue };
            if sent.empty || sent.qos == QoS::AtMostOnce || sent.expiry.is_some() {
                continue;
            }
            if !model.filter_matches(&members[0].filter, &sent.topic) {
                continue;
            }
            let deadline = acked + DELIVERY_WINDOW;
            if model.restart_between(sent.sent_at, deadline) {
                continue;
            }
            // The broker picks among the members that may read it.
            let members: Vec<&Subscription> = members
                .iter()
                .copied()
                .filter(|s| model.may_read(s.session, &sent.topic))
                .collect();
            if members.is_empty() || !one_member_owed(model, &members, sent, deadline) {
                continue;
            }
            let got = receipts.contains_key(&(group, id.payload().as_str()));
            if !got {
                missing.push(format!(
                    "{id:?} ({} at {:?}) was acknowledged at {acked:?} but reached no member of {group}",
                    sent.topic, sent.qos
                ));
            }
        }
    }
    (wrong, missing)
}

/// Whether an acknowledged message must have reached one member of a group
/// by `deadline`: some member was settled in it and healthy throughout, and
/// no member the broker may have picked was impaired meanwhile.
fn one_member_owed(
    model: &Model,
    members: &[&Subscription],
    sent: &Sent,
    deadline: Duration,
) -> bool {
    // Members the broker may have chosen: subscribed at some point
    // between the publish and the deadline. A member whose client
    // died silently is one until keepalive finds it, after the
    // end the history records.
    let candidates: Vec<_> = members
        .iter()
        .filter(|s| s.sent_at <= deadline && s.end.saturating_add(KEEPALIVE_MAX) >= sent.sent_at)
        .collect();
    // A member online and healthy throughout, so that the broker,
    // which prefers online members, has one to choose.
    let settled = candidates.iter().any(|s| {
        s.granted.is_some_and(|g| g != QoS::AtMostOnce)
            && s.acked_at.is_some_and(|a| a < sent.sent_at)
            && s.end >= deadline
            && super::healthy_window(model, s.session, sent.sent_at)
                .is_some_and(|start| start <= sent.sent_at)
    });
    // The broker prefers a member it thinks online, which a client
    // that died silently still is until keepalive finds it.
    let all_healthy = candidates.iter().all(|s| {
        model.sessions[s.session].1.iter().all(|key| {
            let c = &model.conns[key];
            let seen_until = c.end_at(model.run_end) + KEEPALIVE_MAX;
            let overlaps = c.start <= deadline && seen_until >= sent.sent_at;
            !overlaps || (!c.held && c.healthy_until(model.run_end) >= deadline)
        })
    });
    settled && all_healthy
}

/// A will waits out its Will Delay Interval (or the session's expiry, if
/// sooner) after its connection ends, and is not sent at all if the client
/// resumed its session before then.
fn will_delay(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    let mut wills: BTreeMap<(String, u32), Vec<&Received>> = BTreeMap::new();
    for r in &model.received {
        if let Some(key) = super::will_of(&r.payload) {
            wills.entry(key).or_default().push(r);
        }
    }
    for (key, received) in &wills {
        let Some(conn) = model.conns.get(key) else {
            continue;
        };
        let delay = Duration::from_secs(u64::from(model.will_delay(key)));
        let Some((ended, how)) = conn.end else {
            continue;
        };
        // A takeover ends a connection at the broker before its client
        // hears of it; a held link hides when it ended.
        // A client that was not reading hears late that the broker closed.
        let heard_late = how == Ending::ClosedByBroker && conn.impaired_from.is_some();
        if delay.is_zero()
            || conn.held
            || heard_late
            || model.taken_over(key, ended)
            || how == Ending::Disconnect
        {
            continue;
        }
        // The delay runs on the broker's clock, which a jump puts ahead.
        let mut due = model.after_broker(ended, delay);
        // A client that stopped reading (or sending) may have been ended by
        // the broker long before it crashed: a full outbox stops the
        // broker's reads, so its pings go unread and keepalive ends it.
        // The last ping read came at most half a keepalive before the
        // stop, so that end is at least a keepalive after it
        // (slow_subscriber seed 9500097: c17, keepalive 1 s, paused at
        // 2.88 s and hung at 7.04 s; the broker closed it at 8.07 s and its
        // will came at 9.08 s; it crashed at 13.89 s).
        if let (Some(stopped), true) = (conn.impaired_from, conn.keep_alive > 0) {
            let keep_alive = Duration::from_secs(u64::from(conn.keep_alive));
            due = due.min(model.after_broker(stopped, keep_alive + delay));
        }
        if let Some(r) = received.iter().find(|r| !r.retain && r.at + MARGIN < due) {
            problems.push(format!(
                "{key:?} ended at {ended:?} with a will delayed {delay:?} (due {due:?}), yet its will reached {:?} at {:?}",
                r.conn, r.at
            ));
        }
        let resumed_in_time = model
            .resumed_by(key)
            .is_some_and(|(next, sent)| !next.held && sent + MARGIN < due);
        if resumed_in_time && !model.restarted_during(conn, due) {
            if let Some(r) = received.iter().find(|r| !r.retain || r.at > ended) {
                problems.push(format!(
                    "{key:?} resumed its session within its will's delay, yet its will reached {:?} at {:?}",
                    r.conn, r.at
                ));
            }
        }
    }
    problems
}

/// A 5.0 session outlives its connection by its Session Expiry Interval:
/// resumed before then, it is present; after, it is gone.
fn session_expiry(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, conn) in &model.conns {
        let Some((ended, how)) = conn.end else {
            continue;
        };
        // A DISCONNECT may change it, but not from 0 [MQTT-3.14.2-2]. A
        // jump of the broker's clock while it went (`sim/src/clock.rs`) may
        // have closed the connection for keepalive before it arrived.
        let expiry = match (how, conn.disconnect_expiry) {
            (Ending::Disconnect, Some(_))
                if model
                    .clock_jumps
                    .iter()
                    .any(|(at, _)| *at >= conn.start && *at <= ended + MARGIN) =>
            {
                continue
            }
            (Ending::Disconnect, Some(set)) if conn.expiry != 0 => set,
            _ => conn.expiry,
        };
        // Only ends whose moment the broker shares with the client.
        let exact_end = matches!(how, Ending::Disconnect | Ending::Dropped);
        // A hold just after the end delays the broker's view of it.
        let held = conn.held || model.held_soon_after(&key.0, ended);
        if !conn.v5 || expiry == 0 || expiry >= EXPIRY_OUTLIVES_RUN || !exact_end || held {
            continue;
        }
        let next = (key.0.clone(), key.1 + 1);
        let (Some(next_conn), Some(&(_, sent))) =
            (model.conns.get(&next), model.client_ids.get(&next))
        else {
            continue;
        };
        if model.restarted_during(conn, sent)
            || model
                .connects_sent
                .iter()
                .any(|(_, c, clean, _)| c == &key.0 && *clean)
        {
            continue;
        }
        let present = next_conn.session == conn.session;
        let interval = Duration::from_secs(u64::from(expiry));
        let expires = model.after_broker(ended, interval);
        // The broker saw the end up to a latency later: after a jump of its
        // clock, if one came meanwhile.
        let jumped = model
            .clock_jumps
            .iter()
            .any(|(at, _)| *at >= ended && *at <= ended + MARGIN);
        let expires_latest = match jumped {
            true => model.after_broker(ended + MARGIN, interval),
            false => expires,
        };
        if present && sent > expires_latest + MARGIN {
            problems.push(format!(
                "{next:?} found its session present at {sent:?}; it expired at {expires:?} ({expiry} s after {key:?} ended)"
            ));
        }
        if !present && sent + MARGIN < expires {
            problems.push(format!(
                "{next:?} found no session at {sent:?}; it should have lived until {expires:?} ({expiry} s after {key:?} ended)"
            ));
        }
    }
    problems.extend(expiry_not_from_zero(model));
    problems
}

/// A DISCONNECT that gives an expiry to a session whose CONNECT asked for
/// none is a protocol error [MQTT-3.14.2-2]: the session still ends with
/// its connection, and the client's next CONNECT finds none.
fn expiry_not_from_zero(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, conn) in &model.conns {
        let Some(set) = conn.disconnect_expiry.filter(|&set| set != 0) else {
            continue;
        };
        let next = (key.0.clone(), key.1 + 1);
        let Some(next_conn) = model.conns.get(&next) else {
            continue;
        };
        if conn.v5 && conn.expiry == 0 && next_conn.session_present {
            problems.push(format!(
                "{next:?} found its session present at {:?}; {key:?} asked for no expiry and its DISCONNECT set {set} s, which may not change it",
                next_conn.start
            ));
        }
    }
    problems
}
