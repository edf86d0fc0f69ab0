//! The sessions and the ways to find one: by id, by client id, by
//! connection, and by when its will or expiry is due. Those indexes must
//! agree with the sessions, so a session's client id, connection and timers
//! are changed only here, each together with its index.

use std::collections::{BTreeMap, BTreeSet};

use super::backlog::Backlog;
use super::filters::Filters;
use super::journal::{Key, SessionRecord};
use super::outbox::Outbox;
use super::routing::AwaitingRelease;
use super::{ConnId, IdMap, Millis, SessionId};
use crate::auth::ClientAcl;
use crate::codec::{LastWill, ProtocolVersion};
use crate::prefetch::prefetch_whole;

/// A session that never expires (3.1.1's persistent sessions, and 5.0's
/// interval 0xFFFFFFFF).
pub const EXPIRY_NEVER: u32 = u32::MAX;

/// The steps of `Sessions::prefetch`, in the order they must come.
#[derive(Debug, Clone, Copy)]
pub(super) enum Prefetch {
    Session,
    Queues,
    Window,
}

#[derive(Debug)]
pub struct Session {
    client_id: String,
    /// The user name of the CONNECT that created it: only a CONNECT with
    /// the same one may resume it or take it over.
    owner: Option<Box<str>>,
    /// What it may read and write, from the ACL with its client id and
    /// user name filled in; `None` without an `acl_file`. Set by each
    /// CONNECT (`Terms`); open so that a walk over its backlog can read it.
    /// Boxed: most brokers have none.
    pub acl: Option<Box<ClientAcl>>,
    /// The connection attached to it, if the client is online.
    conn: Option<ConnId>,
    /// When an offline session ends, if it ever does.
    expires_at: Option<Millis>,
    /// A will whose Will Delay Interval is running. Boxed, as is `will`:
    /// most sessions have none, and an inline will with its properties
    /// costs every idle session ~80 bytes.
    delayed_will: Option<Box<DelayedWill>>,
    version: ProtocolVersion,
    /// Seconds the session outlives its connection: 0 ends it with the
    /// connection (3.1.1's clean session), `EXPIRY_NEVER` keeps it. An
    /// offline session never has 0: it would have ended.
    expiry_secs: u32,
    /// The CONNECT asked for no expiry, so its DISCONNECT may not ask for
    /// one [MQTT-3.14.2-2]; told apart from an expiry the broker cut to 0.
    asked_no_expiry: bool,
    will: Option<Box<LastWill>>,
    /// The client's Maximum Packet Size; larger packets are not sent to it.
    packet_size_max: usize,
    // Open to the other parts because each type keeps its own invariants:
    // filters change only in subscribe.rs, the outbox's queues only through
    // `Counts`, the QoS 2 ids only in routing.rs.
    pub subscriptions: Filters,
    pub outbox: Outbox,
    pub incoming_qos2: AwaitingRelease,
    /// Retained messages its new subscriptions are still owed; changed
    /// only in backlog.rs, with the broker's count of them.
    pub backlog: Backlog,
}

/// What a CONNECT settled for its session, until the next one.
#[derive(Debug)]
pub struct Terms {
    pub version: ProtocolVersion,
    pub expiry_secs: u32,
    pub asked_no_expiry: bool,
    pub will: Option<Box<LastWill>>,
    pub acl: Option<Box<ClientAcl>>,
    pub packet_size_max: usize,
    /// The most QoS 1/2 messages in flight to the client.
    pub window: usize,
}

/// A will waiting out its delay.
#[derive(Debug)]
struct DelayedWill {
    due: Millis,
    will: LastWill,
}

