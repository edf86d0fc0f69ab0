//! The routing state: sessions, subscriptions, retained messages and the QoS
//! 1/2 flows, for MQTT 3.1.1 and 5.0 clients alike. Pure and deterministic:
//! no I/O, no tokio, and no clock of its own: the runtime tells it the time
//! (`set_now`) before each call. Each method takes what a connection did and
//! appends what must be sent to `effects`, which the runtime drains and
//! carries out. Maps are ordered, so the same inputs give the same outputs in
//! the same order.
//!
//! `Broker` only holds the parts together. Each part owns its state and
//! keeps its own invariants:
//! - `sessions`: the sessions, found by id, client id, connection and timer;
//! - `connect`: whether a CONNECT is accepted, and what it settles;
//! - `lifecycle`: how sessions end: DISCONNECT, lost connections, expiry,
//!   wills;
//! - `outbox`: a session's queue, window and in-flight messages, and the
//!   broker-wide counts of them;
//! - `delivery`: one copy to one session, and its QoS 1/2 flow;
//! - `routing`: a client's PUBLISH, and the publisher's side of QoS 1/2;
//! - `fanout`: a message fanned out to the subscribers, in slices of
//!   bounded work;
//! - `subscribe`: SUBSCRIBE and UNSUBSCRIBE, and a session's filters;
//! - `shared`, `index`, `retained`: shared groups, the topic trie and the
//!   retained store;
//! - `backlog`: the retained messages owed to new subscriptions, sent in
//!   slices as their connection has room;
//! - `access`: what the ACL lets each session read and write;
//! - `check`: the consistency check that the simulation runs;
//! - `notice`: what the broker logs, kept until the lock is let go.

mod access;
mod backlog;
mod check;
mod connect;
mod delivery;
mod fanout;
mod filters;
mod id_map;
mod index;
mod journal;
mod lifecycle;
mod notice;
mod outbox;
mod reaping;
mod recent;
mod restore;
mod retained;
mod routing;
mod runs;
mod sessions;
mod shared;
mod subscribe;
mod tail;
mod window_ids;

use std::sync::Arc;

pub use backlog::Owing;
pub use id_map::{IdMap, ScratchIdMap};

use crate::auth::AclFile;
use crate::codec::{Packet, PacketId, ReasonCode, SharedFrame};
use crate::config::Config;
pub use index::{SubscriptionIndex, WalkCursor};
pub use journal::{Change, Key, Restored, RestoredSession, SessionRecord, Stored};
pub use notice::{Clipped, Notice};
use outbox::Counts;
pub use outbox::{Message, Published};
pub use retained::{RetainOutcome, Retained, RetainedStore};
use sessions::Sessions;
use shared::SharedGroups;
pub use subscribe::Subscription as Granted;
pub use tail::{
    Tail, TailRead, CHUNK_BYTES as TAIL_CHUNK_BYTES, CHUNK_MESSAGES as TAIL_CHUNK_MESSAGES,
};

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
    /// A QoS 0 PUBLISH, the same bytes for every session of its protocol
    /// version that gets the message: a fan-out shares one.
    SendFrame(ConnId, Arc<SharedFrame>),
    /// A QoS 1 PUBLISH, the same bytes for every session of its protocol
    /// version but for the packet id, which is this one's.
    SendFrameAs(ConnId, Arc<SharedFrame>, PacketId),
    /// The connection's client id was taken by a newer connection; the broker
    /// has already detached it and dealt with its will.
    TakenOver(ConnId),
}

impl Effect {
    /// The connection it is for.
    pub fn conn(&self) -> ConnId {
        match self {
            Effect::Send(conn, _)
            | Effect::SendFrame(conn, _)
            | Effect::SendFrameAs(conn, ..)
            | Effect::TakenOver(conn) => *conn,
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
    /// 3.1.1 has no way to refuse a QoS 1/2 message: the connection is
    /// closed, unacknowledged, so the client keeps it.
    #[error("the data store failed: messages of QoS 1 and 2 cannot be kept")]
    StoreFailed,
}

impl BrokerError {
    pub fn reason(&self) -> ReasonCode {
        match self {
            BrokerError::TooManyLevels { .. } => ReasonCode::TOPIC_NAME_INVALID,
            BrokerError::ReceiveMaximumExceeded { .. } => ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
            BrokerError::PayloadFormatInvalid => ReasonCode::PAYLOAD_FORMAT_INVALID,
            BrokerError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            BrokerError::StoreFailed => ReasonCode::UNSPECIFIED_ERROR,
        }
    }
}

/// Messages dropped because a limit was reached, by limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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
    /// Messages a client may not publish: to `$SYS`, to another `$`
    /// topic unless `dollar_topics_from_clients` allows it, or to a topic
    /// its ACL does not let it write.
    pub not_authorized: u64,
    /// Messages refused while the broker's memory was over
    /// `memory_max_bytes` (5.0 QoS 1/2 told 0x97; 3.1.1 not acknowledged).
    pub memory_full: u64,
    /// QoS 1/2 messages refused after the data store failed a commit
    /// (5.0 told 0x80; 3.1.1 closed without an acknowledgement).
    pub store_failed: u64,
}

impl Dropped {
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.outbound_full
            + self.retained_full
            + self.too_large
            + self.expired
            + self.shared_undeliverable
            + self.not_authorized
            + self.memory_full
            + self.store_failed
    }
}

