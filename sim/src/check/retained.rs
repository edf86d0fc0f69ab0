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
///
/// Copies carry nothing that says which SUBSCRIBE they answer (but a 5.0
/// subscription's identifier), and they need not come in order: a QoS 1/2
/// copy waits for room in the client's window while later SUBACKs, and
/// other subscriptions' QoS 0 copies, do not (slow_subscriber seeds 9204,
/// 9400282, 9700011). So, for each session and topic, the copies are
/// matched to the subscriptions they may answer, each copy to one: a
/// subscription that was owed one and is left without is missing its copy,
/// and a copy that none of them may have been owed is wrong.
pub(super) fn retained(model: &Model, store_max: usize) -> (Vec<String>, Vec<Loss>) {
    let (mut wrong, mut missing) = (Vec::new(), Vec::new());
    let full_from = store_full_from(model, store_max);
    let topics: BTreeSet<&str> = model.published.values().map(|s| s.topic.as_str()).collect();
    for session in 0..model.sessions.len() {
        let conns = &model.sessions[session].1;
        // A QoS 2 copy the client had already (`first` false) is not another.
        let copies: Vec<&Received> = (model.received.iter())
            .filter(|r| r.retain && r.first && conns.contains(&r.conn))
            .collect();
        let subs: Vec<&Subscription> = model
            .subscriptions_of(session)
            .filter(|s| s.granted.is_some() && !s.is_shared())
            // Retain Handling's refusals are checked by `corners`.
            .filter(|s| !super::corners::refuses_retained(model, s))
            .collect();
        for &topic in &topics {
            // With Retain As Published, what is forwarded looks retained.
            let as_published = model
                .subscriptions_of(session)
                .any(|s| s.options.retain_as_published && model.filter_matches(&s.filter, topic));
            if as_published || !model.may_read(session, topic) {
                continue;
            }
            let claims: Vec<Claim> = (subs.iter())
                .filter(|s| model.filter_matches(&s.filter, topic))
                .map(|s| Claim::of(model, s, topic, full_from))
                .collect();
            if claims.is_empty() {
                continue;
            }
            let copies: Vec<&Received> = copies
                .iter()
                .copied()
                .filter(|r| r.topic == topic)
                .collect();
            let (w, m) = judge(&claims, &copies, topic);
            wrong.extend(w);
            missing.extend(m.into_iter().map(|text| Loss::of(session, text)));
        }
    }
    (wrong, missing)
}

/// What a subscription may claim of a topic's retained copies.
struct Claim<'a> {
    sub: &'a Subscription,
    /// The connection its copies are held to, if it is held to one.
    held: Option<&'a ConnKey>,
    /// The payload it was owed, `Some(None)` for none; `None` when the
    /// history cannot tell.
    expected: Option<Option<String>>,
    /// Its copies come in `[from, until]`.
    until: Duration,
}

impl<'a> Claim<'a> {
    fn of(model: &'a Model, sub: &'a Subscription, topic: &str, full_from: Duration) -> Self {
        let expected = sub
            .acked_at
            .and_then(|acked| settled_retained(model, topic, sub.sent_at, acked, full_from));
        // Not after the broker forgot what it owed: its copies come by an
        // UNSUBACK, or end of session, and (for those held to them) within
        // the delivery window.
        let until = (sub.acked_at.unwrap_or(sub.sent_at) + DELIVERY_WINDOW).min(sub.end);
        Claim {
            sub,
            held: held_to(model, sub),
            expected,
            until,
        }
    }

    /// Whether `copy` may be this subscription's, whatever its payload.
    fn may_take(&self, copy: &Received) -> bool {
        // Tagged with another 5.0 subscription's identifier, not this one's.
        let tagged_other = match self.sub.sub_id {
            Some(id) => !copy.sub_ids.is_empty() && !copy.sub_ids.contains(&id),
            None => false,
        };
        copy.at >= self.sub.sent_at
            && copy.at <= self.until
            && self.sub.granted.is_none_or(|granted| copy.qos <= granted)
            && !tagged_other
    }

    /// Whether this subscription may have been owed `copy`.
    fn explains(&self, copy: &Received) -> bool {
        self.may_take(copy)
            && match &self.expected {
                None => true,
                Some(expected) => expected.as_deref() == Some(copy.payload.as_str()),
            }
    }

    /// Owed `copy`'s payload, by this connection.
    fn owed(&self, copy: &Received) -> bool {
        self.held.is_some_and(|key| *key == copy.conn)
            && matches!(&self.expected, Some(Some(_)))
            && self.explains(copy)
    }
}