impl Session {
    /// A session with no connection yet; `Broker::connect` attaches one and
    /// sets the fields its CONNECT decides.
    fn new(sid: SessionId, client_id: String, owner: Option<&str>) -> Session {
        Session {
            client_id,
            owner: owner.map(Box::from),
            acl: None,
            conn: None,
            expires_at: None,
            delayed_will: None,
            version: ProtocolVersion::V311,
            expiry_secs: 0,
            asked_no_expiry: true,
            will: None,
            packet_size_max: usize::MAX,
            subscriptions: Filters::default(),
            outbox: Outbox::new(sid),
            incoming_qos2: AwaitingRelease::default(),
            backlog: Backlog::default(),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    pub fn conn(&self) -> Option<ConnId> {
        self.conn
    }

    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    pub fn packet_size_max(&self) -> usize {
        self.packet_size_max
    }

    pub fn expiry_secs(&self) -> u32 {
        self.expiry_secs
    }

    pub fn asked_no_expiry(&self) -> bool {
        self.asked_no_expiry
    }

    /// A DISCONNECT's new expiry: only while connected, so that no offline
    /// session is left with 0.
    pub fn set_expiry_secs(&mut self, secs: u32) {
        debug_assert!(self.conn.is_some(), "expiry changed offline");
        self.expiry_secs = secs;
        self.outbox.set_durable(secs > 0);
    }

    /// Whether it outlives its connection, and so belongs in the store.
    pub fn is_durable(&self) -> bool {
        self.expiry_secs > 0
    }

    /// What the store keeps of it, if it is durable.
    pub fn record(&self) -> Option<SessionRecord> {
        self.is_durable().then(|| SessionRecord {
            client_id: self.client_id.clone(),
            owner: self.owner.clone(),
            version: self.version,
            expiry_secs: self.expiry_secs,
            asked_no_expiry: self.asked_no_expiry,
            expires_at: self.expires_at,
            delayed_will: self
                .delayed_will
                .as_ref()
                .map(|delayed| (delayed.due, delayed.will.clone())),
        })
    }

    #[cfg(test)]
    pub fn will(&self) -> Option<&LastWill> {
        self.will.as_deref()
    }

    /// The will, for the connection's end; it is published at most once.
    pub fn take_will(&mut self) -> Option<Box<LastWill>> {
        self.will.take()
    }
}

/// Every session, indexed.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Boxed: a B-tree node holds up to eleven values and is often half
    /// full, and a 300-byte session in place cost an idle connection
    /// twice its size.
    sessions: IdMap<SessionId, Box<Session>>,
    /// Keys boxed, not `String`s: a third word in each of a B-tree's
    /// eleven places cost an idle connection about 16 bytes.
    by_client: BTreeMap<Box<str>, SessionId>,
    by_conn: IdMap<ConnId, SessionId>,
    /// Session expiries and delayed wills, by when they are due. An entry
    /// whose session has since changed is skipped when it comes due.
    timers: BTreeSet<(Millis, SessionId)>,
    next_session: u64,
    /// Numbers client ids the broker assigns; a counter, so runs replay.
    next_assigned_id: u64,
    /// With a store: sessions whose record may have changed since the last
    /// `take_changed`, each looked at anew then.
    changed: Option<Vec<SessionId>>,
    /// With a store: the sessions whose record it holds, as last reported.
    /// The end of a session it never held is nothing to write, and must
    /// not hold a reply behind a commit that may never come.
    stored: BTreeSet<SessionId>,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions with a connection attached.
    pub fn connected(&self) -> usize {
        self.by_conn.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Session)> + '_ {
        self.sessions.iter().map(|(sid, s)| (*sid, &**s))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Session> + '_ {
        self.sessions.values_mut().map(|s| &mut **s)
    }

    pub fn contains(&self, sid: SessionId) -> bool {
        self.sessions.contains_key(&sid)
    }

    /// A fan-out's hints for a session a few on (`prefetch.rs`), each a
    /// step further along the chain than the one a few sessions before
    /// it, which the earlier hint should have brought in.
    pub(super) fn prefetch(&self, sid: SessionId, step: Prefetch) {
        let Some(session) = self.sessions.get(&sid) else {
            return;
        };
        match step {
            Prefetch::Session => prefetch_whole::<Session>(&**session),
            Prefetch::Queues => session.outbox.prefetch_queues(),
            Prefetch::Window => session.outbox.prefetch_window(),
        }
    }

    pub fn get(&self, sid: SessionId) -> &Session {
        &self.sessions[&sid]
    }

    pub fn get_mut(&mut self, sid: SessionId) -> &mut Session {
        self.sessions
            .get_mut(&sid)
            .expect("connections, the index and groups point at live sessions")
    }

