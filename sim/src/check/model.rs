//! The history reshaped for checking: connections, the sessions they belong
//! to, subscriptions as time intervals, and every publish by its id.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use tern::codec::{QoS, SubscriptionOptions};
use tern::topic::TopicFilter;

use crate::history::{Ending, Entry, Event, MessageId};

pub type ConnKey = (String, u32);

/// How late the broker may end an expired session after the client's last
/// connection ended plus its expiry: keepalive finding a silent client
/// (1.5 times at most 5 s), and the timer's tick.
pub const EXPIRY_LATE: Duration = Duration::from_millis(8_000);

#[derive(Debug, Clone)]
pub struct Conn {
    pub start: Duration,
    /// When its CONNECT went out: it lived at the broker from no later
    /// than then, so a restart since ended it there even if its CONNACK,
    /// sent before, came after (`Model::restarted_during`).
    pub connect_sent: Duration,
    /// When it ended and how; None if it outlived the run.
    pub end: Option<(Duration, Ending)>,
    /// From here on it reads nothing or acknowledges nothing.
    pub impaired_from: Option<Duration>,
    /// From here on it sends nothing, pings included: the broker may end
    /// it any time after, long before its client hears of it.
    pub silent_from: Option<Duration>,
    pub session: usize,
    pub will: Option<(String, QoS, bool)>,
    /// Seconds the broker waits before sending the will (5.0).
    pub will_delay: u32,
    /// Its link was held at some point while it lived.
    pub held: bool,
    /// Its CONNACK said the broker had a session of its client id.
    pub session_present: bool,
    /// Its CONNECT asked for a clean start.
    pub clean: bool,
    pub v5: bool,
    /// The session expiry it asked for (see `Event::ConnectSent`).
    pub expiry: u32,
    pub keep_alive: u16,
    /// A hostile client's: the broker may drop what is for it.
    pub adversary: bool,
    /// The session expiry its DISCONNECT set (5.0), if it set one.
    pub disconnect_expiry: Option<u32>,
}

impl Conn {
    pub fn end_at(&self, run_end: Duration) -> Duration {
        self.end.map_or(run_end, |(at, _)| at)
    }

    /// Until when it read and acknowledged everything. An adversary's
    /// never was: its session queue is over `queued_bytes_max` and its
    /// outbound queue over `outbound_bytes_max` by design, and the broker
    /// may drop (and count) any message for it, so no delivery window
    /// holds the broker to account for it as a receiver. What it publishes
    /// and what it must never be sent are checked as for anyone.
    pub fn healthy_until(&self, run_end: Duration) -> Duration {
        if self.adversary {
            return self.start;
        }
        let end = self.end_at(run_end);
        self.impaired_from.map_or(end, |at| at.min(end))
    }
}

#[derive(Debug, Clone)]
pub struct Subscription {
    pub session: usize,
    /// The connection its SUBSCRIBE went on, and that SUBSCRIBE's packet
    /// id: what its SUBACK is matched by.
    pub sent_on: (u32, u16),
    pub filter: TopicFilter,
    pub requested: QoS,
    pub granted: Option<QoS>,
    pub sent_at: Duration,
    pub acked_at: Option<Duration>,
    /// UNSUBACK, or the end of the session.
    pub end: Duration,
    /// When an UNSUBSCRIBE for it first went out; without its UNSUBACK,
    /// the broker may or may not have removed the subscription, at any
    /// time from then on.
    pub unsubscribe_sent: Option<Duration>,
    /// The Subscription Identifier it was made with (5.0).
    pub sub_id: Option<u32>,
    /// No Local, Retain As Published and Retain Handling (5.0).
    pub options: SubscriptionOptions,
}

