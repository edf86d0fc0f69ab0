//! The invariants, checked against the history and the broker's census at
//! the end of every run. Each returns what it found wrong, in words that
//! name the clients and messages involved.

mod access;
mod bounds;
mod corners;
mod model;
mod mqtt5;
mod retained;
mod timing;
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tern::codec::QoS;

use crate::history::MessageId;
use crate::outcome::Outcome;
use crate::workload::Scenario;
pub use bounds::BoundsWatch;
pub use model::Model;
use model::{ConnKey, Received};

/// How long a healthy, connected subscriber may take to receive a message
/// after its publisher's acknowledgement: latency, held links (up to 2 s),
/// delayed acknowledgements, a full window.
pub const DELIVERY_WINDOW: Duration = Duration::from_secs(6);

pub fn all(scenario: &Scenario, outcome: &Outcome) -> Vec<String> {
    let run_end = scenario.active + scenario.quiet;
    let mut model = Model::build(&outcome.history.entries(), run_end);
    if let Some(security) = &scenario.security {
        model.secure(security, scenario.config.anonymous_allowed());
    }
    let mut problems = access::all(&model);
    problems.extend(refusals(scenario, &model));
    problems.extend(wire::all(scenario, &model));
    problems.extend(census(scenario, &model, outcome));
    problems.extend(no_stray_deliveries(&model));
    problems.extend(exactly_once(&model));
    problems.extend(resends_carry_dup(&model));
    problems.extend(in_order(&model));
    problems.extend(timing::all(&model));
    let (wrong, missing_v5) = mqtt5::all(&model);
    problems.extend(wrong);
    // What should have arrived and did not. With small queues a loss may be
    // a counted drop, but only one counted for the session it was owed to;
    // otherwise it is a bug.
    let mut losses = acknowledged_are_delivered(&model);
    losses.extend(missing_v5.into_iter().map(Loss::anyone));
    losses.extend(wills(&model));
    let (wrong, missing) = retained::retained(&model, scenario.config.retained_messages_max);
    problems.extend(wrong);
    losses.extend(missing);
    let (wrong, missing) = corners::all(&model, scenario.config.retained_messages_max);
    problems.extend(wrong);
    losses.extend(missing);
    if scenario.config.queued_messages_max >= QUEUE_NEVER_FULL {
        problems.extend(losses.into_iter().map(|loss| loss.text));
    } else {
        problems.extend(unexcused(&model, losses, outcome));
    }
    problems.truncate(20);
    problems
}

/// Every CONNECT the broker refused, refused for a reason the run gives:
/// a login (judged in `access.rs`) where the scenario has users; or a
/// 3.1.1 CONNECT the spec or a limit of the configuration rejects (an empty
/// client id with a persistent session [MQTT-3.1.3-8], a keepalive over
/// the maximum, 0 counting as over one, as in mosquitto 2; an id over its
/// limit). An adversary's are not judged. Any other is the broker's mistake.
fn refusals(scenario: &Scenario, model: &Model) -> Vec<String> {
    let logins = ["BadUsernameOrPassword", "NotAuthorized"];
    let config = &scenario.config;
    let rejected = |key: &ConnKey| {
        let Some(&(v5, expiry, keep_alive, _)) = model.connect_info.get(key) else {
            return false;
        };
        let id = model.client_ids.get(key).map_or("", |(id, _)| id.as_str());
        let max = config.keep_alive_max_secs;
        !v5 && ((id.is_empty() && expiry > 0)
            || (max > 0 && (keep_alive == 0 || keep_alive > max))
            || id.len() > config.client_id_max_bytes)
    };
    let mut problems = Vec::new();
    for (key, (at, code)) in &model.refused {
        let adversary = model.connect_info.get(key).is_some_and(|info| info.3);
        let explained = match code.as_str() {
            _ if adversary => true,
            code if logins.contains(&code) => scenario.security.is_some(),
            "IdentifierRejected" => rejected(key),
            _ => false,
        };
        if !explained {
            problems.push(format!(
                "{key:?} was refused at {at:?} ({code}) for no reason the run gives"
            ));
        }
    }
    problems
}

/// A delivery owed and missing, and the session it was owed to: `None`
/// when no one session was (a shared group's, or a will's timing).
pub(crate) struct Loss {
    pub session: Option<usize>,
    pub text: String,
}

