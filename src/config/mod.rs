//! Every limit of the broker, with defaults in the spirit of mosquitto's, read
//! from an optional TOML file. Units are the last word of each name.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

mod listener;
pub use listener::{ListenerConfig, Protocol};

/// Where a broker with no listener configured listens.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1883);

/// The most topic aliases we set per connection: each PUBLISH sent looks
/// its topic up among them.
const TOPIC_ALIAS_SENT_MAX: u16 = 1024;

/// The most worker threads `workers` may ask for: a typo of a few digits
/// more would start a thread for each.
const WORKERS_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Addresses to accept plain MQTT connections on, with the settings
    /// below; with neither this nor `[[listener]]`, 127.0.0.1:1883.
    pub listen: Vec<SocketAddr>,
    /// Listeners with a transport and settings of their own
    /// (`[[listener]]` tables; see `ListenerConfig`).
    pub listener: Vec<ListenerConfig>,
    /// An address for `/metrics` (Prometheus) and a status page; unset,
    /// there is no HTTP listener.
    pub http_listen: Option<SocketAddr>,
    /// The runtime's worker threads; 0, the default, for one a core (or
    /// tokio's `TOKIO_WORKER_THREADS`). Read at start only.
    pub workers: usize,
    /// Open TCP connections; one more is accepted and closed at once.
    pub connections_max: usize,
    /// Sessions, connected and offline; a CONNECT that would make one more is
    /// refused with "server unavailable".
    pub sessions_max: usize,
    /// A packet larger than this closes its connection. mosquitto's default
    /// is MQTT's own limit; ours is smaller (see the default).
    pub packet_size_max_bytes: usize,
    /// QoS 1/2 messages sent to a client and not yet acknowledged
    /// (mosquitto's `max_inflight_messages`).
    pub inflight_messages_max: usize,
    /// QoS 1/2 messages waiting for room in a session's inflight window or
    /// for an offline client to return (mosquitto's `max_queued_messages`);
    /// beyond it new messages for that session are dropped and counted.
    pub queued_messages_max: usize,
    /// Payload bytes of those waiting messages (mosquitto's
    /// `max_queued_bytes`, which is unlimited there; a bound here).
    pub queued_bytes_max: usize,
    /// With a data store: the weight of queued messages held in memory,
    /// all sessions together, past which a new QoS 1/2 message for an
    /// offline durable session stays on disk only, read back in chunks
    /// when its client returns (mosquitto holds every one in memory).
    /// Without a store (`--in-memory`) every queued message is in memory.
    pub offline_memory_max_bytes: usize,
    /// Packets waiting to be written to one connection. A QoS 0 message
    /// beyond it is dropped and counted; the connection's own reads pause
    /// until its writes catch up.
    pub outbound_packets_max: usize,
    /// Bytes of QoS 0 messages waiting to be written to one connection,
    /// beyond which a QoS 0 message is dropped and counted as above; one
    /// is always let through to an empty queue.
    pub outbound_bytes_max: usize,
    /// mosquitto's password file (`user:$7$...` lines, as
    /// `mosquitto_passwd` or `tern passwd` write them); a client with a
    /// user name must give its password.
    pub password_file: Option<std::path::PathBuf>,
    /// Whether a client without a user name (or, with no password file, any
    /// client) may connect; a listener's own setting overrides it. Unset:
    /// only on a listener with a loopback address, as mosquitto 2 allows
    /// anonymous clients only when it listens on loopback alone.
    pub allow_anonymous: Option<bool>,
    /// mosquitto's ACL file (`user`, `topic`, `pattern` lines); with one,
    /// a client may read and write only what its rules grant.
    pub acl_file: Option<std::path::PathBuf>,
    /// The heap the broker may use, all clients together; 0 is half the
    /// machine's memory (or its cgroup's). Over it, new QoS 1/2 messages
    /// and new sessions are refused and QoS 0 is dropped.
    pub memory_max_bytes: usize,
    /// Filters one client may hold; a SUBSCRIBE beyond it gets 0x80.
    pub subscriptions_per_client_max: usize,
    /// Levels in a topic name or filter (mosquitto refuses more than 200).
    pub topic_levels_max: usize,
    /// Topics with a retained message; a new one beyond it is not retained.
    pub retained_messages_max: usize,
    /// A TCP connection that sends no CONNECT within this is closed.
    pub connect_timeout_ms: u64,
    /// A packet begun must be whole within this, or its connection is
    /// closed: a partial packet does not renew the keepalive, and without
    /// this a client sending a byte now and then would hold its
    /// connection and its buffer for ever.
    pub packet_timeout_ms: u64,
    /// A 3.1.1 client asking for a longer keepalive, or for none (0), is
    /// refused with "identifier rejected", as mosquitto 2 does; 0 allows
    /// any keepalive, 0 included.
    pub keep_alive_max_secs: u16,
    /// How often `$SYS/broker/...` topics are published; 0 turns them off.
    pub sys_interval_secs: u64,
    /// The longest Session Expiry Interval a 5.0 client is granted; a longer
    /// request is cut to it and told so in CONNACK. 4294967295 is "never".
    pub session_expiry_max_secs: u32,
    /// QoS 2 messages a 5.0 client may have sent and not yet released
    /// (Receive Maximum, told in CONNACK); one more closes it with 0x93.
    pub receive_maximum: u16,
    /// Topic aliases a 5.0 client may set per connection (Topic Alias
    /// Maximum, told in CONNACK); 0 allows none.
    pub topic_alias_max: u16,
    /// Topic aliases we set on what we send to a 5.0 client, at most the
    /// Topic Alias Maximum it announced; 0 sets none.
    pub topic_alias_sent_max: u16,
    /// `$share/{group}/{filter}` subscriptions; when off they get 0x9E.
    pub shared_subscriptions: bool,
    /// Filters with `+` or `#`; when off they get 0xA2 (5.0) or 0x80.
    pub wildcard_subscriptions: bool,
    /// Subscription Identifiers; when off a SUBSCRIBE with one gets 0xA1.
    pub subscription_identifiers: bool,
    /// How long a 3.1.1 persistent session (clean session 0) outlives its
    /// connection; 4294967295 is never.
    pub persistent_session_expiry_secs: u32,
    /// The longest client id accepted; a longer one gets CONNACK 2 (0x85).
    pub client_id_max_bytes: usize,
    /// Whether clients may publish to `$` topics other than `$SYS`, which
    /// is the broker's whatever this says; refused ones are dropped.
    pub dollar_topics_from_clients: bool,
    /// How long a graceful shutdown waits for tasks to end.
    pub shutdown_grace_ms: u64,
    /// Where the binary keeps sessions, their queued messages and the
    /// retained messages across restarts (`--data-dir`).
    pub data_dir: std::path::PathBuf,
    /// When a change is on disk: see `Durability`.
    pub durability: Durability,
    /// With `durability = "periodic"`, the longest a change waits for its
    /// commit.
    pub durability_period_ms: u64,
    /// A bug to plant, to show that the simulation harness catches it.
    #[cfg(feature = "planted-bugs")]
    #[serde(skip)]
    pub planted_bug: Option<PlantedBug>,
    /// The simulation's one thread never finds the routing lock taken:
    /// there, one try in this many finds it so, that what is put off then
    /// is run too (`Shared::try_with_broker`); 0, none.
    #[cfg(feature = "sim")]
    #[serde(skip)]
    pub lock_taken_one_in: u32,
}