impl Subscription {
    /// A `$share/{group}/{filter}` subscription: one member of the group
    /// gets each message.
    pub fn is_shared(&self) -> bool {
        self.filter.as_str().starts_with("$share/")
    }
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub conn: ConnKey,
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    pub empty: bool,
    pub sent_at: Duration,
    pub acked_at: Option<Duration>,
    pub resent: bool,
    /// Message Expiry Interval in seconds (5.0).
    pub expiry: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub conn: ConnKey,
    pub at: Duration,
    pub topic: String,
    pub payload: String,
    pub qos: QoS,
    pub retain: bool,
    pub first: bool,
    pub dup: bool,
    pub sub_ids: Vec<u32>,
    /// The Message Expiry Interval it carried.
    pub expiry: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Model {
    pub conns: BTreeMap<ConnKey, Conn>,
    /// For each session, the client and the connections in it.
    pub sessions: Vec<(String, Vec<ConnKey>)>,
    pub subscriptions: Vec<Subscription>,
    pub published: BTreeMap<MessageId, Sent>,
    pub received: Vec<Received>,
    pub restarts: Vec<Duration>,
    /// Each held link's client, and when the hold began and ended.
    pub holds: Vec<(String, Duration, Duration)>,
    /// Jumps of the broker's clock: when, and by how much.
    pub clock_jumps: Vec<(Duration, Duration)>,
    /// When each client's host was partitioned and crashed, if it was.
    pub silent_crashes: BTreeMap<String, Duration>,
    /// Connections whose CONNECT went out, by client, with the clean flag
    /// and the session expiry they asked for.
    pub connects_sent: Vec<(Duration, String, bool, u32)>,
    /// Each connection's protocol, session expiry, keepalive and whether
    /// it is an adversary's, from its CONNECT.
    pub connect_info: BTreeMap<ConnKey, (bool, u32, u16, bool)>,
    /// What clients saw the broker do wrong by themselves.
    pub violations: Vec<String>,
    pub run_end: Duration,
    /// Each connection's client id and when its CONNECT went out: for a
    /// CONNECT with an empty one, the id the broker assigned, or one
    /// unique to the connection if it did not say (3.1.1).
    pub client_ids: BTreeMap<ConnKey, (String, Duration)>,
    /// The connections whose CONNECT had an empty client id, and the id
    /// their CONNACK assigned.
    pub assigned: BTreeMap<ConnKey, Option<String>>,
    /// The user name and password of each connection that gave either.
    pub logins: BTreeMap<ConnKey, (Option<String>, Option<String>)>,
    /// Each connection the broker refused, when and with which code.
    pub refused: BTreeMap<ConnKey, (Duration, String)>,
    /// The connections not plain TCP to the plain port, and how they went.
    pub wires: BTreeMap<ConnKey, crate::workload::Wire>,
    /// TLS handshakes that failed: when, whose, and why.
    pub handshakes_failed: Vec<(Duration, String, String)>,
    /// Clients off the plain wire that found no port to connect to, and
    /// when they gave up.
    pub gave_up: Vec<(Duration, String)>,
    /// CONNECTs off the plain wire that got no CONNACK: when the client
    /// stopped waiting, and whether the broker had closed the connection.
    pub unanswered: BTreeMap<ConnKey, (Duration, bool)>,
    /// What each probe's TLS ClientHello to the plain port got back, and
    /// how long after it the broker closed the connection, if it did.
    pub hello_answers: BTreeMap<String, (Duration, Vec<u8>, Option<Duration>)>,

    /// Publishes the ACL does not let their publishers write
    /// (`Model::secure`), which nobody is owed.
    pub denied: BTreeMap<MessageId, Sent>,
    /// The scenario's users and ACL, if it has any.
    pub guard: super::access::Guard,
    /// For each session, the positions in `subscriptions` of its own, in
    /// order: the checks look a session's subscriptions up for every
    /// delivery, and scanning them all was most of their time.
    subs_by_session: Vec<Vec<usize>>,
    /// What `Model::matches` said, by filter and topic: the checks ask it
    /// the same few questions some hundred thousand times.
    match_cache: RefCell<BTreeMap<String, BTreeMap<String, bool>>>,
}

impl Model {
    pub fn build(entries: &[Entry], run_end: Duration) -> Model {
        let mut model = Model {
            run_end,
            ..Model::default()
        };
        let mut entries = entries.to_vec();
        entries.sort_by_key(|e| e.at);
        let mut last_session: BTreeMap<String, usize> = BTreeMap::new();
        for Entry { at, event } in &entries {
            model.apply(*at, event, &mut last_session);
        }
        model.close_subscriptions();
        model.subs_by_session = vec![Vec::new(); model.sessions.len()];
        for (i, sub) in model.subscriptions.iter().enumerate() {
            model.subs_by_session[sub.session].push(i);
        }
        model
    }