/// The broker's own counts, for the census.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BrokerStats {
    pub sessions_connected: usize,
    pub sessions_offline: usize,
    pub subscriptions: usize,
    pub retained: usize,
    /// Filters of ended sessions still being taken out of the index and
    /// their shared groups, a slice at a time (`subscriptions` no longer
    /// counts them).
    pub subscriptions_ending: usize,
    /// Retained entries looked at to find those a new subscription matches,
    /// since the start: the work filters cost, which should follow what
    /// they match, not the size of the store.
    pub retained_visited: u64,
    /// Subscription trie nodes and subscriptions looked at to route
    /// messages, since the start: the work a publish costs, which one
    /// client's overlapping filters multiply (65,536 filters that one topic
    /// all matches make each publish to it walk 196,607).
    pub subscriptions_visited: u64,
    /// Subscriptions still owed some of their retained messages, which are
    /// sent as their connection has room.
    pub retained_owed: usize,
    /// QoS 1/2 messages waiting in sessions.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
    /// The weight (`Publish::weight`) of the queued messages held in
    /// memory: against `offline_memory_max_bytes`.
    pub queued_memory_bytes: usize,
    /// Queued messages on disk only (`queued` counts them too), and their
    /// weight.
    pub queued_on_disk: usize,
    pub queued_on_disk_bytes: usize,
    /// Messages put on disk only since the start, and read back.
    pub spilled: u64,
    pub read_back: u64,
    /// Messages given to a new subscription whose SUBSCRIBE came before
    /// them but reached the lock after them, since the start (`recent.rs`).
    pub replayed: u64,
    pub dropped: Dropped,
    /// Whether the broker's memory is over `memory_max_bytes` now.
    pub memory_full: bool,
    /// CONNECTs refused for that since the start.
    pub connects_refused_memory: u64,
    /// Whether the data store failed a commit: nothing durable is promised
    /// again until a restart.
    pub store_failed: bool,
    /// CONNECTs of durable sessions refused for that since the start.
    pub connects_refused_store: u64,
    /// CONNECTs refused since the start because a new session would have
    /// been one over `sessions_max`.
    pub connects_refused_sessions_max: u64,
    /// CONNECTs refused since the start because their client id's session
    /// belongs to another user.
    pub connects_refused_not_owner: u64,
}