/// Whether a bug is planted, as a one-line predicate where it breaks:
/// `planted!(config, NoWillOnCrash)`. Without feature `planted-bugs` it is
/// `false`, and neither the bugs nor their names reach the binary.
#[cfg(feature = "planted-bugs")]
macro_rules! planted {
    ($config:expr, $bug:ident) => {
        $config.planted_bug == Some($crate::config::PlantedBug::$bug)
    };
}
#[cfg(not(feature = "planted-bugs"))]
macro_rules! planted {
    ($config:expr, $bug:ident) => {{
        let _ = &$config;
        false
    }};
}
pub(crate) use planted;

/// The bugs the simulation must catch (feature `planted-bugs`).
#[cfg(feature = "planted-bugs")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The leak (README, "Where it comes from"): after an abrupt drop the connection's task and
    /// its subscriptions live on.
    LeakOnAbruptDrop,
    /// A client that ends without DISCONNECT gets no will.
    NoWillOnCrash,
    /// A QoS 1/2 message for a full inflight window is dropped silently
    /// instead of queued, though the publisher got its acknowledgement.
    LoseWhenWindowFull,
    /// Unacknowledged messages are resent newest first on reconnect.
    ReorderRedelivery,
    /// A connection closed for keepalive leaves its task running.
    TaskLeakOnKeepAlive,
    /// A session's end leaves its connection's alarm set, and with it the
    /// connection's outbox, until the alarm rings (`server/alarms.rs`).
    AlarmKeptAtEnd,
    /// The timers task ends after its first pass: no keepalive, will
    /// delay or session expiry is served after it, though the broker
    /// still takes clients (`server/essential.rs` stops the server).
    TimersTaskEnds,
    /// A 5.0 client's Receive Maximum is ignored: its window is the
    /// broker's.
    IgnoreReceiveMaximum,
    /// Messages whose Message Expiry Interval has run out are sent anyway.
    DeliverExpired,
    /// A will is sent as soon as its connection ends, delay or not.
    IgnoreWillDelay,
    /// A session with a short expiry never expires.
    SessionNeverExpires,
    /// A shared subscription sends each message to every member.
    SharedToAll,
    /// A message a shared group hands to another member keeps the copy made
    /// for the first: its QoS and Subscription Identifier (a bug the
    /// simulation found).
    RerouteKeepsOldCopy,
    /// A persistent session resumes without what was queued for it while
    /// it was offline, and counts no drop.
    ResumeLosesQueue,
    /// A SUBSCRIBE to a filter the session holds, at a lower QoS, is
    /// acknowledged at that QoS but still routed at the old one.
    ResubscribeKeepsGrant,
    /// Messages resent to a resumed session go without DUP.
    ResendWithoutDup,
    /// A silent client is closed after three times its keepalive, not 1.5.
    KeepAliveSlack,
    /// A connection's outbound queue is bounded without its byte limit:
    /// QoS 0 is shed by count alone.
    OutboundWithoutByteLimit,
    /// Retained messages are sent to a new subscription without asking
    /// whether its client may read their topics.
    AclSkippedForRetained,
    /// A will is published without asking whether its client may write
    /// its topic.
    AclSkippedForWills,
    /// A CONNECT may take over or resume a session another user owns.
    CrossUserTakeover,
    /// Replies leave without waiting for the commit of what they
    /// acknowledge.
    AckBeforeCommit,
    /// The ids of QoS 2 messages awaiting PUBREL are not stored: a resend
    /// after a restart is routed again.
    AwaitingReleaseNotStored,
    /// A retained message cleared (empty payload) is not stored as gone.
    RetainedClearNotStored,
    /// Messages in flight at a crash come back without their packet ids,
    /// and are sent again under new ones.
    InflightIdsNotRestored,
    /// An UNSUBSCRIBE of a persistent session is acknowledged but not
    /// stored: the filter comes back at the next start.
    UnsubscribeNotStored,
    /// An offline session's expiry starts again at each start, as if it
    /// had been online at the crash: time the broker was down is lost.
    ExpiryRestartedAtBoot,
    /// A leading `#` or `+` matches `$` topics too [MQTT-4.7.2-1].
    WildcardsMatchDollar,
    /// `t/#` does not match `t`, its parent [MQTT-4.7.1-2].
    HashMissesParent,
    /// Clients may publish below `$SYS/` (only `$SYS` itself is refused).
    SysOpenToClients,
    /// A clean CONNECT for a client id whose session is offline resumes
    /// it (session present, subscriptions and queue kept); only a live
    /// session is ended.
    CleanStartKeepsOfflineSession,
    /// No Local is ignored: a client gets its own messages back (5.0).
    NoLocalIgnored,
    /// Retain As Published is ignored: forwarded messages always go with
    /// retain cleared (5.0).
    RetainAsPublishedIgnored,
    /// Retain Handling is ignored: every subscription gets the retained
    /// messages, as with 0 (5.0).
    RetainHandlingIgnored,
    /// A will published with retain is routed but not retained.
    RetainedWillNotKept,
    /// A session's full queue ends the fan-out (`break` for `continue`):
    /// the sessions after it miss the message, and only its one drop is
    /// counted.
    FullQueueEndsFanOut,
    /// A takeover detaches the old connection from the session but does
    /// not close it.
    TakeoverLeavesOldOpen,
    /// A connection skips its listener's handshakes: a TLS listener reads
    /// MQTT from the bare socket.
    TransportSkipped,
    /// A step of the clock of more than ten seconds (a suspended VM
    /// resuming) is taken for a glitch and left uncounted: sessions,
    /// delayed wills and messages outlive their intervals by it.
    ClockStepIgnored,
    /// The packet timeout counts on an idle connection as if a packet were
    /// half read (the read buffer's emptiness left out of the test): a
    /// client with no keepalive, or a long one, is closed after
    /// `packet_timeout_ms` of quiet.
    PacketTimeoutWhenIdle,
    /// Keepalive is enforced at the interval itself, without the half
    /// again the spec allows: a client whose link was held for longer
    /// than half its keepalive is closed.
    KeepAliveWithoutGrace,
    /// A commit that failed (an I/O error, a full disk) is taken for one
    /// that succeeded: what waited for it is acknowledged, and nothing is
    /// refused.
    CommitErrorIgnored,
    /// One failed handshake shuts its listener: every later connection to
    /// it is closed as soon as accepted, as if over the listener's limit.
    /// A client that sends a TLS port plain bytes takes the port down for
    /// everyone after it.
    HandshakeFailureShutsListener,
    /// A first packet that does not decode is answered with CONNACK 0x01
    /// (unacceptable protocol version), as an unknown protocol level is,
    /// before the close: a TLS ClientHello to the plain port gets a CONNACK.
    MalformedConnectAnswered,
    /// What the client sent right behind its TLS handshake, and rustls
    /// read with the handshake's last bytes, is thrown away: a CONNECT
    /// written the moment the handshake is done is lost, and its client
    /// waits for a CONNACK that never comes.
    TlsReadAheadLost,
    /// A first packet that does not decode leaves its connection open,
    /// unanswered, until the connect timeout: bytes that can never be a
    /// CONNECT (a TLS ClientHello on the plain port) hold a connection.
    MalformedConnectKeptOpen,
    /// A route's walk over the subscription index is done whole in its
    /// first slice, however much work it is (the lock held 4 to 7 ms for
    /// one client's 65,536 overlapping filters). Caught by the broker's
    /// test of the work per slice, not by the simulation, which sees no
    /// time.
    RouteWalkUnbounded,
    /// A route's matches are sorted all at once when its walk is done, as
    /// they were before `broker/runs.rs`: a publish matching 32,768
    /// filters sorts them all in one hold. Caught by the broker's test of
    /// the work per hold.
    RouteSortedWhole,
    /// An ending session's filters are all taken out of the index and
    /// their groups in the hold that ends it, however many (8.7 ms for
    /// 65,536). Caught by the broker's test of the work per hold.
    SessionEndUnbounded,
    /// A shared group may choose a member whose session has ended and
    /// whose filters are still being taken out a slice at a time: the
    /// message goes to no one (the broker finds no session). Caught by the
    /// broker's test of a group with such a member.
    SharedPicksReaped,
    /// A SUBSCRIBE's or UNSUBSCRIBE's filters are all handled in one hold,
    /// however many (one SUBSCRIBE of 200,000 filters held the lock
    /// 455 ms). Caught by the broker's test of the work per hold.
    SubscribeUnbounded,
    /// Retained messages owed by the first slices of a SUBSCRIBE handled in
    /// slices are sent before its SUBACK [MQTT-3.3.1-6]. Caught by the
    /// broker's test of a SUBSCRIBE in slices.
    RetainedBeforeSubAck,
    /// A filter owed retained messages since a route began is settled,
    /// when the route's live copy reaches it, with the retained message
    /// the route replaced, as it once was: the subscriber gets a value
    /// replaced before it subscribed. Caught by the broker's test of a
    /// subscription made during a retained message's route.
    LaterOwedGetPrevious,
    /// A client id the broker assigns is not checked against the sessions:
    /// a CONNECT with an empty id takes over the client that chose the
    /// same one.
    AssignedIdTaken,
    /// A 5.0 CONNACK leaves out the client id the broker assigned.
    AssignedIdNotReturned,
    /// A 5.0 client's Maximum Packet Size is ignored: it is sent packets
    /// larger than it.
    ClientPacketSizeIgnored,
    /// The session expiry a 5.0 DISCONNECT sets is ignored: the session
    /// ends as its CONNECT said.
    DisconnectExpiryIgnored,
    /// A 5.0 DISCONNECT may give a session an expiry its CONNECT did not
    /// ask for, which the spec calls a protocol error [MQTT-3.14.2-2].
    DisconnectExpiryFromZero,
    /// mosquitto 2's rule that keepalive 0 is over any maximum, applied
    /// with no maximum set: a 3.1.1 client that asks for no keepalive is
    /// refused (and a 5.0 one told to use 0), though nothing forbids it.
    KeepAliveZeroRefused,
    /// A chunk of a queue's tail read back from disk loses its first
    /// message: counted out of the tail, never put in the head.
    TailChunkSkipsFirst,
    /// Topic aliases are set on what a 5.0 client is sent up to the
    /// broker's own limit, whatever Topic Alias Maximum the client
    /// announced, none included [MQTT-3.3.2-8].
    SentAliasesUnasked,
    /// A topic that takes an alias from another, once all are taken, is
    /// sent by that alias alone, its name not given: the client reads it
    /// as the other topic's message.
    SentAliasReplacedUnnamed,
    /// A SUBSCRIBE that came before a message routed ahead of it gets the
    /// message replayed also where the session's other filters matched it
    /// and it had its copy (`broker/recent.rs`): a second copy.
    ReplayToHeldFilters,
    /// Acknowledgements put off while the routing lock is taken are
    /// dropped rather than kept for the next turn: their messages stay
    /// in flight, and the window they hold shuts the session's deliveries.
    PutOffAcksDropped,
    /// A SUBSCRIBE that replaces a subscription to the same filter owes it
    /// no retained messages: neither what the old one was still owed nor
    /// the store again [MQTT-3.8.4-3].
    ReplacedOwedDropped,
}