    /// The subscriptions of `session`, in the order of `subscriptions`.
    pub fn subscriptions_of(&self, session: usize) -> impl Iterator<Item = &Subscription> + '_ {
        self.subs_by_session
            .get(session)
            .into_iter()
            .flatten()
            .map(|&i| &self.subscriptions[i])
    }

    /// `Model::matches`, remembered.
    pub fn filter_matches(&self, filter: &TopicFilter, topic: &str) -> bool {
        let known = self
            .match_cache
            .borrow()
            .get(filter.as_str())
            .and_then(|topics| topics.get(topic))
            .copied();
        known.unwrap_or_else(|| {
            let matches = Model::matches(filter, topic);
            self.match_cache
                .borrow_mut()
                .entry(filter.as_str().to_owned())
                .or_default()
                .insert(topic.to_owned(), matches);
            matches
        })
    }

    fn apply(&mut self, at: Duration, event: &Event, last_session: &mut BTreeMap<String, usize>) {
        match event {
            Event::ConnectSent { .. }
            | Event::Connected { .. }
            | Event::Paused { .. }
            | Event::Hung { .. }
            | Event::Ended { .. }
            | Event::Held { .. } => self.apply_connection(at, event, last_session),
            Event::SubscribeSent { .. }
            | Event::Subscribed { .. }
            | Event::UnsubscribeSent { .. }
            | Event::Unsubscribed { .. } => self.apply_subscription(at, event),
            Event::PublishSent { .. }
            | Event::PublishResent { .. }
            | Event::Acked { .. }
            | Event::Received { .. } => self.apply_message(at, event),
            Event::Login {
                client,
                conn,
                user,
                password,
            } => {
                let login = (user.clone(), password.clone());
                self.logins.insert((client.clone(), *conn), login);
            }
            Event::Wire { client, conn, wire } => {
                self.wires.insert((client.clone(), *conn), *wire);
            }
            Event::HandshakeFailed { client, error } => {
                let failure = (at, client.clone(), error.clone());
                self.handshakes_failed.push(failure);
            }
            Event::GaveUp { client } => self.gave_up.push((at, client.clone())),
            Event::Unanswered {
                client,
                conn,
                closed,
            } => {
                self.unanswered
                    .insert((client.clone(), *conn), (at, *closed));
            }
            Event::HelloAnswered {
                client,
                answer,
                closed_after,
            } => {
                let answered = (at, answer.clone(), *closed_after);
                self.hello_answers.insert(client.clone(), answered);
            }
            Event::AssignedId { client, conn, id } => {
                let key = (client.clone(), *conn);
                let named = id.clone().unwrap_or_else(|| format!("(unnamed {key:?})"));
                if let Some((client_id, _)) = self.client_ids.get_mut(&key) {
                    *client_id = named;
                }
                self.assigned.insert(key, id.clone());
            }
            Event::ExpiryOnDisconnect {
                client,
                conn,
                expiry,
            } => {
                if let Some(c) = self.conns.get_mut(&(client.clone(), *conn)) {
                    c.disconnect_expiry = Some(*expiry);
                }
            }
            Event::Refused { client, conn, code } => {
                let refusal = (at, code.clone());
                self.refused.insert((client.clone(), *conn), refusal);
            }
            Event::BrokerRestarted => self.restarts.push(at),
            Event::ClockJumped { by } => self.clock_jumps.push((at, *by)),
            Event::Released { client } => {
                let open = self
                    .holds
                    .iter_mut()
                    .rev()
                    .find(|(c, _, end)| c == client && *end == Duration::MAX);
                if let Some((_, _, end)) = open {
                    *end = at;
                }
            }
            Event::SilentlyCrashed { client } => {
                self.silent_crashes.insert(client.clone(), at);
            }
            Event::Violation { client, conn, what } => self
                .violations
                .push(format!("({client:?}, {conn}) at {at:?}: {what}")),
        }
    }

