//! Retained messages: a new subscription gets the latest retained message
//! of each topic it matches, where the history pins down which one that
//! is, and the store may have been full.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tern::codec::QoS;

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
    // Each session's copies, in one pass. A QoS 2 copy the client had
    // already (`first` false) is not another, nor is a QoS 1 copy resent
    // after a reconnect (DUP): its first sending may have arrived too.
    let mut copies_of: BTreeMap<usize, Vec<&Received>> = BTreeMap::new();
    for r in &model.received {
        if let (true, Some(conn)) = (r.retain && r.first && !r.dup, model.conns.get(&r.conn)) {
            copies_of.entry(conn.session).or_default().push(r);
        }
    }
    for session in 0..model.sessions.len() {
        let subs: Vec<(&Subscription, Option<&ConnKey>, bool)> = model
            .subscriptions_of(session)
            .filter(|s| (s.granted.is_some() || unanswered(s)) && !s.is_shared())
            // Retain Handling's refusals are checked by `corners`.
            .filter(|s| !super::corners::refuses_retained(model, s))
            .map(|s| {
                let on = answered_on(model, s);
                (s, on, on.is_some_and(|key| held(model, s, key)))
            })
            .collect();
        let copies = copies_of.get(&session).map_or(&[][..], Vec::as_slice);
        for &topic in &topics {
            // With Retain As Published, what is forwarded looks retained.
            let as_published = model
                .subscriptions_of(session)
                .any(|s| s.options.retain_as_published && model.filter_matches(&s.filter, topic));
            if as_published || !model.may_read(session, topic) {
                continue;
            }
            let claims: Vec<Claim> = (subs.iter())
                .filter(|(s, ..)| model.filter_matches(&s.filter, topic))
                .map(|&(sub, on, held)| Claim::of(model, sub, on, held, topic, full_from))
                .collect();
            if claims.is_empty() {
                continue;
            }
            let copies: Vec<&Received> = (copies.iter().copied())
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
    /// The connection its SUBSCRIBE and SUBACK went on.
    on: Option<&'a ConnKey>,
    /// Held to its copies on that connection (`held`).
    held: bool,
    owed: Owed,
    /// Its copies come in `[sub.sent_at, until]`.
    until: Duration,
    /// Its connection stopped taking copies within the delivery window: a
    /// QoS 1/2 copy queued for it stays with the session, and comes on a
    /// later connection whenever the session is resumed.
    carried: bool,
}

/// The retained payload a subscription was owed.
enum Owed {
    /// `None` for none.
    Known(Option<String>),
    /// The history cannot tell which: one of these or none.
    OneOf(BTreeSet<String>),
}

impl<'a> Claim<'a> {
    fn of(
        model: &'a Model,
        sub: &'a Subscription,
        on: Option<&'a ConnKey>,
        held: bool,
        topic: &str,
        full_from: Duration,
    ) -> Self {
        // Granted, so acknowledged; or unanswered, and owed nothing.
        let acked = sub.acked_at.unwrap_or(sub.sent_at);
        let owed = if unanswered(sub) {
            Owed::OneOf(possible_retained(model, topic, model.run_end))
        } else {
            match settled_retained(model, topic, sub.sent_at, acked, full_from) {
                Some(payload) => Owed::Known(payload),
                None => Owed::OneOf(possible_retained(model, topic, acked)),
            }
        };
        // A replacement's SUBACK (which also ends `sub.end`) does not cut
        // it: a copy it had sent may come after. Nor does an UNSUBACK for
        // a copy the window held back (`may_take`).
        let until = acked + DELIVERY_WINDOW;
        let carried = on.is_some_and(|key| model.conns[key].healthy_until(model.run_end) < until);
        Claim {
            sub,
            on,
            held,
            owed,
            until,
            carried,
        }
    }

    /// Whether `copy` may be this subscription's, whatever its payload.
    fn may_take(&self, copy: &Received) -> bool {
        if unanswered(self.sub) {
            return self.unanswered_may_take(copy);
        }
        // Tagged with another 5.0 subscription's identifier, not this one's.
        let tagged_other = match self.sub.sub_id {
            Some(id) => !copy.sub_ids.is_empty() && !copy.sub_ids.contains(&id),
            None => false,
        };
        copy.at >= self.sub.sent_at
            && (copy.at <= self.until || self.carried_over(copy))
            && self.sub.granted.is_none_or(|granted| copy.qos <= granted)
            && !tagged_other
            && !self.unsubscribed_before(copy)
    }

    /// An unanswered SUBSCRIBE's copy: on its connection, or a QoS 1/2
    /// one queued for the session and sent on a later connection, at the
    /// QoS asked for at most (`unanswered`).
    fn unanswered_may_take(&self, copy: &Received) -> bool {
        let (conn, _) = self.sub.sent_on;
        let carried = copy.qos != QoS::AtMostOnce && copy.conn.1 > conn;
        copy.at >= self.sub.sent_at
            && (copy.conn.1 == conn || carried)
            && copy.qos <= self.sub.requested
            && !self.unsubscribed_before(copy)
    }

    /// Whether `copy` is one queued on this subscription's connection and
    /// sent on a later one of the session (churn seed 10010073: a QoS 2
    /// copy queued behind a full window on a connection that hung, sent
    /// eight seconds later when the session was resumed). A QoS 0 copy is
    /// not kept for the session.
    fn carried_over(&self, copy: &Received) -> bool {
        self.carried && copy.qos != QoS::AtMostOnce && self.on.is_some_and(|on| on.1 < copy.conn.1)
    }

    /// Whether `copy` came after this subscription ended with an
    /// UNSUBSCRIBE gone out (`sub.end`: its UNSUBACK, or the end of its
    /// session if none came), and could not have been held back until
    /// then. The broker forgets what it still owed, but a QoS 1/2 copy it
    /// had queued waits for room in the window, and may come after, as
    /// [MQTT-3.10.4-3] allows (churn seed 9980173: queued before a live QoS
    /// 0 message on its topic, which passed it). A QoS 0 copy is written in
    /// turn, before the UNSUBACK.
    fn unsubscribed_before(&self, copy: &Received) -> bool {
        self.sub.unsubscribe_sent.is_some() && copy.at > self.sub.end && copy.qos == QoS::AtMostOnce
    }

    /// Whether this subscription may have been owed `copy`.
    fn explains(&self, copy: &Received) -> bool {
        self.may_take(copy)
            && match &self.owed {
                Owed::Known(expected) => expected.as_deref() == Some(copy.payload.as_str()),
                Owed::OneOf(payloads) => payloads.contains(&copy.payload),
            }
    }

    /// Owed `copy`, on the connection it is held to.
    fn is_owed(&self, copy: &Received) -> bool {
        self.held
            && self.on == Some(&copy.conn)
            && matches!(self.owed, Owed::Known(Some(_)))
            && self.explains(copy)
    }
}

/// A SUBSCRIBE whose connection ended before its SUBACK came: the broker
/// may have read it all the same (a held link delivers it later) and owed
/// it retained messages, which a persistent session keeps for a later
/// connection (`partition_heal` seed 110267: `t/#` went out on a held
/// link, the client disconnected, and its copy of `t/a/x` came on the
/// next connection, after a new SUBSCRIBE whose own was a later value).
/// It may explain copies of any value the topic ever held; it is owed
/// none, since the broker may never have read it.
fn unanswered(sub: &Subscription) -> bool {
    sub.acked_at.is_none()
}

/// The connection a subscription's SUBSCRIBE and SUBACK went on.
fn answered_on<'a>(model: &'a Model, sub: &Subscription) -> Option<&'a ConnKey> {
    let acked = sub.acked_at?;
    model.sessions[sub.session].1.iter().find(|k| {
        let c = &model.conns[*k];
        c.start <= sub.sent_at && c.end_at(model.run_end) >= acked
    })
}