/// The most that one client holds of what the per-client limits bound,
/// each the largest over clients (`Server::census_with_peaks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Peaks {
    /// Bytes (`Publish::weight`) queued in one session, beside the
    /// messages put back from its window on resumption: against
    /// `queued_bytes_max`.
    pub queued_bytes: usize,
    /// Bytes of QoS 0 PUBLISHes waiting for one connection that holds two
    /// or more (one alone goes into an empty queue whatever its size):
    /// against `outbound_bytes_max`.
    pub outbound_qos0_bytes: usize,
    /// Filters one session holds: against `subscriptions_per_client_max`.
    pub filters: usize,
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
    /// The `acl_file`'s rules; each session holds its own share of them.
    /// `None`: every client may read and write every topic, unchecked.
    acl: Option<AclFile>,
    now: Millis,
    /// Clock steps the planted `ClockStepIgnored` does not count.
    #[cfg(feature = "planted-bugs")]
    unseen: Millis,
    sessions: Sessions,
    /// Subscriptions that are not shared, by filter.
    index: SubscriptionIndex<SessionId, Granted>,
    shared: SharedGroups,
    retained: RetainedStore,
    /// Filters owed retained messages, over all sessions' backlogs.
    owed: usize,
    /// Routes started so far: which came first, a route or a filter owed
    /// retained messages (`Broker::settle_owed`).
    routes_started: u64,
    counts: Counts,
    dropped: Dropped,
    /// Memory is over its limit: new messages and sessions are refused
    /// until it is not (set by the runtime, which measures it).
    memory_full: bool,
    connects_refused_memory: u64,
    /// The store failed a commit (set by the runtime): what would need a
    /// durable promise is refused until a restart.
    store_failed: bool,
    connects_refused_store: u64,
    connects_refused_sessions_max: u64,
    connects_refused_not_owner: u64,
    effects: Vec<Effect>,
    /// What to log once the lock is let go.
    notices: notice::Notices,
    /// Reused by routes so that a fan-out allocates nothing per message.
    matches: Vec<(SessionId, Granted)>,
    /// Reused by routes' deliveries: where one session's matches are.
    blocks: Vec<std::ops::Range<usize>>,
    /// Matches that routes have sorted since the start, a walk slice's at
    /// a time: the test of the work per hold reads it.
    matches_sorted: u64,
    /// Messages being routed a slice at a time, by the session that sent
    /// them (or whose will they are), oldest first (`fanout.rs`).
    routes: std::collections::BTreeMap<SessionId, fanout::Routes>,
    /// The messages routed last, for a subscription that lost a race
    /// with them (`recent.rs`).
    recent: recent::Recent,
    /// Messages `recent` gave to subscriptions, since the start.
    replayed: u64,
    /// SUBSCRIBEs being handled a slice at a time, by their connection
    /// (`subscribe.rs`).
    subscribing: std::collections::BTreeMap<ConnId, subscribe::Subscribing>,
    /// A route or a SUBSCRIBE in slices was answered (`take_split_acks`).
    split_acks: bool,
    /// For the census, and for the runtime's budget of work per lock hold.
    subscriptions_visited: u64,
    /// Levels of filters put into or taken out of the index since the
    /// start: the work SUBSCRIBE, UNSUBSCRIBE and a session's end cost.
    levels_indexed: u64,
    /// Ended sessions' filters still to be taken out of the index and
    /// their groups.
    reaping: reaping::Reaping,
    /// With a store: changes noted for `take_changes`.
    journal: Option<Vec<journal::Noted>>,
    /// Reads of tails on disk asked for, for `take_tail_reads`.
    tail_reads: Vec<tail::TailRead>,
    /// `dropped.queue_full` and `dropped.outbound_full` by the client id
    /// of the session they were for: the simulation holds a session's
    /// missing messages against its own drops, not everyone's. Not in the
    /// binary, where the map would grow with every client id ever seen.
    #[cfg(feature = "sim")]
    dropped_by_client: std::collections::BTreeMap<String, u64>,
}

impl Broker {
    pub fn new(config: Config) -> Broker {
        Broker::with_acl(config, None)
    }

    /// A broker that judges each client by `acl`, if there is one.
    pub fn with_acl(config: Config, acl: Option<AclFile>) -> Broker {
        #[cfg_attr(not(feature = "planted-bugs"), allow(unused_mut))]
        let mut index = SubscriptionIndex::default();
        #[cfg(feature = "planted-bugs")]
        {
            index.planted_bug = config.planted_bug;
        }
        Broker {
            config,
            acl,
            now: 0,
            #[cfg(feature = "planted-bugs")]
            unseen: 0,
            sessions: Sessions::default(),
            index,
            shared: SharedGroups::default(),
            retained: RetainedStore::default(),
            owed: 0,
            routes_started: 0,
            counts: Counts::default(),
            dropped: Dropped::default(),
            memory_full: false,
            connects_refused_memory: 0,
            store_failed: false,
            connects_refused_store: 0,
            connects_refused_sessions_max: 0,
            connects_refused_not_owner: 0,
            effects: Vec::new(),
            notices: notice::Notices::default(),
            matches: Vec::new(),
            blocks: Vec::new(),
            matches_sorted: 0,
            routes: Default::default(),
            recent: Default::default(),
            replayed: 0,
            subscribing: Default::default(),
            split_acks: false,
            subscriptions_visited: 0,
            levels_indexed: 0,
            reaping: reaping::Reaping::default(),
            journal: None,
            tail_reads: Vec::new(),
            #[cfg(feature = "sim")]
            dropped_by_client: Default::default(),
        }
    }

    /// The runtime's clock, read before each call. It never goes back.
    pub fn set_now(&mut self, now: Millis) {
        #[cfg(feature = "planted-bugs")]
        let now = self.planted_clock(now);
        self.now = self.now.max(now);
    }

    /// The planted `ClockStepIgnored`: steps of more than ten seconds are
    /// kept in `unseen` and taken off every later reading.
    #[cfg(feature = "planted-bugs")]
    fn planted_clock(&mut self, now: Millis) -> Millis {
        let seen = now.saturating_sub(self.unseen);
        if crate::config::planted!(self.config, ClockStepIgnored) && seen > self.now + 10_000 {
            self.unseen += seen - self.now;
        }
        now.saturating_sub(self.unseen)
    }

    pub fn memory_full(&self) -> bool {
        self.memory_full
    }

    /// Whether the broker's memory is over its limit, as the runtime
    /// measured it before this hold of the lock.
    pub fn set_memory_full(&mut self, full: bool) {
        if full != self.memory_full {
            self.notices.note(Notice::Memory { full });
        }
        self.memory_full = full;
    }