    /// Connections and the sessions they belong to.
    fn apply_connection(
        &mut self,
        at: Duration,
        event: &Event,
        last_session: &mut BTreeMap<String, usize>,
    ) {
        match event {
            Event::ConnectSent {
                client,
                client_id,
                conn,
                clean,
                v5,
                expiry,
                keep_alive,
                adversary,
            } => {
                let key = (client.clone(), *conn);
                self.client_ids.insert(key.clone(), (client_id.clone(), at));
                self.connect_info
                    .insert(key, (*v5, *expiry, *keep_alive, *adversary));
                self.connects_sent
                    .push((at, client.clone(), *clean, *expiry))
            }
            Event::Connected {
                client,
                conn,
                clean,
                session_present,
                will,
                will_delay,
            } => {
                let session = match last_session.get(client) {
                    Some(&s) if !clean && *session_present => s,
                    _ => {
                        self.sessions.push((client.clone(), Vec::new()));
                        self.sessions.len() - 1
                    }
                };
                last_session.insert(client.clone(), session);
                let key = (client.clone(), *conn);
                self.sessions[session].1.push(key.clone());
                let (v5, expiry, keep_alive, adversary) =
                    self.connect_info.get(&key).copied().unwrap_or_default();
                // Held between its CONNECT and its CONNACK: what the broker
                // sent it then, a resumed session's queue, came late
                // (partition_heal seed 9950152: a message sent before it
                // expired, read after).
                let connect_sent = self.client_ids.get(&key).map_or(at, |(_, sent)| *sent);
                let held =
                    (self.holds.iter()).any(|(c, _, end)| c == client && *end >= connect_sent);
                let conn = Conn {
                    start: at,
                    connect_sent,
                    end: None,
                    impaired_from: None,
                    silent_from: None,
                    session,
                    will: will.clone(),
                    will_delay: *will_delay,
                    held,
                    session_present: *session_present,
                    clean: *clean,
                    v5,
                    expiry,
                    keep_alive,
                    adversary,
                    disconnect_expiry: None,
                };
                self.conns.insert(key, conn);
            }
            Event::Paused { client, conn } => {
                if let Some(c) = self.conns.get_mut(&(client.clone(), *conn)) {
                    c.impaired_from.get_or_insert(at);
                }
            }
            Event::Hung { client, conn } => {
                if let Some(c) = self.conns.get_mut(&(client.clone(), *conn)) {
                    c.impaired_from.get_or_insert(at);
                    c.silent_from.get_or_insert(at);
                }
            }
            Event::Ended { client, conn, how } => {
                if let Some(c) = self.conns.get_mut(&(client.clone(), *conn)) {
                    c.end.get_or_insert((at, *how));
                }
            }
            Event::Held { client } => {
                self.holds.push((client.clone(), at, Duration::MAX));
                for ((c, _), conn) in self.conns.iter_mut() {
                    if c == client && conn.end.is_none() {
                        conn.held = true;
                    }
                }
            }
            _ => unreachable!("apply sorts events by kind"),
        }
    }

    /// Subscriptions asked for, granted and ended.
    fn apply_subscription(&mut self, at: Duration, event: &Event) {
        match event {
            Event::SubscribeSent {
                client,
                conn,
                filter,
                qos,
                sub_id,
                options,
                packet_id,
            } => {
                let session = self.conns[&(client.clone(), *conn)].session;
                self.subscriptions.push(Subscription {
                    sent_on: (*conn, *packet_id),
                    sub_id: *sub_id,
                    options: options.unwrap_or(SubscriptionOptions::qos(*qos)),
                    session,
                    filter: TopicFilter::new(filter).expect("plan filters are valid"),
                    requested: *qos,
                    granted: None,
                    sent_at: at,
                    acked_at: None,
                    end: Duration::MAX,
                    unsubscribe_sent: None,
                });
            }
            Event::Subscribed {
                client,
                conn,
                filter,
                granted,
                packet_id,
            } => {
                let session = self.conns[&(client.clone(), *conn)].session;
                let same = |s: &Subscription| s.session == session && s.filter.as_str() == filter;
                // By its packet id: the latest SUBSCRIBE to the filter is
                // not always the one answered (slow_subscriber seed 180:
                // two to `t/+` in flight, the first SUBACK was taken as
                // the second's, and each got the other's grant).
                let answered = |s: &Subscription| s.sent_on == (*conn, *packet_id);
                let Some(index) = self
                    .subscriptions
                    .iter()
                    .position(|s| same(s) && answered(s) && s.acked_at.is_none())
                else {
                    return;
                };
                if granted.is_some() {
                    // A SUBSCRIBE to a filter the session holds replaces
                    // it [MQTT-3.8.4-3]: the old grant covers nothing
                    // routed after its SUBACK.
                    for old in self.subscriptions.iter_mut().filter(|s| same(s)) {
                        if old.acked_at.is_some() && old.end > at {
                            old.end = at;
                        }
                    }
                }
                let sub = &mut self.subscriptions[index];
                sub.acked_at = Some(at);
                sub.granted = *granted;
            }
            Event::UnsubscribeSent {
                client,
                conn,
                filter,
            } => {
                for sub in self.subscriptions_to(client, *conn, filter) {
                    sub.unsubscribe_sent.get_or_insert(at);
                }
            }
            Event::Unsubscribed {
                client,
                conn,
                filter,
            } => {
                for sub in self.subscriptions_to(client, *conn, filter) {
                    if sub.end == Duration::MAX {
                        sub.end = at;
                    }
                }
            }
            _ => unreachable!("apply sorts events by kind"),
        }
    }

