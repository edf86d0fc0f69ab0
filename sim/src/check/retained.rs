//! Retained messages: a new subscription gets the latest retained message
//! of each topic it matches, where the history pins down which one that
//! is, and the store may have been full.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::model::{ConnKey, Received, Subscription};
use super::{Loss, Model, DELIVERY_WINDOW};
use crate::history::MessageId;

/// A new subscription gets the latest retained message of each topic it
/// matches, where the history pins down which one that is.
pub(super) fn retained(model: &Model, store_max: usize) -> (Vec<String>, Vec<Loss>) {
    let (mut wrong, mut missing) = (Vec::new(), Vec::new());
    let full_from = store_full_from(model, store_max);
    let topics: BTreeSet<&str> = model.published.values().map(|s| s.topic.as_str()).collect();
    let mut received_by_conn: BTreeMap<&ConnKey, Vec<&Received>> = BTreeMap::new();
    for r in &model.received {
        received_by_conn.entry(&r.conn).or_default().push(r);
    }
    for sub in &model.subscriptions {
        let (Some(acked), Some(_)) = (sub.acked_at, sub.granted) else {
            continue;
        };
        // Shared subscriptions get no retained messages, nor those that
        // Retain Handling says no to (checked by `corners`).
        if sub.is_shared() || super::corners::refuses_retained(model, sub) {
            continue;
        }
        let session_conns = &model.sessions[sub.session].1;
        let Some(key) = session_conns.iter().find(|k| {
            let c = &model.conns[*k];
            c.start <= sub.sent_at && c.end_at(model.run_end) >= acked
        }) else {
            continue;
        };
        let conn = &model.conns[key];
        if conn.healthy_until(model.run_end) < acked + DELIVERY_WINDOW {
            continue;
        }
        // Retained copies of a topic for this subscription come after its
        // SUBACK, by the SUBACK of the next SUBSCRIBE matching that topic
        // (its sending is too soon: the broker may not have had it before
        // this one's retained messages went). Not by the next SUBACK of
        // any filter: a QoS 1/2 copy waits for room in the client's window
        // while later SUBACKs do not (slow_subscriber seed 9700011:
        // `+/+/y`'s copy of `t/b/y` came after the SUBACK of `r/1`). What
        // came before a later matching SUBSCRIBE went out is this one's;
        // what came after may be either's (see `claimants`). An earlier
        // subscription's late copy that lands in this window is not
        // counted twice: that one's own check then needs a copy more than
        // its claimants, this one among them.
        let later: Vec<&Subscription> = model
            .subscriptions_of(sub.session)
            .filter(|s| s.sent_at > sub.sent_at)
            .collect();
        let end = |at: fn(&Subscription) -> Duration, topic: &str| {
            later
                .iter()
                .filter(|s| model.filter_matches(&s.filter, topic))
                .map(|s| at(s))
                .min()
                .unwrap_or(Duration::MAX)
                .min(acked + DELIVERY_WINDOW)
        };
        // A SUBSCRIBE to the same filter replaces this subscription, and
        // what was still owed to it is owed to the replacement, from the
        // start (`owe_retained`): a slow reader's QoS 1/2 copies wait for
        // its window, so the first may have sent none by then
        // (slow_subscriber seed 40128: `#` at QoS 2 got its QoS 0 copy,
        // then the rest came as the second `#`'s). The replacement's own
        // check holds the broker to them. One that refuses retained
        // messages leaves what was owed with this one.
        let replaced = later.iter().any(|s| {
            s.filter == sub.filter
                && s.sent_at < acked + DELIVERY_WINDOW
                && s.granted.is_some()
                && !super::corners::refuses_retained(model, s)
        });
        // With Retain As Published, what is forwarded looks retained too.
        let as_published = |t: &str| {
            model
                .subscriptions_of(sub.session)
                .any(|s| s.options.retain_as_published && model.filter_matches(&s.filter, t))
        };
        for topic in topics
            .iter()
            .copied()
            .filter(|t| model.filter_matches(&sub.filter, t))
            .filter(|t| model.may_read(sub.session, t))
            .filter(|t| !as_published(t))
        {
            let Some(expected) = settled_retained(model, topic, sub.sent_at, acked, full_from)
            else {
                continue;
            };
            let window_end = end(|s| s.acked_at.unwrap_or(s.sent_at), topic);
            // A 5.0 copy names its subscription by its identifier: tagged
            // with this one's, it is this one's whatever SUBSCRIBE went out
            // meanwhile (slow_subscriber seed 125: `#`'s copy came after
            // `r/+` was sent, before its SUBACK); tagged with another's, it
            // is not.
            let tagged = |r: &Received| match sub.sub_id {
                Some(id) if !r.sub_ids.is_empty() => Some(r.sub_ids.contains(&id)),
                _ => None,
            };
            let copies = |from: Duration, until: Duration, untagged_only: bool| -> Vec<&Received> {
                received_by_conn
                    .get(key)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|r| tagged(r) != Some(false) && !(untagged_only && tagged(r).is_some()))
                    .filter(|r| {
                        let until = if tagged(r) == Some(true) {
                            window_end
                        } else {
                            until
                        };
                        r.retain && r.topic == topic && r.at >= from && r.at <= until
                    })
                    .collect()
            };
            let later_sent = end(|s| s.sent_at, topic);
            let mut got = within_grant(copies(sub.sent_at, window_end.min(later_sent), false), sub);
            // Untagged copies that came after a later SUBSCRIBE matching the
            // topic went out may be its: this one has its copy among them if
            // there are as many as the subscriptions they may be for
            // (slow_subscriber seed 9400282: `#` then `r/+` sent 3 ms apart,
            // both SUBACKs and both copies of `r/1` in one 10 ms step).
            let mut shared = false;
            if got.is_empty() && later_sent < window_end {
                let Some(claimants) = claimants(model, &later, topic, window_end, full_from) else {
                    continue;
                };
                // Counted at any grant: a claimant's own may be above this
                // one's.
                let after = copies(later_sent, window_end, true);
                if after.len() > claimants {
                    (got, shared) = (within_grant(after, sub), claimants > 0);
                }
            }
            let text = format!(
                "{key:?} subscribed to {} at {:?}: expected retained {expected:?} on {topic}, got {got:?}",
                sub.filter, sub.sent_at
            );
            match &expected {
                Some(_) if got.is_empty() && !replaced => {
                    missing.push(Loss::of(sub.session, text));
                }
                // Of copies that may be others', one must be this one's; the
                // others' own checks hold them to theirs.
                Some(payload) if shared && !got.contains(&payload.as_str()) => wrong.push(text),
                Some(payload) if !shared && got.iter().any(|g| g != payload) => wrong.push(text),
                None if !got.is_empty() => wrong.push(text),
                _ => {}
            }
        }
    }
    (wrong, missing)
}