    /// The store failed a commit: from now on QoS 1/2 messages and durable
    /// sessions are refused. The runtime logs the failure itself, once.
    pub fn set_store_failed(&mut self) {
        self.store_failed = true;
    }

    /// Hands over what the last calls asked for, in order.
    pub fn drain_effects(&mut self) -> std::vec::Drain<'_, Effect> {
        self.effects.drain(..)
    }

    /// How many effects wait to be handed over: a measure of the work done
    /// since the last hand-over.
    pub fn effects_queued(&self) -> usize {
        self.effects.len()
    }

    /// Matching work done since the start (`BrokerStats::subscriptions_visited`):
    /// the runtime lets go of the lock when a batch has done enough, as it
    /// does for effects, since overlapping filters cost work but no effects.
    pub fn subscriptions_visited(&self) -> u64 {
        self.subscriptions_visited
    }

    /// Matches that routes have sorted by session since the start: each
    /// walk slice sorts its own, so a hold sorts at most a slice's worth.
    pub fn matches_sorted(&self) -> u64 {
        self.matches_sorted
    }

    /// The work on the subscription index since the start, matching and
    /// changing it alike: what the runtime's budget per hold of the lock
    /// counts. 10,000 filters of 200 levels, 64 SUBSCRIBEs in one batch,
    /// once held the lock for 320 ms.
    pub fn index_work(&self) -> u64 {
        self.subscriptions_visited + self.levels_indexed
    }

    /// Hands over what the last calls asked for, in order, by swapping it
    /// with `into`, which must be empty: neither side allocates again.
    pub fn swap_effects(&mut self, into: &mut Vec<Effect>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.effects, into);
    }

    pub fn stats(&self) -> BrokerStats {
        BrokerStats {
            sessions_connected: self.sessions.connected(),
            sessions_offline: self.sessions.len() - self.sessions.connected(),
            subscriptions: self.index.len() + self.shared.members() - self.reaping.len(),
            subscriptions_ending: self.reaping.len(),
            retained: self.retained.len(),
            retained_visited: self.retained.visited(),
            subscriptions_visited: self.subscriptions_visited,
            retained_owed: self.owed,
            queued: self.counts.queued(),
            inflight: self.counts.inflight(),
            queued_memory_bytes: self.counts.memory_bytes,
            queued_on_disk: self.counts.on_disk,
            queued_on_disk_bytes: self.counts.on_disk_bytes,
            spilled: self.counts.spilled,
            read_back: self.counts.read_back,
            replayed: self.replayed,
            dropped: self.dropped,
            memory_full: self.memory_full,
            connects_refused_memory: self.connects_refused_memory,
            store_failed: self.store_failed,
            connects_refused_store: self.connects_refused_store,
            connects_refused_sessions_max: self.connects_refused_sessions_max,
            connects_refused_not_owner: self.connects_refused_not_owner,
        }
    }

    /// Connections attached to a session.
    pub fn attached(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.sessions.attached()
    }

    /// The runtime dropped `n` QoS 0 messages because the outbound queue
    /// of `conn` was full.
    pub fn count_outbound_drops(&mut self, conn: ConnId, n: usize) {
        self.dropped.outbound_full += n as u64;
        #[cfg(feature = "sim")]
        if n > 0 {
            if let Some(sid) = self.sessions.by_conn(conn) {
                self.count_drops_for(sid, n as u64);
            }
        }
        #[cfg(not(feature = "sim"))]
        let _ = conn;
    }

    /// Counts drops against the session's client id (`dropped_by_client`).
    #[cfg(feature = "sim")]
    fn count_drops_for(&mut self, sid: SessionId, n: u64) {
        let client_id = self.sessions.get(sid).client_id().to_owned();
        *self.dropped_by_client.entry(client_id).or_default() += n;
    }

    /// `dropped.queue_full` and `dropped.outbound_full` by client id.
    #[cfg(feature = "sim")]
    pub fn dropped_by_client(&self) -> std::collections::BTreeMap<String, u64> {
        self.dropped_by_client.clone()
    }

    /// Whether a connection is attached to a session: asked of every
    /// packet, so without reading the session (`client_id` did).
    pub fn is_attached(&self, conn: ConnId) -> bool {
        self.sessions.by_conn(conn).is_some()
    }

    /// The client id of the session a connection is attached to.
    pub fn client_id(&self, conn: ConnId) -> Option<&str> {
        let sid = self.sessions.by_conn(conn)?;
        Some(self.sessions.get(sid).client_id())
    }

    fn check_levels(&self, topic: &str) -> Result<(), BrokerError> {
        let max = self.config.topic_levels_max;
        // Separators counted, not levels split out (`reaping::levels`).
        if topic.bytes().filter(|&b| b == b'/').count() + 1 > max {
            return Err(BrokerError::TooManyLevels { max });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