impl Loss {
    pub fn of(session: usize, text: String) -> Loss {
        Loss {
            session: Some(session),
            text,
        }
    }

    pub fn anyone(text: String) -> Loss {
        Loss {
            session: None,
            text,
        }
    }
}

/// The losses that the drops counted do not excuse: a session's losses
/// against the drops counted for its client id, the rest against all
/// drops, so that one session's stalled queue does not hide behind drops
/// counted elsewhere.
fn unexcused(model: &Model, losses: Vec<Loss>, outcome: &Outcome) -> Vec<String> {
    let dropped = outcome.idle.dropped;
    let total = dropped.queue_full + dropped.outbound_full;
    let mut by_client: BTreeMap<Option<&str>, Vec<String>> = BTreeMap::new();
    for loss in losses {
        let client_id = loss.session.and_then(|s| {
            let first = model.sessions[s].1.first()?;
            model.client_ids.get(first).map(|(id, _)| id.as_str())
        });
        by_client.entry(client_id).or_default().push(loss.text);
    }
    let mut problems = Vec::new();
    for (client_id, texts) in by_client {
        let drops = match client_id {
            Some(id) => outcome.dropped_by_client.get(id).copied().unwrap_or(0),
            None => total,
        };
        if texts.len() as u64 > drops {
            let whose = client_id.map_or("of no one session".to_owned(), |id| format!("to {id}"));
            problems.push(format!(
                "{} deliveries {whose} missing, only {drops} drops counted for it; first: {}",
                texts.len(),
                texts[0]
            ));
        }
    }
    problems
}

/// How long after its client's end the broker may still hold its
/// connection: the DISCONNECT or the close in flight, and the step of the
/// connection's task that reads it.
const ENDING: Duration = Duration::from_secs(1);

/// Everything that ended is gone: no connection, no task of one, no
/// subscription of a clean session; the shutdown ends every task.
fn census(scenario: &Scenario, model: &Model, outcome: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let idle = &outcome.idle;
    // A plan a held link set back can end at the run's end (secured seed
    // 81983: an observer held 2 s at its start sent its DISCONNECT 10 ms
    // before the census, which came before the broker read it): those
    // connections, and any since the last restart whose client had not
    // ended, may be there still.
    let ending = (model.conns.values())
        .filter(|c| match c.end {
            Some((at, _)) => at + ENDING > model.run_end,
            None => c.start >= model.last_restart(),
        })
        .count();
    if idle.connections > ending
        || idle.tasks_of("connection") > ending
        || idle.sessions_connected > ending
    {
        problems.push(format!(
            "after every client has gone, {} connections, {} connection tasks, {} connected sessions remain",
            idle.connections,
            idle.tasks_of("connection"),
            idle.sessions_connected
        ));
    }
    if idle.alarms > ending {
        problems.push(format!(
            "after every client has gone, {} connections' alarms remain set",
            idle.alarms
        ));
    }
    let (sessions, subscriptions) = expected_offline(model);
    if !sessions.contains(&idle.sessions_offline) {
        problems.push(format!(
            "{} offline sessions; the history says {sessions:?}",
            idle.sessions_offline
        ));
    }
    if !subscriptions.contains(&idle.subscriptions) {
        problems.push(format!(
            "{} subscriptions remain; the history says {subscriptions:?} (persistent sessions only)",
            idle.subscriptions
        ));
    }
    // Adversaries fill their own queues, by their bytes.
    let roomy = scenario.config.queued_messages_max >= QUEUE_NEVER_FULL;
    if roomy && scenario.adversaries == 0 && idle.dropped.queue_full > 0 {
        problems.push(format!(
            "{} messages dropped for a full queue that cannot fill",
            idle.dropped.queue_full
        ));
    }
    let shutdown = &outcome.shutdown;
    if let Some(why) = &shutdown.failed {
        problems.push(format!("the broker stopped by itself: {why}"));
    }
    if !shutdown.lingering.is_empty() {
        problems.push(format!(
            "tasks did not end on shutdown: {}",
            shutdown.lingering.join(", ")
        ));
    }
    let live: usize = shutdown.census.tasks.values().sum();
    if live != 0 || shutdown.census.connections != 0 {
        problems.push(format!("after shutdown: {:?}", shutdown.census));
    }
    problems
}

/// A queue limit the workloads cannot reach: a drop under it is a bug.
pub const QUEUE_NEVER_FULL: usize = 100_000;