/// Above a subscription's grant, a copy is an earlier one's: retained
/// messages are sent as the connection has room, so a slow reader may get
/// them after a later SUBSCRIBE went out (slow_subscriber seed 9204).
fn within_grant<'a>(copies: Vec<&'a Received>, sub: &Subscription) -> Vec<&'a str> {
    copies
        .into_iter()
        .filter(|r| sub.granted.is_none_or(|granted| r.qos <= granted))
        .map(|r| r.payload.as_str())
        .collect()
}

/// How many later SUBSCRIBEs of a session had a retained copy of `topic`
/// owed that may have come by `window_end`: acknowledged by then (a
/// subscription's copies follow its SUBACK), granted, not shared, taking
/// retained messages, and not replaced by a later one of them to the same
/// filter (which takes what was owed). `None` if the history cannot tell
/// whether one of them was owed a copy.
fn claimants(
    model: &Model,
    later: &[&Subscription],
    topic: &str,
    window_end: Duration,
    full_from: Duration,
) -> Option<usize> {
    let mut owed: Vec<&Subscription> = Vec::new();
    for &s in later {
        let Some(acked) = s.acked_at.filter(|&acked| acked <= window_end) else {
            continue;
        };
        if !model.filter_matches(&s.filter, topic)
            || s.granted.is_none()
            || s.is_shared()
            || super::corners::refuses_retained(model, s)
        {
            continue;
        }
        // `Some(None)`: nothing retained then, so nothing owed.
        if settled_retained(model, topic, s.sent_at, acked, full_from)?.is_some() {
            owed.push(s);
        }
    }
    let replaced = |s: &Subscription| {
        owed.iter()
            .any(|t| t.filter == s.filter && t.sent_at > s.sent_at)
    };
    Some(owed.iter().filter(|s| !replaced(s)).count())
}