#[cfg(feature = "planted-bugs")]
impl PlantedBug {
    pub const ALL: [PlantedBug; 65] = [
        PlantedBug::LeakOnAbruptDrop,
        PlantedBug::NoWillOnCrash,
        PlantedBug::LoseWhenWindowFull,
        PlantedBug::ReorderRedelivery,
        PlantedBug::TaskLeakOnKeepAlive,
        PlantedBug::AlarmKeptAtEnd,
        PlantedBug::TimersTaskEnds,
        PlantedBug::IgnoreReceiveMaximum,
        PlantedBug::DeliverExpired,
        PlantedBug::IgnoreWillDelay,
        PlantedBug::SessionNeverExpires,
        PlantedBug::SharedToAll,
        PlantedBug::RerouteKeepsOldCopy,
        PlantedBug::ResumeLosesQueue,
        PlantedBug::ResubscribeKeepsGrant,
        PlantedBug::ResendWithoutDup,
        PlantedBug::KeepAliveSlack,
        PlantedBug::OutboundWithoutByteLimit,
        PlantedBug::AclSkippedForRetained,
        PlantedBug::AclSkippedForWills,
        PlantedBug::CrossUserTakeover,
        PlantedBug::AckBeforeCommit,
        PlantedBug::AwaitingReleaseNotStored,
        PlantedBug::RetainedClearNotStored,
        PlantedBug::InflightIdsNotRestored,
        PlantedBug::UnsubscribeNotStored,
        PlantedBug::ExpiryRestartedAtBoot,
        PlantedBug::WildcardsMatchDollar,
        PlantedBug::HashMissesParent,
        PlantedBug::SysOpenToClients,
        PlantedBug::CleanStartKeepsOfflineSession,
        PlantedBug::NoLocalIgnored,
        PlantedBug::RetainAsPublishedIgnored,
        PlantedBug::RetainHandlingIgnored,
        PlantedBug::RetainedWillNotKept,
        PlantedBug::FullQueueEndsFanOut,
        PlantedBug::TakeoverLeavesOldOpen,
        PlantedBug::TransportSkipped,
        PlantedBug::ClockStepIgnored,
        PlantedBug::PacketTimeoutWhenIdle,
        PlantedBug::KeepAliveWithoutGrace,
        PlantedBug::CommitErrorIgnored,
        PlantedBug::HandshakeFailureShutsListener,
        PlantedBug::MalformedConnectAnswered,
        PlantedBug::TlsReadAheadLost,
        PlantedBug::MalformedConnectKeptOpen,
        PlantedBug::RouteWalkUnbounded,
        PlantedBug::RouteSortedWhole,
        PlantedBug::SessionEndUnbounded,
        PlantedBug::SharedPicksReaped,
        PlantedBug::SubscribeUnbounded,
        PlantedBug::RetainedBeforeSubAck,
        PlantedBug::LaterOwedGetPrevious,
        PlantedBug::AssignedIdTaken,
        PlantedBug::AssignedIdNotReturned,
        PlantedBug::ClientPacketSizeIgnored,
        PlantedBug::DisconnectExpiryIgnored,
        PlantedBug::DisconnectExpiryFromZero,
        PlantedBug::KeepAliveZeroRefused,
        PlantedBug::TailChunkSkipsFirst,
        PlantedBug::SentAliasesUnasked,
        PlantedBug::SentAliasReplacedUnnamed,
        PlantedBug::ReplayToHeldFilters,
        PlantedBug::PutOffAcksDropped,
        PlantedBug::ReplacedOwedDropped,
    ];