    /// Messages published, acknowledged and received.
    fn apply_message(&mut self, at: Duration, event: &Event) {
        match event {
            Event::PublishSent {
                client,
                conn,
                id,
                topic,
                qos,
                retain,
                empty,
                expiry,
            } => {
                let sent = Sent {
                    expiry: *expiry,
                    conn: (client.clone(), *conn),
                    topic: topic.clone(),
                    qos: *qos,
                    retain: *retain,
                    empty: *empty,
                    sent_at: at,
                    acked_at: None,
                    resent: false,
                };
                self.published.insert(id.clone(), sent);
            }
            Event::PublishResent { id, .. } => {
                if let Some(sent) = self.published.get_mut(id) {
                    sent.resent = true;
                }
            }
            Event::Acked { id, .. } => {
                if let Some(sent) = self.published.get_mut(id) {
                    sent.acked_at = Some(at);
                }
            }
            Event::Received {
                client,
                conn,
                topic,
                payload,
                qos,
                retain,
                first,
                dup,
                sub_ids,
                expiry,
                ..
            } => self.received.push(Received {
                dup: *dup,
                sub_ids: sub_ids.clone(),
                expiry: *expiry,
                conn: (client.clone(), *conn),
                at,
                topic: topic.clone(),
                payload: payload.clone(),
                qos: *qos,
                retain: *retain,
                first: *first,
            }),
            _ => unreachable!("apply sorts events by kind"),
        }
    }

