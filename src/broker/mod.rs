//! The routing state: sessions, subscriptions, retained messages and the QoS
//! 1/2 flows. Pure and deterministic: no clocks, no I/O, no tokio; each method
//! takes what a connection did and appends what must be sent to `effects`,
//! which the runtime drains and carries out. Maps are ordered, so the same
//! inputs give the same outputs in the same order.

mod index;
mod retained;
mod session;

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::codec::{
    Ack, ConnAck, Connect, ConnectCode, Packet, PacketId, Publish, QoS, ReasonCode, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};
use crate::config::{Config, PlantedBug};
use crate::topic::TopicName;
pub use index::SubscriptionIndex;
pub use retained::{RetainOutcome, Retained, RetainedStore};
use session::{Inflight, Session, Stage};

/// One TCP connection, for as long as it lives. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// One session, from creation to end. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// What the broker asks of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(ConnId, Packet),
    /// The connection's client id was taken by a newer connection; the broker
    /// has already detached it and published its will.
    TakenOver(ConnId),
}

/// A packet that is well-formed but that this broker will not accept; the
/// connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("topic {topic:?} has more than {max} levels")]
    TooManyLevels { topic: String, max: usize },
}

/// Messages dropped because a limit was reached, by limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// QoS 1/2 messages for a session whose queue was full.
    pub queue_full: u64,
    /// QoS 0 messages for a connection whose outbound queue was full.
    pub outbound_full: u64,
    /// Retained messages for a new topic when the store was full.
    pub retained_full: u64,
}

/// The broker's own counts, for the census.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub sessions_connected: usize,
    pub sessions_offline: usize,
    pub subscriptions: usize,
    pub retained: usize,
    /// QoS 1/2 messages waiting in sessions.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
    pub dropped: Dropped,
}

pub struct Broker {
    config: Config,
    sessions: BTreeMap<SessionId, Session>,
    by_client: BTreeMap<String, SessionId>,
    by_conn: BTreeMap<ConnId, SessionId>,
    index: SubscriptionIndex,
    retained: RetainedStore,
    next_session: u64,
    /// Numbers client ids the broker assigns; a counter, so runs replay.
    next_assigned_id: u64,
    queued: usize,
    inflight: usize,
    dropped: Dropped,
    effects: Vec<Effect>,
    /// Reused by `route` so that a fan-out allocates nothing per message.
    matches: Vec<(SessionId, QoS)>,
}

impl Broker {
    pub fn new(config: Config) -> Broker {
        Broker {
            config,
            sessions: BTreeMap::new(),
            by_client: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            index: SubscriptionIndex::default(),
            retained: RetainedStore::default(),
            next_session: 0,
            next_assigned_id: 0,
            queued: 0,
            inflight: 0,
            dropped: Dropped::default(),
            effects: Vec::new(),
            matches: Vec::new(),
        }
    }