    pub fn by_client(&self, client_id: &str) -> Option<SessionId> {
        self.by_client.get(client_id).copied()
    }

    pub fn by_conn(&self, conn: ConnId) -> Option<SessionId> {
        self.by_conn.get(&conn).copied()
    }

    pub fn sid_of(&self, conn: ConnId) -> SessionId {
        self.by_conn(conn)
            .expect("packets after CONNECT come from attached connections")
    }

    /// Connections attached to a session.
    pub fn attached(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.by_conn.keys().copied()
    }

    /// The next client id of the broker's numbering, which a client may
    /// have chosen for itself: `Broker::admit` skips those.
    pub fn next_assigned_id(&mut self) -> String {
        self.next_assigned_id += 1;
        format!("tern-{}", self.next_assigned_id)
    }

    /// Starts noting which sessions change, for the store.
    pub fn keep_changes(&mut self) {
        self.changed.get_or_insert_with(Vec::new);
    }

    /// The sessions that may have changed since the last call.
    pub fn take_changed(&mut self) -> Vec<SessionId> {
        self.changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Whether the store must hear of `sid`'s record, now `present` or
    /// not: a session it holds, or one it is to hold; `Key::New` if it is
    /// to hold one it did not.
    pub fn tell_store(&mut self, sid: SessionId, present: bool) -> Option<Key> {
        if present {
            Some(match self.stored.insert(sid) {
                true => Key::New,
                false => Key::Seen,
            })
        } else {
            self.stored.remove(&sid).then_some(Key::Seen)
        }
    }

    /// Notes that the session's record must be written again.
    pub fn mark_changed(&mut self, sid: SessionId) {
        self.note(sid);
    }

    fn note(&mut self, sid: SessionId) {
        if let Some(changed) = &mut self.changed {
            changed.push(sid);
        }
    }

    pub fn create(&mut self, client_id: &str, owner: Option<&str>) -> SessionId {
        self.next_session += 1;
        let sid = SessionId(self.next_session);
        self.sessions.insert(
            sid,
            Box::new(Session::new(sid, client_id.to_owned(), owner)),
        );
        self.by_client.insert(client_id.into(), sid);
        sid
    }

    /// A session read back from the store, offline: its expiry runs from
    /// `record.expires_at`, or from `now` for one that was online.
    pub fn restore(&mut self, sid: SessionId, record: SessionRecord, now: Millis) -> SessionId {
        self.next_session = self.next_session.max(sid.0);
        let mut session = Session::new(sid, record.client_id, record.owner.as_deref());
        session.version = record.version;
        session.expiry_secs = record.expiry_secs;
        session.asked_no_expiry = record.asked_no_expiry;
        session.outbox.set_durable(true);
        self.stored.insert(sid);
        self.by_client
            .insert(session.client_id.as_str().into(), sid);
        self.sessions.insert(sid, Box::new(session));
        let expires_at = record.expires_at.or_else(|| {
            (record.expiry_secs != EXPIRY_NEVER)
                .then(|| now.saturating_add(u64::from(record.expiry_secs) * 1000))
        });
        if let Some(due) = expires_at {
            self.expire_at(sid, due);
        }
        if let Some((due, will)) = record.delayed_will {
            self.delay_will(sid, due, will);
        }
        sid
    }

    /// Removes the session and its timers; a will still waiting out its
    /// delay is handed back with it, to be published now [MQTT-3.1.3-9].
    pub fn remove(&mut self, sid: SessionId) -> (Session, Option<LastWill>) {
        self.note(sid);
        self.forget_timers(sid);
        let mut session = *self.sessions.remove(&sid).expect("ending a live session");
        self.by_client.remove(session.client_id.as_str());
        let will = session.delayed_will.take().map(|delayed| delayed.will);
        (session, will)
    }

    /// Attaches `conn`, on the `terms` its CONNECT settled. A new connection
    /// to the session cancels a will still waiting out its delay
    /// [MQTT-3.1.3-9], and its expiry.
    pub fn attach(&mut self, sid: SessionId, conn: ConnId, terms: Terms) {
        self.note(sid);
        self.forget_timers(sid);
        self.by_conn.insert(conn, sid);
        let session = self.get_mut(sid);
        session.expires_at = None;
        session.delayed_will = None;
        session.conn = Some(conn);
        session.version = terms.version;
        session.expiry_secs = terms.expiry_secs;
        session.asked_no_expiry = terms.asked_no_expiry;
        session.will = terms.will;
        session.acl = terms.acl;
        session.packet_size_max = terms.packet_size_max;
        session.outbox.set_window(terms.window);
        session.outbox.set_durable(terms.expiry_secs > 0);
        session.outbox.set_attached(true);
    }

    /// Detaches `conn` from its session, if it still has one.
    pub fn detach(&mut self, conn: ConnId) -> Option<SessionId> {
        let sid = self.by_conn.remove(&conn)?;
        self.note(sid);
        let session = self.get_mut(sid);
        session.conn = None;
        session.outbox.set_attached(false);
        Some(sid)
    }

    /// Publishes `will` at `due` unless the session comes back first.
    pub fn delay_will(&mut self, sid: SessionId, due: Millis, will: LastWill) {
        self.note(sid);
        self.get_mut(sid).delayed_will = Some(Box::new(DelayedWill { due, will }));
        self.timers.insert((due, sid));
    }

    /// Ends the offline session at `due` unless it comes back first.
    pub fn expire_at(&mut self, sid: SessionId, due: Millis) {
        self.note(sid);
        self.get_mut(sid).expires_at = Some(due);
        self.timers.insert((due, sid));
    }

    /// Removes the session's entries from `timers`, so that there are never
    /// more than two per session, however often it comes and goes.
    fn forget_timers(&mut self, sid: SessionId) {
        let session = &self.sessions[&sid];
        let expires_at = session.expires_at;
        let will_at = session.delayed_will.as_ref().map(|delayed| delayed.due);
        for at in expires_at.into_iter().chain(will_at) {
            self.timers.remove(&(at, sid));
        }
    }

    /// When a timer is next due.
    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.first().map(|&(due, _)| due)
    }