/// The connection a subscription is held to its copies on: the one its
/// SUBSCRIBE and SUBACK went on, if it stayed healthy for the delivery
/// window, and the subscription was not replaced by a SUBSCRIBE to the
/// same filter in that time (what was owed is then owed to the
/// replacement, from the start: `owe_retained`; slow_subscriber seed
/// 40128), nor unsubscribed. Others may take copies, and are owed none.
fn held_to<'a>(model: &'a Model, sub: &Subscription) -> Option<&'a ConnKey> {
    let acked = sub.acked_at?;
    let key = model.sessions[sub.session].1.iter().find(|k| {
        let c = &model.conns[*k];
        c.start <= sub.sent_at && c.end_at(model.run_end) >= acked
    })?;
    let until = acked + DELIVERY_WINDOW;
    let replaced = model.subscriptions_of(sub.session).any(|s| {
        s.sent_at > sub.sent_at
            && s.filter == sub.filter
            && s.sent_at < until
            && s.granted.is_some()
            && !super::corners::refuses_retained(model, s)
    });
    let healthy = model.conns[key].healthy_until(model.run_end) >= until;
    let kept = sub.unsubscribe_sent.is_none_or(|at| at >= until);
    (healthy && kept && !replaced).then_some(key)
}

/// The copies of one topic to one session against the subscriptions that
/// may claim them: those owed one and left without it are missing, and a
/// copy that none may have been owed is wrong.
fn judge(claims: &[Claim], copies: &[&Received], topic: &str) -> (Vec<String>, Vec<String>) {
    let (mut wrong, mut missing) = (Vec::new(), Vec::new());
    let owed: Vec<usize> = (0..claims.len())
        .filter(|&c| matches!(claims[c].expected, Some(Some(_))) && claims[c].held.is_some())
        .collect();
    let matched = match_copies(&owed, copies.len(), |c, k| claims[c].owed(copies[k]));
    let text = |claim: &Claim, got: Vec<&str>| {
        let sub = claim.sub;
        let key = claim.held.map_or_else(String::new, |k| format!("{k:?}"));
        format!(
            "{key} subscribed to {} at {:?}: expected retained {:?} on {topic}, got {got:?}",
            sub.filter,
            sub.sent_at,
            claim.expected.clone().flatten()
        )
    };
    for (&c, got) in owed.iter().zip(&matched) {
        if got.is_some() {
            continue;
        }
        // Copies it might have had but for their payload make it wrong;
        // those of the payload it was owed went to others.
        let claim = &claims[c];
        let near: Vec<&str> = (copies.iter())
            .filter(|r| claim.held == Some(&r.conn) && claim.may_take(r) && !claim.explains(r))
            .map(|r| r.payload.as_str())
            .collect();
        if near.is_empty() {
            missing.push(text(claim, near));
        } else {
            wrong.push(text(claim, near));
        }
    }
    // A copy that no subscription may have been owed: on the connection a
    // subscription is held to, in its time, it is that one's wrong copy.
    for copy in copies {
        if claims.iter().any(|c| c.explains(copy)) {
            continue;
        }
        if let Some(claim) = claims
            .iter()
            .find(|c| c.held == Some(&copy.conn) && c.expected.is_some() && c.may_take(copy))
        {
            wrong.push(text(claim, vec![copy.payload.as_str()]));
        }
    }
    (wrong, missing)
}

/// A largest matching of `owed` (indices of claims) to copies (`0..copies`),
/// each copy to at most one, where `fits(claim, copy)`: for each of `owed`,
/// its copy if it has one. Augmenting paths (Kuhn's): a handful of each.
fn match_copies(
    owed: &[usize],
    copies: usize,
    fits: impl Fn(usize, usize) -> bool,
) -> Vec<Option<usize>> {
    fn augment(
        i: usize,
        owed: &[usize],
        fits: &dyn Fn(usize, usize) -> bool,
        taken_by: &mut [Option<usize>],
        seen: &mut [bool],
    ) -> bool {
        for k in 0..taken_by.len() {
            if seen[k] || !fits(owed[i], k) {
                continue;
            }
            seen[k] = true;
            if taken_by[k].is_none_or(|j| augment(j, owed, fits, taken_by, seen)) {
                taken_by[k] = Some(i);
                return true;
            }
        }
        false
    }
    let mut taken_by: Vec<Option<usize>> = vec![None; copies];
    for i in 0..owed.len() {
        let mut seen = vec![false; copies];
        augment(i, owed, &fits, &mut taken_by, &mut seen);
    }
    let mut got = vec![None; owed.len()];
    for (k, by) in taken_by.iter().enumerate() {
        if let Some(i) = by {
            got[*i] = Some(k);
        }
    }
    got
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