    /// Its name in snake case: its test's name in tests/sim/planted_bugs.rs
    /// and what `tern-sim --plant` takes.
    pub fn name(self) -> String {
        let mut name = String::new();
        for c in format!("{self:?}").chars() {
            if c.is_ascii_uppercase() && !name.is_empty() {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        }
        name
    }

    pub fn by_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: Vec::new(),
            listener: Vec::new(),
            http_listen: None,
            workers: 0,
            connections_max: 100_000,
            sessions_max: 1_000_000,
            // mosquitto's users set 1 to 10 MB; 16 MiB takes their largest
            // (firmware chunks, images) with room, where MQTT's own 256 MiB
            // let one client make the broker buffer a quarter gigabyte.
            packet_size_max_bytes: 16 * 1024 * 1024,
            inflight_messages_max: 20,
            queued_messages_max: 1000,
            queued_bytes_max: 256 * 1024 * 1024,
            // A quarter of a GiB: most brokers' offline queues stay in
            // memory whole and are sent from it at once; 10 GB of them
            // need no more than this.
            offline_memory_max_bytes: 256 * 1024 * 1024,
            outbound_packets_max: 1000,
            outbound_bytes_max: 16 * 1024 * 1024,
            memory_max_bytes: 0,
            password_file: None,
            allow_anonymous: None,
            acl_file: None,
            subscriptions_per_client_max: 100_000,
            topic_levels_max: 200,
            retained_messages_max: 1_000_000,
            connect_timeout_ms: 10_000,
            packet_timeout_ms: 60_000,
            keep_alive_max_secs: u16::MAX,
            sys_interval_secs: 10,
            session_expiry_max_secs: u32::MAX,
            persistent_session_expiry_secs: 2 * 60 * 60,
            client_id_max_bytes: 256,
            receive_maximum: 1024,
            topic_alias_max: 10,
            topic_alias_sent_max: 16,
            shared_subscriptions: true,
            wildcard_subscriptions: true,
            dollar_topics_from_clients: false,
            subscription_identifiers: true,
            shutdown_grace_ms: 5_000,
            data_dir: std::path::PathBuf::from("tern-data"),
            durability: Durability::Sync,
            durability_period_ms: 1000,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
            #[cfg(feature = "sim")]
            lock_taken_one_in: 0,
        }
    }
}