/// Every payload that may have been `topic`'s retained message by `to`:
/// those published retained before it (since whatever restart, as a store
/// keeps them), and retained wills'.
fn possible_retained(model: &Model, topic: &str, to: Duration) -> BTreeSet<String> {
    let published = (model.published.iter())
        .filter(|(_, s)| s.retain && !s.empty && s.topic == topic && s.sent_at < to)
        .map(|(id, _)| id.payload());
    let wills = (model.conns.iter())
        .filter(|(_, c)| {
            c.will
                .as_ref()
                .is_some_and(|(t, _, retain)| t == topic && *retain)
        })
        .map(|(key, _)| format!("will:{}:{}", key.0, key.1));
    published.chain(wills).collect()
}

/// Whether a subscription is held to its copies on `key`, the connection
/// its SUBSCRIBE and SUBACK went on: if that stayed healthy for the
/// delivery window, and the subscription was not replaced by a SUBSCRIBE
/// to the same filter in that time (what was owed is then owed to the
/// replacement, from the start: `owe_retained`; slow_subscriber seed
/// 40128), nor unsubscribed. Others may take copies, and are owed none.
fn held(model: &Model, sub: &Subscription, key: &ConnKey) -> bool {
    let Some(acked) = sub.acked_at else {
        return false;
    };
    let until = acked + DELIVERY_WINDOW;
    // Those sent after it, in the history's order: two SUBSCRIBEs of one
    // filter may go out at the same instant (slow_subscriber seed 120188:
    // `t/#` twice at 5.404 s, and the second replaced the first's owed
    // copies, as `owe_retained` does, though neither came later than the
    // other by the clock).
    let mut after = model
        .subscriptions_of(sub.session)
        .skip_while(|s| !std::ptr::eq(*s, sub))
        .skip(1);
    let replaced = after.any(|s| {
        s.filter == sub.filter
            && s.sent_at < until
            && s.granted.is_some()
            && !super::corners::refuses_retained(model, s)
    });
    let healthy = model.conns[key].healthy_until(model.run_end) >= until;
    let kept = sub.unsubscribe_sent.is_none_or(|at| at >= until);
    healthy && kept && !replaced
}