/// The retained payload of `topic` while a SUBSCRIBE was processed (sent at
/// `from`, acknowledged at `to`): `Some(None)` for none, `None` when the
/// history cannot tell (a retained publish in flight, unacknowledged, or
/// overlapping the last one; a retained will; or one that the store, full,
/// may have refused).
fn settled_retained(
    model: &Model,
    topic: &str,
    from: Duration,
    to: Duration,
    full_from: Duration,
) -> Option<Option<String>> {
    let since = model.last_restart_before(from);
    let wills_retained = model.conns.values().any(|c| {
        c.will
            .as_ref()
            .is_some_and(|(t, _, retain)| t == topic && *retain)
    });
    // A retained message that may have expired may or may not be there.
    let expiring = model
        .published
        .values()
        .any(|s| s.retain && s.topic == topic && s.expiry.is_some());
    if wills_retained || expiring {
        return None;
    }
    let mut last: Option<(&MessageId, Duration, Duration)> = None;
    let mut intervals = Vec::new();
    for (id, sent) in &model.published {
        if !sent.retain || sent.topic != topic || sent.sent_at < since || sent.sent_at >= to {
            continue;
        }
        let acked = sent.acked_at?;
        // A topic new to a full store is not retained (`retained_full`);
        // the history cannot tell whether it was new then.
        if acked >= from || (!sent.empty && acked >= full_from) {
            return None;
        }
        intervals.push((sent.sent_at, acked));
        if last.is_none_or(|(_, _, a)| acked > a) {
            last = Some((id, sent.sent_at, acked));
        }
    }
    let Some((id, sent_at, acked)) = last else {
        return Some(None);
    };
    let overlapping = intervals
        .iter()
        .filter(|(s, a)| *a >= sent_at && *s <= acked)
        .count()
        > 1;
    if overlapping {
        return None;
    }
    let sent = &model.published[id];
    Some((!sent.empty).then(|| id.payload()))
}

impl Model {
    fn last_restart_before(&self, at: Duration) -> Duration {
        self.restarts
            .iter()
            .copied()
            .filter(|r| *r <= at)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// From when the retained store may have been full: when as many topics as
/// it takes had had a retained message (or a retained will) sent to them.
/// Before that it held fewer, whatever was cleared; after it, a retained
/// message for a topic that had none may have been refused.
pub(super) fn store_full_from(model: &Model, store_max: usize) -> Duration {
    let mut firsts: BTreeMap<&str, Duration> = BTreeMap::new();
    let publishes = model
        .published
        .values()
        .filter(|s| s.retain && !s.empty)
        .map(|s| (s.topic.as_str(), s.sent_at));
    let wills = model.conns.values().filter_map(|c| {
        let (topic, _, retain) = c.will.as_ref()?;
        retain.then_some((topic.as_str(), Duration::ZERO))
    });
    for (topic, at) in publishes.chain(wills) {
        let first = firsts.entry(topic).or_insert(at);
        *first = (*first).min(at);
    }
    let mut firsts: Vec<Duration> = firsts.into_values().collect();
    firsts.sort();
    firsts
        .get(store_max.saturating_sub(1))
        .copied()
        .unwrap_or(Duration::MAX)
}