/// When the binary's changes to durable state reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Before they are acknowledged: a PUBACK, PUBREC, SUBACK or UNSUBACK
    /// leaves only once what it acknowledges is on disk, and commits are
    /// grouped so that one fsync serves all that came meanwhile.
    Sync,
    /// At most `durability_period_ms` later, acknowledged at once: a crash
    /// loses up to a period's changes (mosquitto's autosave trade).
    Periodic,
    /// Never: all in memory, gone at a restart (`--in-memory`).
    None,
}

/// A configuration that cannot be used, said in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: display.clone(),
            source,
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { line, message, .. } => ConfigError::Parse {
                path: display,
                line,
                message,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: String::new(),
            line: e
                .span()
                .map_or(0, |span| 1 + text[..span.start].matches('\n').count()),
            message: e.message().replace('\n', " ").trim().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Limits of zero would make the broker refuse everything; say so now.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let must_be_positive = [
            ("connections_max", self.connections_max),
            ("sessions_max", self.sessions_max),
            ("inflight_messages_max", self.inflight_messages_max),
            ("outbound_packets_max", self.outbound_packets_max),
            ("topic_levels_max", self.topic_levels_max),
            ("connect_timeout_ms", self.connect_timeout_ms as usize),
            ("packet_timeout_ms", self.packet_timeout_ms as usize),
            ("receive_maximum", usize::from(self.receive_maximum)),
            ("durability_period_ms", self.durability_period_ms as usize),
        ];
        for (name, value) in must_be_positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if !(2..=crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES).contains(&self.packet_size_max_bytes)
        {
            return Err(ConfigError::Invalid(format!(
                "packet_size_max_bytes must be between 2 and {}",
                crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES
            )));
        }
        for listener in &self.listener {
            listener.validate()?;
        }
        if self.topic_alias_sent_max > TOPIC_ALIAS_SENT_MAX {
            return Err(ConfigError::Invalid(format!(
                "topic_alias_sent_max must be at most {TOPIC_ALIAS_SENT_MAX}"
            )));
        }
        if self.workers > WORKERS_MAX {
            return Err(ConfigError::Invalid(format!(
                "workers must be at most {WORKERS_MAX}"
            )));
        }
        if self.inflight_messages_max > usize::from(u16::MAX) {
            return Err(ConfigError::Invalid(
                "inflight_messages_max must be at most 65535".into(),
            ));
        }
        Ok(())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// `allow_anonymous`, or its default for a listener whose address
    /// the configuration does not know (one the caller bound itself):
    /// true when every configured listener is on loopback.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or_else(|| {
            self.listeners()
                .iter()
                .all(|listener| listener.address.ip().is_loopback())
        })
    }

    pub fn packet_timeout(&self) -> Duration {
        Duration::from_millis(self.packet_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn values_override_defaults() {
        let config = Config::from_toml(
            "inflight_messages_max = 5\nlisten = [\"0.0.0.0:1884\"]\nhttp_listen = \"127.0.0.1:8080\"\n",
        )
        .unwrap();
        assert_eq!(config.inflight_messages_max, 5);
        assert_eq!(config.listen, vec!["0.0.0.0:1884".parse().unwrap()]);
        assert_eq!(config.http_listen, Some("127.0.0.1:8080".parse().unwrap()));
    }

    #[test]
    fn errors_are_one_line_with_a_line_number() {
        let err = Config::from_toml("\n\nqueued_messages_max = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(":3: "), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = Config::from_toml("no_such_limit = 1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `no_such_limit`"), "{err}");
        let err = Config::from_toml("inflight_messages_max = 0")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "inflight_messages_max must be at least 1");
        let err = Config::from_toml("topic_alias_sent_max = 1025")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "topic_alias_sent_max must be at most 1024");
        assert!(Config::from_toml("topic_alias_sent_max = 1024").is_ok());
        let err = Config::from_toml("workers = 1025").unwrap_err().to_string();
        assert_eq!(err, "workers must be at most 1024");
        assert_eq!(Config::from_toml("workers = 1").unwrap().workers, 1);
    }

    #[test]
    fn anonymous_clients_are_allowed_by_default_on_loopback_alone() {
        let on = |addrs: &[&str]| Config {
            listen: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ..Config::default()
        };
        assert!(on(&["127.0.0.1:1883", "[::1]:1883"]).anonymous_allowed());
        assert!(!on(&["127.0.0.1:1883", "0.0.0.0:1883"]).anonymous_allowed());
        let told = Config {
            allow_anonymous: Some(true),
            ..on(&["0.0.0.0:1883"])
        };
        assert!(told.anonymous_allowed());
    }
}