/// The copies of one topic to one session against the subscriptions that
/// may claim them: those owed one and left without it are missing, and a
/// copy that none may have been owed is wrong.
fn judge(claims: &[Claim], copies: &[&Received], topic: &str) -> (Vec<String>, Vec<String>) {
    let (mut wrong, mut missing) = (Vec::new(), Vec::new());
    let owed: Vec<usize> = (0..claims.len())
        .filter(|&c| claims[c].held && matches!(claims[c].owed, Owed::Known(Some(_))))
        .collect();
    let matched = match_copies(&owed, copies.len(), |c, k| claims[c].is_owed(copies[k]));
    let text = |claim: &Claim, got: Vec<&str>| {
        let sub = claim.sub;
        let key = claim.on.map_or_else(String::new, |k| format!("{k:?}"));
        let expected = match &claim.owed {
            Owed::Known(payload) => format!("{payload:?}"),
            Owed::OneOf(payloads) => format!("one of {payloads:?} or none"),
        };
        format!(
            "{key} subscribed to {} at {:?}: expected retained {expected} on {topic}, got {got:?}",
            sub.filter, sub.sent_at,
        )
    };
    // A copy that no subscription may have been owed.
    let unexplained = |r: &Received| !claims.iter().any(|c| c.explains(r));
    let mut reported: Vec<&Received> = Vec::new();
    for (&c, got) in owed.iter().zip(&matched) {
        if got.is_some() {
            continue;
        }
        // Wrong if a copy it might have had carried another payload that
        // nobody was owed; missing if those went to others.
        let claim = &claims[c];
        let near: Vec<&Received> = (copies.iter().copied())
            .filter(|r| claim.on == Some(&r.conn) && claim.may_take(r) && unexplained(r))
            .collect();
        reported.extend(&near);
        let near: Vec<&str> = near.iter().map(|r| r.payload.as_str()).collect();
        if near.is_empty() {
            missing.push(text(claim, near));
        } else {
            wrong.push(text(claim, near));
        }
    }
    // Any other copy nobody may have been owed is wrong for the
    // subscription in whose time it came on the connection its SUBSCRIBE
    // went on, held to its copies or not.
    for copy in copies.iter().filter(|r| unexplained(r)) {
        if reported.iter().any(|r| std::ptr::eq(*r, *copy)) {
            continue;
        }
        let blamed = (claims.iter()).find(|c| c.on == Some(&copy.conn) && c.may_take(copy));
        if let Some(claim) = blamed {
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