/// The persistent sessions alive at the end, and their subscriptions, as
/// ranges: a CONNECT or SUBSCRIBE that a crash cut short may or may not
/// have reached the broker.
fn expected_offline(
    model: &Model,
) -> (
    std::ops::RangeInclusive<usize>,
    std::ops::RangeInclusive<usize>,
) {
    let since = model.last_restart();
    let mut sessions = (0, 0);
    let mut subscriptions = (0, 0);
    // Sessions that outlive the run: 3.1.1's persistent ones, and 5.0's
    // with a long expiry; a short one has run out by the end. The client's
    // last CONNECT tells: a clean 3.1.1 one ends what came before.
    let mut last: BTreeMap<&String, u32> = BTreeMap::new();
    // A refused CONNECT made no session.
    let refused: BTreeSet<(&String, Duration)> = model
        .refused
        .keys()
        .filter_map(|key| Some((&key.0, model.client_ids.get(key)?.1)))
        .collect();
    for (at, client, _, expiry) in &model.connects_sent {
        if *at >= since && !refused.contains(&(client, *at)) {
            last.insert(client, *expiry);
        }
    }
    let persistent: BTreeSet<&String> = last
        .into_iter()
        .filter(|(_, expiry)| *expiry >= crate::workload::EXPIRY_OUTLIVES_RUN)
        .map(|(client, _)| client)
        .collect();
    for client in persistent {
        let connected = model
            .conns
            .iter()
            .any(|((c, _), conn)| c == client && conn.start >= since);
        if connected {
            sessions.0 += 1;
        }
        sessions.1 += 1;
        let mut by_filter: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for sub in &model.subscriptions {
            let owner = &model.sessions[sub.session].0;
            if owner != client || sub.sent_at < since {
                continue;
            }
            let entry = by_filter
                .entry(sub.filter.as_str())
                .or_insert((false, false));
            let live = sub.end == Duration::MAX;
            let certain = live
                && sub.acked_at.is_some()
                && sub.granted.is_some()
                && sub.unsubscribe_sent.is_none();
            let possible = live || sub.acked_at.is_none();
            entry.0 |= certain;
            entry.1 |= possible || certain;
        }
        subscriptions.0 += by_filter.values().filter(|(certain, _)| *certain).count();
        subscriptions.1 += by_filter.values().filter(|(_, possible)| *possible).count();
    }
    (sessions.0..=sessions.1, subscriptions.0..=subscriptions.1)
}

pub(crate) fn will_of(payload: &str) -> Option<ConnKey> {
    let rest = payload.strip_prefix("will:")?;
    let (client, conn) = rest.rsplit_once(':')?;
    Some((client.to_owned(), conn.parse().ok()?))
}

/// Nothing arrives that the receiver's session was not subscribed to when
/// the message was routed, and nothing above the QoS it asked for.
fn no_stray_deliveries(model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for r in &model.received {
        let Some(conn) = model.conns.get(&r.conn) else {
            problems.push(format!(
                "{:?} received {:?} before its CONNACK",
                r.conn, r.payload
            ));
            continue;
        };
        // When the broker can have routed it: from the publish to now.
        let routed_from = if let Some(will) = will_of(&r.payload) {
            match model.conns.get(&will) {
                Some(c) if c.will.as_ref().is_some_and(|(_, _, retain)| *retain) && r.retain => {
                    Duration::ZERO
                }
                // From its CONNECT, not its CONNACK: on a held link the
                // broker may have ended it, will and all, long before the
                // CONNACK came (partition_heal seed 9800317).
                Some(c) => model
                    .client_ids
                    .get(&will)
                    .map_or(c.start, |(_, sent)| *sent),
                // Its CONNECT went out, and the client was gone before the
                // CONNACK came: the broker had accepted it, will and all.
                None => match model.client_ids.get(&will) {
                    Some((_, sent)) => *sent,
                    None => {
                        problems.push(format!(
                            "{:?} received the will of unknown {will:?}",
                            r.conn
                        ));
                        continue;
                    }
                },
            }
        } else if let Some(id) = MessageId::parse(r.payload.as_bytes()) {
            let Some(sent) = model.published.get(&id) else {
                problems.push(format!(
                    "{:?} received {id:?}, which nobody published",
                    r.conn
                ));
                continue;
            };
            if sent.topic != r.topic || r.qos > sent.qos {
                problems.push(format!(
                    "{:?} received {id:?} on {} at {:?}; it was sent to {} at {:?}",
                    r.conn, r.topic, r.qos, sent.topic, sent.qos
                ));
            }
            if r.retain {
                Duration::ZERO
            } else {
                sent.sent_at
            }
        } else {
            // An empty payload (a retained clear) names no publish.
            Duration::ZERO
        };
        // A filter refused in its SUBACK (over a limit) covers nothing; one
        // not yet acknowledged may cover up to the QoS asked for.
        // No Local keeps a client's own messages from it (5.0).
        let own = MessageId::parse(r.payload.as_bytes())
            .and_then(|id| model.published.get(&id))
            .is_some_and(|sent| corners::same_client_id(model, &sent.conn, &r.conn));
        let covered = model.subscriptions_of(conn.session).any(|s| {
            !(own && s.options.no_local)
                && s.sent_at <= r.at
                && (s.acked_at.is_none() || s.granted.is_some())
                && model.filter_matches(&s.filter, &r.topic)
                && s.end >= routed_from
                && r.qos <= s.granted.unwrap_or(s.requested)
        });
        if !covered {
            problems.push(format!(
                "{:?} received {:?} on {} at {:?} at {:?} with no subscription covering it",
                r.conn, r.payload, r.topic, r.qos, r.at
            ));
        }
    }
    problems
}