    /// Hands over what the last calls asked for, in order.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    pub fn stats(&self) -> BrokerStats {
        BrokerStats {
            sessions_connected: self.by_conn.len(),
            sessions_offline: self.sessions.len() - self.by_conn.len(),
            subscriptions: self.index.len(),
            retained: self.retained.len(),
            queued: self.queued,
            inflight: self.inflight,
            dropped: self.dropped,
        }
    }

    /// Checks that the counts agree with the sessions and that no session is
    /// over a limit. The simulation calls it as it runs; it is cheap enough
    /// for tests, not for every packet.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.config;
        let (mut subscriptions, mut queued, mut inflight) = (0, 0, 0);
        for (sid, session) in &self.sessions {
            let out = &session.outgoing;
            subscriptions += session.subscriptions.len();
            queued += out.pending.len();
            inflight += out.inflight.len();
            let name = &session.client_id;
            if out.inflight.len() > c.inflight_messages_max {
                return Err(format!(
                    "{name}: {} in flight, over {}",
                    out.inflight.len(),
                    c.inflight_messages_max
                ));
            }
            if out.pending.len() > c.queued_messages_max || out.pending_bytes > c.queued_bytes_max {
                return Err(format!(
                    "{name}: {} queued ({} bytes), over the limit",
                    out.pending.len(),
                    out.pending_bytes
                ));
            }
            if self.by_client.get(name) != Some(sid) {
                return Err(format!("{name}: not indexed by its client id"));
            }
            if let Some(conn) = session.conn {
                if self.by_conn.get(&conn) != Some(sid) {
                    return Err(format!(
                        "{name}: its connection {conn:?} does not point back"
                    ));
                }
            }
        }
        let counted = (self.index.len(), self.queued, self.inflight);
        if counted != (subscriptions, queued, inflight) {
            return Err(format!(
                "counts (subscriptions, queued, inflight) {counted:?} disagree with the sessions' {:?}",
                (subscriptions, queued, inflight)
            ));
        }
        if self.by_client.len() != self.sessions.len() {
            return Err("client id index and sessions differ in size".into());
        }
        Ok(())
    }

    /// Connections attached to a session.
    pub fn attached(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.by_conn.keys().copied()
    }

    /// The runtime dropped a QoS 0 message because a connection's outbound
    /// queue was full.
    pub fn count_outbound_drop(&mut self) {
        self.dropped.outbound_full += 1;
    }

    /// The client id of the session a connection is attached to.
    pub fn client_id(&self, conn: ConnId) -> Option<&str> {
        let sid = self.by_conn.get(&conn)?;
        Some(&self.sessions[sid].client_id)
    }

    /// Handles CONNECT; returns the client id when it is accepted. When it is
    /// refused, the CONNACK saying why is in the effects and the caller
    /// closes the connection.
    pub fn connect(&mut self, conn: ConnId, connect: Connect) -> Option<String> {
        debug_assert!(
            !self.by_conn.contains_key(&conn),
            "one CONNECT per connection"
        );
        if connect.keep_alive > self.config.keep_alive_max_secs {
            return self.refuse(conn, ConnectCode::IdentifierRejected);
        }
        let client_id = if connect.client_id.is_empty() {
            if !connect.clean_session {
                // [MQTT-3.1.3-8]
                return self.refuse(conn, ConnectCode::IdentifierRejected);
            }
            self.assign_client_id()
        } else {
            connect.client_id.clone()
        };
        if let Some(&sid) = self.by_client.get(&client_id) {
            if let Some(old) = self.sessions[&sid].conn {
                tracing::info!(client_id, ?old, ?conn, "session taken over");
                self.connection_lost(old, false);
                self.effects.push(Effect::TakenOver(old));
            }
            // A clean session ended with its old connection just above.
            if connect.clean_session && self.sessions.contains_key(&sid) {
                self.remove_session(sid);
            }
        }
        let (sid, resumed) = match self.by_client.get(&client_id) {
            Some(&sid) => (sid, true),
            None if self.sessions.len() >= self.config.sessions_max => {
                tracing::warn!(
                    client_id,
                    max = self.config.sessions_max,
                    "session limit reached"
                );
                return self.refuse(conn, ConnectCode::ServerUnavailable);
            }
            None => (self.create_session(&client_id), false),
        };
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("session just found or made");
        session.conn = Some(conn);
        session.clean = connect.clean_session;
        session.version = connect.version;
        session.will = connect.will;
        self.by_conn.insert(conn, sid);
        self.effects.push(Effect::Send(
            conn,
            Packet::ConnAck(ConnAck {
                session_present: resumed,
                code: ConnectCode::Accepted,
            }),
        ));
        if resumed {
            self.resend_inflight(sid);
        }
        Some(client_id)
    }

    fn refuse(&mut self, conn: ConnId, code: ConnectCode) -> Option<String> {
        let connack = ConnAck {
            session_present: false,
            code,
        };
        self.effects
            .push(Effect::Send(conn, Packet::ConnAck(connack)));
        None
    }

    fn assign_client_id(&mut self) -> String {
        loop {
            self.next_assigned_id += 1;
            let id = format!("tern-{}", self.next_assigned_id);
            if !self.by_client.contains_key(&id) {
                return id;
            }
        }
    }

    fn create_session(&mut self, client_id: &str) -> SessionId {
        self.next_session += 1;
        let sid = SessionId(self.next_session);
        let session = Session::new(client_id.to_owned());
        self.sessions.insert(sid, session);
        self.by_client.insert(client_id.to_owned(), sid);
        sid
    }

    fn remove_session(&mut self, sid: SessionId) {
        let session = self.sessions.remove(&sid).expect("removing a live session");
        self.by_client.remove(&session.client_id);
        for filter in session.subscriptions.keys() {
            self.index.remove(filter, sid);
        }
        self.queued -= session.outgoing.pending.len();
        self.inflight -= session.outgoing.inflight.len();
    }

    /// The connection ended: by DISCONNECT (`graceful`), or by anything else,
    /// which publishes the will. A clean session ends with it. Calling it for
    /// a connection the broker no longer knows (taken over) does nothing.
    pub fn connection_lost(&mut self, conn: ConnId, graceful: bool) {
        let Some(sid) = self.by_conn.remove(&conn) else {
            return;
        };
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("by_conn points at live sessions");
        session.conn = None;
        let will = session.will.take();
        if session.clean {
            self.remove_session(sid);
        }
        let graceful = graceful || self.config.planted(PlantedBug::NoWillOnCrash);
        if let (Some(will), false) = (will, graceful) {
            let publish = Publish {
                dup: false,
                qos: will.qos,
                retain: will.retain,
                topic: will.topic,
                packet_id: None,
                payload: will.payload,
            };
            self.route(&publish);
        }
    }

    fn sid_of(&self, conn: ConnId) -> SessionId {
        *self
            .by_conn
            .get(&conn)
            .expect("packets after CONNECT come from attached connections")
    }

    fn session_mut(&mut self, sid: SessionId) -> &mut Session {
        self.sessions
            .get_mut(&sid)
            .expect("by_conn and the index point at live sessions")
    }

    fn check_levels(&self, topic: &str) -> Result<(), BrokerError> {
        let max = self.config.topic_levels_max;
        if topic.split('/').count() > max {
            return Err(BrokerError::TooManyLevels {
                topic: topic.to_owned(),
                max,
            });
        }
        Ok(())
    }

    /// A PUBLISH from a client. It is routed before it is acknowledged, so
    /// an acknowledged message is already in every subscriber's queue.
    pub fn publish(&mut self, conn: ConnId, publish: Publish) -> Result<(), BrokerError> {
        self.check_levels(publish.topic.as_str())?;
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => self.route(&publish),
            (QoS::AtLeastOnce, Some(id)) => {
                self.route(&publish);
                self.effects
                    .push(Effect::Send(conn, Packet::PubAck(Ack::success(id))));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // Method B of [MQTT-4.3.3]: route now, remember the id until
                // PUBREL so that a resend is not routed twice.
                let sid = self.sid_of(conn);
                if self.session_mut(sid).incoming_qos2.insert(id) {
                    self.route(&publish);
                }
                self.effects
                    .push(Effect::Send(conn, Packet::PubRec(Ack::success(id))));
            }
            (_, None) => unreachable!("the decoder gives QoS 1/2 a packet id"),
        }
        Ok(())
    }

    /// Publishes a message of the broker's own (`$SYS`), retained.
    pub fn publish_internal(&mut self, topic: TopicName, payload: Bytes) {
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic,
            packet_id: None,
            payload,
        };
        self.route(&publish);
    }

    fn route(&mut self, publish: &Publish) {
        if publish.retain {
            let max = self.config.retained_messages_max;
            let outcome =
                self.retained
                    .set(&publish.topic, publish.payload.clone(), publish.qos, max);
            if outcome == RetainOutcome::Refused {
                self.dropped.retained_full += 1;
                tracing::warn!(topic = %publish.topic, max, "retained store full; message not retained");
            }
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.index.matches(&publish.topic, &mut matches);
        // One copy per session, at the highest QoS any of its filters grants.
        matches.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        matches.dedup_by_key(|m| m.0);
        for &(sid, granted) in &matches {
            let message = Publish {
                dup: false,
                qos: publish.qos.min(granted),
                // [MQTT-3.3.1-9]: retain is cleared for live subscriptions.
                retain: false,
                topic: publish.topic.clone(),
                packet_id: None,
                payload: publish.payload.clone(),
            };
            self.deliver(sid, message);
        }
        self.matches = matches;
    }

    /// Sends `message` to the session now, queues it, or drops and counts it.
    fn deliver(&mut self, sid: SessionId, message: Publish) {
        let max_inflight = self.config.inflight_messages_max;
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("the index holds live sessions");
        if message.qos == QoS::AtMostOnce {
            // QoS 0 is not queued for offline clients, as in mosquitto.
            if let Some(conn) = session.conn {
                self.effects
                    .push(Effect::Send(conn, Packet::Publish(message)));
            }
            return;
        }
        let out = &mut session.outgoing;
        if session.conn.is_some() && out.pending.is_empty() && out.inflight.len() < max_inflight {
            self.send_inflight(sid, message);
        } else if session.conn.is_some() && self.config.planted(PlantedBug::LoseWhenWindowFull) {
            // Planted: lost without a count.
        } else if out.pending.len() < self.config.queued_messages_max
            && out.pending_bytes + message.payload.len() <= self.config.queued_bytes_max
        {
            out.push_pending(message);
            self.queued += 1;
        } else {
            self.dropped.queue_full += 1;
            tracing::debug!(client_id = session.client_id, topic = %message.topic, "session queue full; message dropped");
        }
    }

    fn send_inflight(&mut self, sid: SessionId, mut message: Publish) {
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("sending to a live session");
        let conn = session
            .conn
            .expect("inflight messages go to connected sessions");
        let packet_id = session.outgoing.next_packet_id();
        message.packet_id = Some(packet_id);
        session.outgoing.inflight.push_back(Inflight {
            packet_id,
            stage: Stage::Unacked(message.clone()),
        });
        self.inflight += 1;
        self.effects
            .push(Effect::Send(conn, Packet::Publish(message)));
    }

    /// Moves queued messages into the inflight window while there is room.
    fn fill_window(&mut self, sid: SessionId) {
        let max_inflight = self.config.inflight_messages_max;
        loop {
            let session = self.sessions.get_mut(&sid).expect("filling a live session");
            if session.conn.is_none() || session.outgoing.inflight.len() >= max_inflight {
                return;
            }
            let Some(message) = session.outgoing.pop_pending() else {
                return;
            };
            self.queued -= 1;
            self.send_inflight(sid, message);
        }
    }

    /// On reconnect of a persistent session: every unacknowledged message
    /// again, in its first order, with DUP [MQTT-4.4.0-1]; then the queue.
    fn resend_inflight(&mut self, sid: SessionId) {
        let session = &self.sessions[&sid];
        let conn = session.conn.expect("resending to a connected session");
        let mut inflight: Vec<&Inflight> = session.outgoing.inflight.iter().collect();
        if self.config.planted(PlantedBug::ReorderRedelivery) {
            inflight.reverse();
        }
        for inflight in inflight {
            let packet = match &inflight.stage {
                Stage::Unacked(publish) => Packet::Publish(Publish {
                    dup: true,
                    ..publish.clone()
                }),
                Stage::Released => Packet::PubRel(Ack::success(inflight.packet_id)),
            };
            self.effects.push(Effect::Send(conn, packet));
        }
        self.fill_window(sid);
    }

    /// PUBACK for a QoS 1 message we sent. An unknown id is ignored.
    pub fn puback(&mut self, conn: ConnId, packet_id: PacketId) {
        self.complete(
            conn,
            packet_id,
            |stage| matches!(stage, Stage::Unacked(p) if p.qos == QoS::AtLeastOnce),
        );
    }

    /// PUBCOMP for a QoS 2 message we released.
    pub fn pubcomp(&mut self, conn: ConnId, packet_id: PacketId) {
        self.complete(conn, packet_id, |stage| matches!(stage, Stage::Released));
    }

    fn complete(&mut self, conn: ConnId, packet_id: PacketId, expected: impl Fn(&Stage) -> bool) {
        let sid = self.sid_of(conn);
        let out = &mut self.session_mut(sid).outgoing;
        match out.position(packet_id) {
            Some(i) if expected(&out.inflight[i].stage) => {
                out.inflight.remove(i);
                self.inflight -= 1;
                self.fill_window(sid);
            }
            _ => tracing::debug!(
                ?packet_id,
                "acknowledgement for no message in flight; ignored"
            ),
        }
    }

    /// PUBREC for a QoS 2 message we sent: release it. A repeated PUBREC gets
    /// the PUBREL again.
    pub fn pubrec(&mut self, conn: ConnId, packet_id: PacketId) {
        let sid = self.sid_of(conn);
        let out = &mut self.session_mut(sid).outgoing;
        match out.position(packet_id).map(|i| &mut out.inflight[i].stage) {
            Some(stage @ Stage::Unacked(_)) if stage.qos() == QoS::ExactlyOnce => {
                *stage = Stage::Released
            }
            Some(Stage::Unacked(_)) => {
                tracing::debug!(?packet_id, "PUBREC for a QoS 1 message; ignored");
                return;
            }
            Some(Stage::Released) => {}
            None => {
                tracing::debug!(?packet_id, "PUBREC for no message in flight; ignored");
                return;
            }
        }
        self.effects
            .push(Effect::Send(conn, Packet::PubRel(Ack::success(packet_id))));
    }

    /// PUBREL for a QoS 2 message the client sent: forget its id. PUBCOMP is
    /// sent even for an unknown id, so that the client can finish.
    pub fn pubrel(&mut self, conn: ConnId, packet_id: PacketId) {
        let sid = self.sid_of(conn);
        self.session_mut(sid).incoming_qos2.remove(&packet_id);
        self.effects
            .push(Effect::Send(conn, Packet::PubComp(Ack::success(packet_id))));
    }

    pub fn subscribe(&mut self, conn: ConnId, subscribe: Subscribe) {
        let max_subscriptions = self.config.subscriptions_per_client_max;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut granted = Vec::with_capacity(subscribe.filters.len());
        for (filter, options) in subscribe.filters {
            let too_deep = self.check_levels(filter.as_str()).is_err();
            let sid = self.sid_of(conn);
            let session = self
                .sessions
                .get_mut(&sid)
                .expect("by_conn points at live sessions");
            let is_new = !session.subscriptions.contains_key(&filter);
            if too_deep || (is_new && session.subscriptions.len() >= max_subscriptions) {
                tracing::info!(client_id = session.client_id, %filter, "subscription refused");
                codes.push(ReasonCode::UNSPECIFIED_ERROR);
                continue;
            }
            session.subscriptions.insert(filter.clone(), options.qos);
            self.index.insert(&filter, sid, options.qos);
            codes.push(ReasonCode::granted(options.qos));
            granted.push((sid, filter, options.qos));
        }
        let suback = SubAck {
            packet_id: subscribe.packet_id,
            codes,
        };
        self.effects
            .push(Effect::Send(conn, Packet::SubAck(suback)));
        // [MQTT-3.3.1-6]: retained messages follow the SUBACK, flagged as
        // retained, also when a subscription is replaced. Once per filter:
        // a SUBSCRIBE that repeats `#` must not repeat the whole store.
        let mut seen = std::collections::BTreeSet::new();
        let mut granted: Vec<_> = granted
            .into_iter()
            .rev()
            .filter(|(_, f, _)| seen.insert(f.clone()))
            .collect();
        granted.reverse();
        for (sid, filter, qos) in granted {
            let messages: Vec<Publish> = self
                .retained
                .matching(&filter)
                .map(|(topic, retained)| Publish {
                    dup: false,
                    qos: retained.qos.min(qos),
                    retain: true,
                    topic: topic.clone(),
                    packet_id: None,
                    payload: retained.payload.clone(),
                })
                .collect();
            for message in messages {
                self.deliver(sid, message);
            }
        }
    }

    pub fn unsubscribe(&mut self, conn: ConnId, unsubscribe: Unsubscribe) {
        let sid = self.sid_of(conn);
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("by_conn points at live sessions");
        for filter in &unsubscribe.filters {
            if session.subscriptions.remove(filter).is_some() {
                self.index.remove(filter, sid);
            }
        }
        let unsuback = UnsubAck {
            packet_id: unsubscribe.packet_id,
            codes: Vec::new(),
        };
        self.effects
            .push(Effect::Send(conn, Packet::UnsubAck(unsuback)));
    }
}

#[cfg(test)]
mod tests;
