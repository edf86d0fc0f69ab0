//! The routing state: sessions, subscriptions, retained messages and the QoS
//! 1/2 flows, for MQTT 3.1.1 and 5.0 clients alike. Pure and deterministic:
//! no I/O, no tokio, and no clock of its own: the runtime tells it the time
//! (`set_now`) before each call. Each method takes what a connection did and
//! appends what must be sent to `effects`, which the runtime drains and
//! carries out. Maps are ordered, so the same inputs give the same outputs in
//! the same order.
//!
//! The work is split by what it is about: sessions and their lifetimes here,
//! `routing` for messages and their acknowledgements, `subscribe` for
//! subscriptions and shared-subscription groups.

mod index;
mod retained;
mod routing;
mod session;
mod subscribe;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::codec::{
    ConnAck, Connect, ConnectCode, Disconnect, LastWill, Packet, Properties, Property,
    ProtocolVersion, Publish, ReasonCode,
};
use crate::config::{planted, Config};
pub use index::SubscriptionIndex;
pub use retained::{RetainOutcome, Retained, RetainedStore};
use session::{Session, EXPIRY_NEVER};
use subscribe::Group;

/// One TCP connection, for as long as it lives. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// One session, from creation to end. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// One shared-subscription group (`$share/{group}/{filter}`), while it has
/// members. Never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

/// Milliseconds on the runtime's monotonic clock.
pub type Millis = u64;

/// What the broker asks of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(ConnId, Packet),
    /// An encoded QoS 0 PUBLISH, the same bytes for every session of its
    /// protocol version that gets the message: a fan-out shares one.
    SendFrame(ConnId, Bytes),
    /// The connection's client id was taken by a newer connection; the broker
    /// has already detached it and dealt with its will.
    TakenOver(ConnId),
}

impl Effect {
    /// The connection it is for.
    pub fn conn(&self) -> ConnId {
        match self {
            Effect::Send(conn, _) | Effect::SendFrame(conn, _) | Effect::TakenOver(conn) => *conn,
        }
    }
}

/// A packet that is well-formed but that this broker will not accept; the
/// connection that sent it is closed, and a 5.0 client is told `reason()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    // The topic is the client's, up to 64 KB: it stays out of the reason
    // string sent back, and out of the log.
    #[error("topic has more than {max} levels")]
    TooManyLevels { max: usize },
    #[error("more than {max} QoS 2 messages awaiting release")]
    ReceiveMaximumExceeded { max: u16 },
    #[error("payload is said to be UTF-8 and is not")]
    PayloadFormatInvalid,
    #[error("protocol error: {0}")]
    Protocol(&'static str),
}

impl BrokerError {
    pub fn reason(&self) -> ReasonCode {
        match self {
            BrokerError::TooManyLevels { .. } => ReasonCode::TOPIC_NAME_INVALID,
            BrokerError::ReceiveMaximumExceeded { .. } => ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
            BrokerError::PayloadFormatInvalid => ReasonCode::PAYLOAD_FORMAT_INVALID,
            BrokerError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
        }
    }
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
    /// Messages larger than their receiver's Maximum Packet Size (5.0).
    pub too_large: u64,
    /// Messages whose Message Expiry Interval ran out before they were sent.
    pub expired: u64,
    /// Shared-subscription messages no member could take: a QoS 2 message
    /// already sent to a member whose session then ended, which may not go
    /// to another [MQTT-4.8.2-5 of 5.0], or one whose group has no members.
    pub shared_undeliverable: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.outbound_full
            + self.retained_full
            + self.too_large
            + self.expired
            + self.shared_undeliverable
    }
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

/// What an accepted CONNECT settled for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub client_id: String,
    /// Seconds; the client's, or the Server Keep Alive that replaced it.
    pub keep_alive: u16,
}

pub struct Broker {
    config: Config,
    now: Millis,
    sessions: BTreeMap<SessionId, Session>,
    by_client: BTreeMap<String, SessionId>,
    by_conn: BTreeMap<ConnId, SessionId>,
    index: SubscriptionIndex<SessionId, session::Subscription>,
    /// Shared subscriptions: groups by their filter, and their members.
    shared_index: SubscriptionIndex<GroupId, ()>,
    groups: BTreeMap<GroupId, Group>,
    group_ids: BTreeMap<(String, crate::topic::TopicFilter), GroupId>,
    next_group: u64,
    retained: RetainedStore,
    /// Session expiries and delayed wills, by when they are due. An entry
    /// whose session has since changed is skipped when it comes due.
    timers: BTreeSet<(Millis, SessionId)>,
    next_session: u64,
    /// Numbers client ids the broker assigns; a counter, so runs replay.
    next_assigned_id: u64,
    queued: usize,
    inflight: usize,
    dropped: Dropped,
    effects: Vec<Effect>,
    /// Reused by `route` so that a fan-out allocates nothing per message.
    matches: Vec<(SessionId, session::Subscription)>,
}