    /// The subscriptions to `filter` of the session `(client, conn)` is in.
    fn subscriptions_to<'a>(
        &'a mut self,
        client: &str,
        conn: u32,
        filter: &'a str,
    ) -> impl Iterator<Item = &'a mut Subscription> + 'a {
        let session = self.conns[&(client.to_owned(), conn)].session;
        self.subscriptions
            .iter_mut()
            .filter(move |sub| sub.session == session && sub.filter.as_str() == filter)
    }

    /// A subscription also ends with its session: with its last connection
    /// for a clean one, when it expires for a 5.0 one, at a broker restart
    /// for any. Late rather than early where the broker's view can differ.
    fn close_subscriptions(&mut self) {
        let session_end: Vec<Duration> = (0..self.sessions.len())
            .map(|s| self.session_end(s))
            .collect();
        for sub in &mut self.subscriptions {
            sub.end = sub.end.min(session_end[sub.session]);
        }
    }

    pub fn session_end(&self, session: usize) -> Duration {
        let conns = &self.sessions[session].1;
        let first = &self.conns[&conns[0]];
        let last = &self.conns[conns.last().expect("sessions have a connection")];
        let restart = self.restart_after(first.start).unwrap_or(Duration::MAX);
        let expiry_end = match self.expiry_at_end(session) {
            0 => last.end_at(self.run_end),
            secs if secs >= crate::workload::EXPIRY_OUTLIVES_RUN => Duration::MAX,
            secs => {
                let end = last.end_at(self.run_end);
                self.after_broker(end, Duration::from_secs(u64::from(secs))) + EXPIRY_LATE
            }
        };
        // A clean CONNECT with its client id ends it [MQTT-3.1.2-4]: by the
        // CONNACK at the latest.
        let client = &self.sessions[session].0;
        let replaced = self.sessions[session + 1..]
            .iter()
            .filter(|(c, _)| c == client)
            .map(|(_, conns)| self.conns[&conns[0]].start)
            .min()
            .unwrap_or(Duration::MAX);
        restart.min(expiry_end).min(replaced)
    }

    /// How long the session outlives its connections, as its first
    /// connection asked (a clean CONNECT starts a session of its own).
    pub fn session_expiry(&self, session: usize) -> u32 {
        let first = &self.sessions[session].1[0];
        self.connect_info.get(first).map_or(0, |info| info.1)
    }

    /// The session's expiry once its last connection ended: what its
    /// DISCONNECT set, if it set one the broker must take (not from 0:
    /// [MQTT-3.14.2-2]), else what its first connection asked.
    pub fn expiry_at_end(&self, session: usize) -> u32 {
        let asked = self.session_expiry(session);
        let last = self.sessions[session]
            .1
            .last()
            .expect("sessions have a connection");
        match self.conns[last].disconnect_expiry {
            Some(set) if asked != 0 => set,
            _ => asked,
        }
    }

    /// Whether another connection with the same client id sent CONNECT
    /// while `key` lived: a takeover, which sends the will whatever came
    /// after. The broker takes over when that CONNECT arrives, which can be
    /// before its client hears the CONNACK, so the send time is what counts.
    pub fn taken_over(&self, key: &ConnKey, until: Duration) -> bool {
        let Some((id, _)) = self.client_ids.get(key) else {
            return false;
        };
        let start = self.conns[key].start;
        self.client_ids.iter().any(|(other, (other_id, sent))| {
            other != key && other_id == id && *sent >= start && *sent <= until
        })
    }

    /// When, in the world's time, the broker's clock has moved on by
    /// `interval` since `from`: MQTT's intervals run on the broker's clock,
    /// which a jump puts ahead (`sim/src/clock.rs`). Without jumps,
    /// `from + interval`.
    pub fn after_broker(&self, from: Duration, interval: Duration) -> Duration {
        let mut at = from;
        let mut left = interval;
        for &(jump, by) in self.clock_jumps.iter().filter(|(jump, _)| *jump >= from) {
            if jump - at >= left {
                break;
            }
            left -= jump - at;
            at = jump;
            if by >= left {
                return at;
            }
            left -= by;
        }
        at + left
    }

    /// When `key`'s link was first held while it lived: from then on the
    /// broker heard nothing from it, and keepalive may have ended it.
    pub fn held_from(&self, key: &ConnKey) -> Option<Duration> {
        let conn = self.conns.get(key)?;
        let end = conn.end.map_or(Duration::MAX, |(end, _)| end);
        self.holds
            .iter()
            .filter(|(client, from, _)| client == &key.0 && *from >= conn.start && *from <= end)
            .map(|(_, from, _)| *from)
            .min()
    }

    /// Whether the client's link was held within a second after `at`: what
    /// it sent just before (a DISCONNECT) reached the broker only later.
    pub fn held_soon_after(&self, client: &str, at: Duration) -> bool {
        self.holds.iter().any(|(held, from, _)| {
            held == client && *from >= at && *from <= at + Duration::from_secs(1)
        })
    }

    /// Whether the client's link was held at any time between `from`
    /// and `to`.
    pub fn held_between(&self, client: &str, from: Duration, to: Duration) -> bool {
        (self.holds.iter()).any(|(held, start, end)| held == client && *start <= to && *end >= from)
    }

    pub fn restart_after(&self, at: Duration) -> Option<Duration> {
        self.restarts.iter().copied().find(|r| *r >= at)
    }

    pub fn restart_between(&self, from: Duration, to: Duration) -> bool {
        self.restarts.iter().any(|r| *r >= from && *r <= to)
    }

    /// Whether a restart of the broker ended `conn` by `to`: one after
    /// its CONNECT went out (broker_bounce seed 73813: a CONNACK sent just
    /// before a restart came just after it, and the connection, which the
    /// restart had ended, closed at once).
    pub fn restarted_during(&self, conn: &Conn, to: Duration) -> bool {
        self.restart_between(conn.connect_sent, to)
    }

    pub fn last_restart(&self) -> Duration {
        self.restarts.last().copied().unwrap_or(Duration::ZERO)
    }

    /// Whether `filter` matches `topic`; a shared subscription by the
    /// filter after its group name.
    pub fn matches(filter: &TopicFilter, topic: &str) -> bool {
        let inner = filter
            .as_str()
            .strip_prefix("$share/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(_, inner)| TopicFilter::new(inner).ok());
        let filter = inner.as_ref().unwrap_or(filter);
        spec_matches(filter.as_str(), topic)
    }
}