/// The connections of `session` that were healthy for a whole delivery
/// window starting no earlier than `from`.
pub(crate) fn healthy_window(model: &Model, session: usize, from: Duration) -> Option<Duration> {
    model.sessions[session].1.iter().find_map(|key| {
        let conn = &model.conns[key];
        let start = conn.start.max(from);
        (conn.healthy_until(model.run_end) >= start + DELIVERY_WINDOW).then_some(start)
    })
}

/// A QoS 1/2 message acknowledged to its publisher reaches every session
/// subscribed to it from before the publish until it could be delivered.
/// A session whose filters overlap is owed one copy (the broker sends one,
/// at the highest QoS granted), and a loss of it is one loss: counted once
/// a subscription, a loss the broker counted as one drop was weighed as
/// two against that drop.
fn acknowledged_are_delivered(model: &Model) -> Vec<Loss> {
    let mut problems = Vec::new();
    let mut lost: BTreeSet<(usize, &MessageId)> = BTreeSet::new();
    let mut firsts: BTreeSet<(usize, String)> = BTreeSet::new();
    for r in &model.received {
        if let Some(conn) = model.conns.get(&r.conn) {
            firsts.insert((conn.session, r.payload.clone()));
        }
    }
    // For each topic, which subscriptions match it, by position.
    let mut matching: BTreeMap<&str, Vec<bool>> = BTreeMap::new();
    for (id, sent) in &model.published {
        let Some(acked) = sent.acked_at else { continue };
        // A message that may expire on its way is checked by `mqtt5`; one
        // a client sent to `$SYS` is the broker's to drop.
        if sent.empty
            || sent.qos == QoS::AtMostOnce
            || sent.expiry.is_some()
            || corners::is_sys(&sent.topic)
        {
            continue;
        }
        let matches = matching.entry(sent.topic.as_str()).or_insert_with(|| {
            model
                .subscriptions
                .iter()
                .map(|sub| Model::matches(&sub.filter, &sent.topic))
                .collect()
        });
        for (sub, &matches) in model.subscriptions.iter().zip(matches.iter()) {
            let Some(granted) = sub.granted else { continue };
            // One member of a group gets it: checked by `mqtt5`.
            if granted == QoS::AtMostOnce
                || sub.is_shared()
                || sub.acked_at.is_none_or(|a| a >= sent.sent_at)
                || !matches
                || !model.may_read(sub.session, &sent.topic)
            {
                continue;
            }
            let Some(start) = healthy_window(model, sub.session, acked) else {
                continue;
            };
            let own = || {
                let receiver = &model.sessions[sub.session].1[0];
                corners::same_client_id(model, &sent.conn, receiver)
            };
            if sub.options.no_local && own() {
                continue;
            }
            let deadline = start + DELIVERY_WINDOW;
            // An UNSUBSCRIBE not yet answered may have removed it from the
            // moment it went out: a paused client's (slow_subscriber seeds
            // 9300082, 9300170), read by the broker before the messages
            // that came after it, which were then rightly not queued.
            let end = sub
                .unsubscribe_sent
                .map_or(sub.end, |sent| sub.end.min(sent));
            if end < deadline || model.restart_between(sent.sent_at, deadline) {
                continue;
            }
            if !firsts.contains(&(sub.session, id.payload())) && lost.insert((sub.session, id)) {
                let client = &model.sessions[sub.session].0;
                problems.push(Loss::of(sub.session, format!(
                    "{id:?} ({} at {:?}) was acknowledged at {acked:?} but never reached {client}, subscribed to {} since {:?}",
                    sent.topic, sent.qos, sub.filter, sub.acked_at.unwrap_or_default()
                )));
            }
        }
    }
    problems
}