impl Broker {
    pub fn new(config: Config) -> Broker {
        Broker {
            config,
            now: 0,
            sessions: BTreeMap::new(),
            by_client: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            index: SubscriptionIndex::default(),
            shared_index: SubscriptionIndex::default(),
            groups: BTreeMap::new(),
            group_ids: BTreeMap::new(),
            next_group: 0,
            retained: RetainedStore::default(),
            timers: BTreeSet::new(),
            next_session: 0,
            next_assigned_id: 0,
            queued: 0,
            inflight: 0,
            dropped: Dropped::default(),
            effects: Vec::new(),
            matches: Vec::new(),
        }
    }

    /// The runtime's clock, read before each call. It never goes back.
    pub fn set_now(&mut self, now: Millis) {
        self.now = self.now.max(now);
    }

    /// Hands over what the last calls asked for, in order.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    /// Whether the last calls asked for nothing.
    pub fn has_no_effects(&self) -> bool {
        self.effects.is_empty()
    }

    /// Hands over what the last calls asked for, in order, by swapping it
    /// with `into`, which must be empty: neither side allocates again.
    pub fn swap_effects(&mut self, into: &mut Vec<Effect>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.effects, into);
    }

    pub fn stats(&self) -> BrokerStats {
        BrokerStats {
            sessions_connected: self.by_conn.len(),
            sessions_offline: self.sessions.len() - self.by_conn.len(),
            subscriptions: self.index.len() + self.shared_members(),
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
            // Released messages cannot be taken back: a session resumed with
            // a smaller Receive Maximum keeps them all in flight.
            let released = out
                .inflight
                .iter()
                .filter(|e| matches!(e.stage, session::Stage::Released))
                .count();
            if out.inflight.len() > session.window.max(released)
                || session.window > c.inflight_messages_max
            {
                return Err(format!(
                    "{name}: {} in flight, over its window of {}",
                    out.inflight.len(),
                    session.window
                ));
            }
            // A resumed session may put back what its client's smaller
            // Receive Maximum does not let it resend yet.
            let put_back: usize = out
                .pending
                .iter()
                .filter(|m| m.resend_id.is_some())
                .map(session::Message::weight)
                .sum();
            if out.pending.len() > c.queued_messages_max + c.inflight_messages_max
                || out.pending_bytes > c.queued_bytes_max + put_back
            {
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
            } else if session.expiry_secs == 0 {
                return Err(format!(
                    "{name}: offline, and should have ended with its connection"
                ));
            }
        }
        let counted = (
            self.index.len() + self.shared_members(),
            self.queued,
            self.inflight,
        );
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

    /// Handles CONNECT. When it is refused, the CONNACK saying why is in the
    /// effects, `None` is returned and the caller closes the connection.
    pub fn connect(&mut self, conn: ConnId, connect: Connect) -> Option<Accepted> {
        debug_assert!(
            !self.by_conn.contains_key(&conn),
            "one CONNECT per connection"
        );
        let v5 = connect.version == ProtocolVersion::V5;
        let mut connack = Properties::new();
        if connect.properties.authentication_method().is_some() {
            // No enhanced authentication method is known yet [MQTT-4.12].
            return self.refuse(conn, ConnectCode::BadAuthenticationMethod);
        }
        let will_payload_ok = connect.will.as_ref().is_none_or(|w| {
            w.properties.payload_format_indicator() != Some(1)
                || std::str::from_utf8(&w.payload).is_ok()
        });
        if !will_payload_ok {
            return self.refuse(conn, ConnectCode::PayloadFormatInvalid);
        }
        let mut keep_alive = connect.keep_alive;
        let keep_alive_max = self.config.keep_alive_max_secs;
        if keep_alive > keep_alive_max || (keep_alive == 0 && keep_alive_max < u16::MAX && v5) {
            if !v5 {
                return self.refuse(conn, ConnectCode::IdentifierRejected);
            }
            // 5.0 lets the server say what it will use instead [MQTT-3.2.2.3.14].
            keep_alive = keep_alive_max;
            connack.push(Property::ServerKeepAlive(keep_alive));
        }
        let client_id = if connect.client_id.is_empty() {
            if !v5 && !connect.clean_session {
                // [MQTT-3.1.3-8]
                return self.refuse(conn, ConnectCode::IdentifierRejected);
            }
            let id = self.assign_client_id();
            if v5 {
                connack.push(Property::AssignedClientIdentifier(id.clone()));
            }
            id
        } else {
            connect.client_id.clone()
        };
        if let Some(&sid) = self.by_client.get(&client_id) {
            if let Some(old) = self.sessions[&sid].conn {
                tracing::info!(client_id, ?old, ?conn, "session taken over");
                self.connection_lost(old, false);
                self.effects.push(Effect::TakenOver(old));
            }
            // A session that ended with its old connection is gone already.
            if connect.clean_session && self.sessions.contains_key(&sid) {
                self.end_session(sid);
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
                let code = if v5 {
                    ConnectCode::QuotaExceeded
                } else {
                    ConnectCode::ServerUnavailable
                };
                return self.refuse(conn, code);
            }
            None => (self.create_session(&client_id), false),
        };
        let asked_no_expiry = connect.properties.session_expiry_interval().unwrap_or(0) == 0;
        let expiry_secs = if v5 {
            let asked = connect.properties.session_expiry_interval().unwrap_or(0);
            let granted = asked.min(self.config.session_expiry_max_secs);
            if granted != asked {
                connack.push(Property::SessionExpiryInterval(granted));
            }
            granted
        } else if connect.clean_session {
            0
        } else {
            EXPIRY_NEVER
        };
        let client_receive_max = connect.properties.receive_maximum().unwrap_or(u16::MAX);
        // A new connection to the session cancels a will still waiting out
        // its delay [MQTT-3.1.3-9], and its expiry.
        self.clear_timers(sid);
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("session just found or made");
        session.conn = Some(conn);
        session.version = connect.version;
        session.expiry_secs = expiry_secs;
        session.asked_no_expiry = asked_no_expiry;
        session.will = connect.will.map(Box::new);
        session.window = self
            .config
            .inflight_messages_max
            .min(usize::from(client_receive_max));
        if planted!(self.config, IgnoreReceiveMaximum) {
            session.window = self.config.inflight_messages_max;
        }
        session.packet_size_max = connect
            .properties
            .maximum_packet_size()
            .map_or(usize::MAX, |max| max as usize);
        self.by_conn.insert(conn, sid);
        if v5 {
            self.describe_limits(&mut connack);
        }
        self.effects.push(Effect::Send(
            conn,
            Packet::ConnAck(ConnAck {
                session_present: resumed,
                code: ConnectCode::Accepted,
                properties: connack,
            }),
        ));
        if resumed {
            self.resend_inflight(sid);
        }
        Some(Accepted {
            client_id,
            keep_alive,
        })
    }

    /// The CONNACK properties that tell a 5.0 client this broker's limits;
    /// each is left out where it is the protocol's default.
    fn describe_limits(&self, connack: &mut Properties) {
        let c = &self.config;
        if c.receive_maximum < u16::MAX {
            connack.push(Property::ReceiveMaximum(c.receive_maximum));
        }
        if c.packet_size_max_bytes < crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES {
            let max = u32::try_from(c.packet_size_max_bytes).unwrap_or(u32::MAX);
            connack.push(Property::MaximumPacketSize(max));
        }
        if c.topic_alias_max > 0 {
            connack.push(Property::TopicAliasMaximum(c.topic_alias_max));
        }
        for (available, property) in [
            (
                c.wildcard_subscriptions,
                Property::WildcardSubscriptionAvailable(0),
            ),
            (
                c.subscription_identifiers,
                Property::SubscriptionIdentifierAvailable(0),
            ),
            (
                c.shared_subscriptions,
                Property::SharedSubscriptionAvailable(0),
            ),
        ] {
            if !available {
                connack.push(property);
            }
        }
    }

    fn refuse(&mut self, conn: ConnId, code: ConnectCode) -> Option<Accepted> {
        let connack = ConnAck {
            session_present: false,
            code,
            properties: Properties::new(),
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

    /// Ends a session: a will still waiting out its delay is published now
    /// [MQTT-3.1.3-9], and messages a shared subscription chose it for go to
    /// another member of the group.
    fn end_session(&mut self, sid: SessionId) {
        self.forget_timers(sid);
        let mut session = self.sessions.remove(&sid).expect("ending a live session");
        self.by_client.remove(&session.client_id);
        for (filter, _) in std::mem::take(&mut session.subscriptions) {
            self.drop_subscription(sid, &filter);
        }
        self.queued -= session.outgoing.pending.len();
        self.inflight -= session.outgoing.inflight.len();
        if let Some(delayed) = session.delayed_will.take() {
            self.publish_will(delayed.1);
        }
        self.reroute_shared(session.outgoing);
    }

    /// DISCONNECT from the client. A 5.0 client may change its session's
    /// expiry here, but not from zero [MQTT-3.14.2-2], and may ask for its
    /// will to be sent (0x04).
    pub fn disconnect(&mut self, conn: ConnId, disconnect: &Disconnect) -> Result<(), BrokerError> {
        if let Some(expiry) = disconnect.properties.session_expiry_interval() {
            let sid = self.sid_of(conn);
            let max = self.config.session_expiry_max_secs;
            let session = self.session_mut(sid);
            if session.asked_no_expiry && expiry != 0 {
                return Err(BrokerError::Protocol(
                    "DISCONNECT sets a session expiry after CONNECT set none",
                ));
            }
            session.expiry_secs = expiry.min(max);
        }
        let graceful = disconnect.reason != ReasonCode::DISCONNECT_WITH_WILL;
        self.connection_lost(conn, graceful);
        Ok(())
    }

    /// The connection ended: by DISCONNECT (`graceful`), or by anything else,
    /// which publishes the will, now or after its delay. A session with no
    /// expiry ends with it. Calling it for a connection the broker no longer
    /// knows (taken over) does nothing.
    pub fn connection_lost(&mut self, conn: ConnId, graceful: bool) {
        let Some(sid) = self.by_conn.remove(&conn) else {
            return;
        };
        let now = self.now;
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("by_conn points at live sessions");
        session.conn = None;
        let graceful = graceful || planted!(self.config, NoWillOnCrash);
        let will = session.will.take().filter(|_| !graceful);
        if let Some(will) = will {
            let mut delay = will.properties.will_delay_interval().unwrap_or(0);
            if planted!(self.config, IgnoreWillDelay) {
                delay = 0;
            }
            if delay > 0 && session.expiry_secs > 0 {
                // Due after the delay, or when the session ends if sooner.
                let due = now + u64::from(delay.min(session.expiry_secs)) * 1000;
                session.delayed_will = Some(Box::new((due, *will)));
                self.timers.insert((due, sid));
            } else {
                self.publish_will(*will);
            }
        }
        let never = planted!(self.config, SessionNeverExpires);
        let session = self.session_mut(sid);
        match session.expiry_secs {
            0 => self.end_session(sid),
            EXPIRY_NEVER => {}
            _ if never => {}
            secs => {
                let due = now + u64::from(secs) * 1000;
                session.expires_at = Some(due);
                self.timers.insert((due, sid));
            }
        }
    }

    /// Publishes the wills and ends the sessions that are due. The runtime
    /// calls it from a timer; `next_timer` says when it is next needed.
    pub fn tick(&mut self) {
        while let Some(&(due, sid)) = self.timers.first() {
            if due > self.now {
                return;
            }
            self.timers.pop_first();
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if session
                .delayed_will
                .as_ref()
                .is_some_and(|delayed| delayed.0 <= due)
            {
                // Its own entry; a later one for the same session waits.
                let delayed = session.delayed_will.take().expect("just seen");
                self.publish_will(delayed.1);
            }
            let session = self.session_mut(sid);
            if session.conn.is_none() && session.expires_at.is_some_and(|at| at <= due) {
                tracing::debug!(client_id = session.client_id, "session expired");
                self.end_session(sid);
            }
        }
    }

    /// Cancels the session's expiry and delayed will.
    fn clear_timers(&mut self, sid: SessionId) {
        self.forget_timers(sid);
        let session = self.session_mut(sid);
        session.expires_at = None;
        session.delayed_will = None;
    }

    /// Removes the session's entries from `timers`, so that there are never
    /// more than two per session, however often it comes and goes.
    fn forget_timers(&mut self, sid: SessionId) {
        let session = &self.sessions[&sid];
        let expires_at = session.expires_at;
        let will_at = session.delayed_will.as_ref().map(|delayed| delayed.0);
        for at in expires_at.into_iter().chain(will_at) {
            self.timers.remove(&(at, sid));
        }
    }

    /// When `tick` next has something to do.
    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.first().map(|&(due, _)| due)
    }

    fn publish_will(&mut self, will: LastWill) {
        let LastWill {
            topic,
            payload,
            qos,
            retain,
            mut properties,
        } = will;
        properties.retain(|p| !matches!(p, Property::WillDelayInterval(_)));
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: None,
            payload,
            properties,
        };
        self.route_from(None, &publish);
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
            return Err(BrokerError::TooManyLevels { max });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