/// Whether `filter` matches `topic`, by the spec's words [MQTT-4.7] and not
/// by the broker's code, so that a bug planted in the broker's matching is
/// not the model's too: `#` matches the parent level and everything below,
/// `+` one level, and neither leading matches a `$` topic.
fn spec_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match (f, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(level)) if f == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

impl Model {
    /// Whether `r` came through one of its session's shared subscriptions,
    /// as its Subscription Identifiers say.
    pub fn via_shared(&self, r: &Received) -> bool {
        self.shared_group_of(r).is_some()
    }

    /// The shared subscription `r` came through, if any.
    pub fn shared_group_of(&self, r: &Received) -> Option<&str> {
        let session = self.conns.get(&r.conn)?.session;
        self.subscriptions_of(session)
            .find(|s| s.is_shared() && s.sub_id.is_some_and(|id| r.sub_ids.contains(&id)))
            .map(|s| s.filter.as_str())
    }

    /// How long after `key` ends its will is due: its Will Delay Interval,
    /// or the session's expiry if sooner (5.0); at once in 3.1.1.
    pub fn will_delay(&self, key: &ConnKey) -> u32 {
        let conn = &self.conns[key];
        if conn.v5 {
            conn.will_delay.min(conn.expiry)
        } else {
            0
        }
    }

    /// The client's next connection, if it resumed `key`'s session, and
    /// when its CONNECT went out.
    pub fn resumed_by(&self, key: &ConnKey) -> Option<(&Conn, Duration)> {
        let next = (key.0.clone(), key.1 + 1);
        let conn = self.conns.get(&next)?;
        let (_, sent) = self.client_ids.get(&next)?;
        (conn.session == self.conns[key].session).then_some((conn, *sent))
    }

    /// When `key`'s client sent the CONNECT of its next connection, one
    /// that asked to resume its session, if no CONNACK came back to it:
    /// the client was gone first, but the broker may have taken the
    /// CONNECT, and resumed the session with it.
    fn unanswered_resume(&self, key: &ConnKey) -> Option<Duration> {
        let next = (key.0.clone(), key.1 + 1);
        if self.conns.contains_key(&next) {
            return None;
        }
        let (_, sent) = self.client_ids.get(&next)?;
        self.connects_sent
            .iter()
            .any(|(at, client, clean, _)| at == sent && client == &key.0 && !clean)
            .then_some(*sent)
    }

    /// Whether `key`'s will may have been cancelled by a resumed session
    /// within its delay: the broker may have seen the end as late as
    /// keepalive allows.
    pub fn will_cancelled(&self, key: &ConnKey) -> bool {
        let delay = self.will_delay(key);
        let Some((ended, _)) = self.conns[key].end else {
            return false;
        };
        let latest = ended
            + Duration::from_millis(7_500)
            + Duration::from_secs(u64::from(delay))
            + Duration::from_millis(500);
        // Seed 9107256 of mqtt5: c35 dropped with a will delayed 2 s, and
        // its next CONNECT, sent 1.97 s later, reached the broker, which
        // resumed the session and rightly sent no will; the client
        // crashed before the CONNACK came.
        let resumed = self
            .resumed_by(key)
            .map(|(_, sent)| sent)
            .or_else(|| self.unanswered_resume(key));
        delay > 0 && resumed.is_some_and(|sent| sent <= latest)
    }
}