/// A message received at QoS 2 is received once per session.
fn exactly_once(model: &Model) -> Vec<String> {
    let mut counts: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    // An empty payload (a retained clear) names no message.
    let named = |r: &&Received| !r.payload.is_empty();
    for r in model
        .received
        .iter()
        .filter(|r| r.qos == QoS::ExactlyOnce && r.first)
        .filter(named)
        // A retained copy comes with each new subscription, by design.
        .filter(|r| !r.retain)
        // A shared subscription's copy is another copy, by design.
        .filter(|r| !model.via_shared(r))
    {
        let session = model.conns[&r.conn].session;
        *counts.entry((session, &r.payload)).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((session, payload), n)| {
            format!(
                "{payload} arrived {n} times at QoS 2 in the session of {}",
                model.sessions[session].0
            )
        })
        .collect()
}

/// A QoS 2 PUBLISH that the client already holds under its packet id (it
/// has not had the PUBREL) is a resend, and a resend carries DUP
/// [MQTT-3.3.1-1].
fn resends_carry_dup(model: &Model) -> Vec<String> {
    model
        .received
        .iter()
        .filter(|r| r.qos == QoS::ExactlyOnce && !r.first && !r.dup)
        .map(|r| {
            format!(
                "{:?} got {} again at QoS 2 at {:?}, without DUP",
                r.conn, r.payload, r.at
            )
        })
        .collect()
}

/// QoS 1/2 messages of one publisher connection on one topic arrive in the
/// order they were sent, resends included [MQTT-4.6.0].
fn in_order(model: &Model) -> Vec<String> {
    let mut last: BTreeMap<(&ConnKey, &ConnKey, &str), u64> = BTreeMap::new();
    let mut problems = Vec::new();
    for r in model
        .received
        .iter()
        .filter(|r| r.qos != QoS::AtMostOnce && !r.retain)
        // A group member that ends hands its unacknowledged messages to
        // another, after later ones: shared subscriptions keep no order.
        .filter(|r| !model.via_shared(r))
    {
        let Some(id) = MessageId::parse(r.payload.as_bytes()) else {
            continue;
        };
        let Some(sent) = model.published.get(&id) else {
            continue;
        };
        // A resend is routed when it comes, after later messages: at least
        // once allows that.
        if sent.resent {
            continue;
        }
        let key = (&r.conn, &sent.conn, r.topic.as_str());
        if let Some(&previous) = last.get(&key) {
            if id.seq < previous {
                problems.push(format!(
                    "{:?} received {}:{} after {}:{} on {}",
                    r.conn, id.publisher, id.seq, id.publisher, previous, r.topic
                ));
            }
        }
        last.insert(key, id.seq);
    }
    problems
}