    /// The first timer due by `now`, taken, if its session still lives.
    /// `None` once none is due; `Some(None)` for a stale entry.
    pub fn pop_due(&mut self, now: Millis) -> Option<Option<(Millis, SessionId)>> {
        let &(due, sid) = self.timers.first()?;
        if due > now {
            return None;
        }
        self.timers.pop_first();
        Some(self.sessions.contains_key(&sid).then_some((due, sid)))
    }

    /// The session's delayed will, if it is due by `due`: its own entry; a
    /// later one for the same session waits.
    pub fn take_due_will(&mut self, sid: SessionId, due: Millis) -> Option<LastWill> {
        let session = self.get_mut(sid);
        if session.delayed_will.as_ref()?.due > due {
            return None;
        }
        let will = session.delayed_will.take().map(|delayed| delayed.will);
        self.note(sid);
        will
    }

    /// Whether the session is offline and its expiry is due by `due`.
    pub fn expired(&self, sid: SessionId, due: Millis) -> bool {
        let session = self.get(sid);
        session.conn.is_none() && session.expires_at.is_some_and(|at| at <= due)
    }

    /// Checks that the indexes agree with the session.
    pub fn check_indexed(&self, sid: SessionId, session: &Session) -> Result<(), String> {
        let name = &session.client_id;
        if self.by_client.get(name.as_str()) != Some(&sid) {
            return Err(format!("{name}: not indexed by its client id"));
        }
        if let Some(conn) = session.conn {
            if self.by_conn.get(&conn) != Some(&sid) {
                return Err(format!(
                    "{name}: its connection {conn:?} does not point back"
                ));
            }
        } else if session.expiry_secs == 0 {
            return Err(format!(
                "{name}: offline, and should have ended with its connection"
            ));
        }
        Ok(())
    }

    /// Checks that no client id is indexed without its session.
    pub fn check_sizes(&self) -> Result<(), String> {
        if self.by_client.len() != self.sessions.len() {
            return Err("client id index and sessions differ in size".into());
        }
        Ok(())
    }
}