/// A will is published if and only if its connection ended without
/// DISCONNECT (and the broker did not die with it).
fn wills(model: &Model) -> Vec<Loss> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<ConnKey, Vec<&Received>> = BTreeMap::new();
    for r in &model.received {
        if let Some(key) = will_of(&r.payload) {
            seen.entry(key).or_default().push(r);
        }
    }
    for (key, conn) in &model.conns {
        let Some((topic, _, _)) = &conn.will else {
            continue;
        };
        let received = seen.get(key).map_or(&[][..], Vec::as_slice);
        let Some((ended, how)) = conn.end else {
            continue;
        };
        if how == crate::history::Ending::Disconnect {
            // Taken over just as it said DISCONNECT, or held past its
            // keepalive so that the broker closed it first: which came
            // first is the broker's to see, and either outcome is right.
            // A partition just after may have lost the DISCONNECT on its
            // way (a second covers latency and a held link's release).
            let cut_off = model
                .silent_crashes
                .get(&key.0)
                .is_some_and(|at| *at >= ended && *at <= ended + Duration::from_secs(1));
            // So may a jump of the broker's clock, which makes every
            // keepalive due at once.
            let jumped = model
                .clock_jumps
                .iter()
                .any(|(at, _)| at.abs_diff(ended) <= Duration::from_secs(1));
            // A hold just after holds the DISCONNECT on its way, maybe past
            // the keepalive.
            let held_after = model.held_soon_after(&key.0, ended);
            // A twin's CONNECT sent just after the DISCONNECT can reach the
            // broker first: each message's latency is drawn apart (seed
            // 20332 of takeover: sent 10 ms after it, it arrived in the same
            // step, ahead of it). A second covers latency, slow spells too.
            let overtaken = model.taken_over(key, ended + Duration::from_secs(1));
            if overtaken || conn.held || cut_off || jumped || held_after {
                continue;
            }
            if let Some(r) = received.iter().find(|r| !r.retain || r.at > ended) {
                problems.push(Loss::anyone(format!(
                    "{key:?} sent DISCONNECT, yet its will reached {:?}",
                    r.conn
                )));
            }
            continue;
        }
        // Sent after its delay, or at the session's end if sooner; not at
        // all if the client resumed the session within it.
        if model.will_cancelled(key) {
            continue;
        }
        let delay = Duration::from_secs(u64::from(model.will_delay(key)));
        // Keepalive may take 1.5 times 5 s to notice a silent death.
        // From the latest the broker can have seen the end: a latency on,
        // after a jump of its clock if one came meanwhile.
        let seen_end = ended + Duration::from_millis(500);
        let due =
            model.after_broker(seen_end, Duration::from_millis(7_500) + delay) + DELIVERY_WINDOW;
        if model.restarted_during(conn, due) {
            continue;
        }
        // The broker's promptness is when the will first reached a receiver
        // owed it whose link was not held: one receiver's own queue (a
        // window full of QoS 2) may hold its copy back longer, and that is
        // not the keepalive's doing.
        let mut earliest: Option<Duration> = None;
        for sub in &model.subscriptions {
            let watching = sub.acked_at.is_some_and(|a| a < conn.start)
                && sub.granted.is_some()
                && !sub.is_shared()
                && model.filter_matches(&sub.filter, topic)
                && model.may_read(sub.session, topic)
                && sub.end >= due;
            let listening = model.sessions[sub.session].1.iter().any(|k| {
                let c = &model.conns[k];
                c.start <= ended && c.healthy_until(model.run_end) >= due
            });
            if !watching || !listening {
                continue;
            }
            let ours = received.iter().filter(|r| {
                model
                    .conns
                    .get(&r.conn)
                    .is_some_and(|c| c.session == sub.session)
            });
            let unheld = ours
                .clone()
                .filter(|r| model.conns.get(&r.conn).is_some_and(|c| !c.held))
                .map(|r| r.at)
                .min();
            earliest = match (earliest, unheld) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if ours.count() == 0 {
                problems.push(Loss::of(sub.session, format!(
                    "{key:?} ended ({how:?}) at {ended:?} without DISCONNECT, but its will never reached {}",
                    model.sessions[sub.session].0
                )));
            }
        }
        if let Some(late) = earliest.and_then(|at| will_late(conn, ended, at)) {
            problems.push(Loss::anyone(format!(
                "{key:?} fell silent by {ended:?}, but its will reached its first receiver \
                 only at {late:?}, past 1.5 times its keepalive of {} s",
                conn.keep_alive
            )));
        }
    }
    problems
}

/// When a will with no delay arrived, if later than its connection's end
/// (or its falling silent, if sooner) plus 1.5 times its keepalive and a
/// second: the broker must have closed it by then [MQTT-3.1.2-24]. A held
/// link may deliver the client's last packets after its end; no bound then.
fn will_late(conn: &model::Conn, ended: Duration, at: Duration) -> Option<Duration> {
    if conn.will_delay > 0 || conn.held || conn.keep_alive == 0 {
        return None;
    }
    let silent = conn.silent_from.map_or(ended, |s| s.min(ended));
    let grace = Duration::from_millis(u64::from(conn.keep_alive) * 1500);
    (at > silent + grace + Duration::from_secs(1)).then_some(at)
}
