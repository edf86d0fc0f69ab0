//! What every simulated client did and saw, in simulated time: the record the
//! invariants are checked against and that two runs of one seed must repeat
//! exactly.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use tern::codec::{QoS, SubscriptionOptions};

/// A client's name: `c17`. Stable across its reconnects.
pub type ClientName = String;

/// Identifies a message across the run: who published it and its number in
/// that client's sequence. Carried in the payload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId {
    pub publisher: ClientName,
    pub seq: u64,
}

impl MessageId {
    pub fn payload(&self) -> String {
        format!("{}:{}", self.publisher, self.seq)
    }

    pub fn parse(payload: &[u8]) -> Option<MessageId> {
        let text = std::str::from_utf8(payload).ok()?;
        let (publisher, seq) = text.rsplit_once(':')?;
        Some(MessageId {
            publisher: publisher.to_owned(),
            seq: seq.parse().ok()?,
        })
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client sent DISCONNECT, then closed.
    Disconnect,
    /// The client closed its socket without DISCONNECT.
    Dropped,
    /// The harness crashed the client's host.
    Crashed,
    /// The broker closed the connection (takeover, keepalive, restart).
    ClosedByBroker,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// CONNECT written: the broker may hold a session from here on.
    ConnectSent {
        client: ClientName,
        /// Twins share one client id; everyone else's is their name.
        client_id: String,
        conn: u32,
        clean: bool,
        /// MQTT 5.0, or 3.1.1.
        v5: bool,
        /// Seconds the session outlives the connection: 0 for a clean 3.1.1
        /// session, `u32::MAX` for a persistent one; 5.0 asks for it.
        expiry: u32,
        /// Seconds; the broker closes it 1.5 times this after its last packet.
        keep_alive: u16,
        /// A hostile client (`sim/src/adversary.rs`): no delivery to it is
        /// owed, since its queues are over their limits by design.
        adversary: bool,
    },
    /// The user name and password its CONNECT carried (recorded only for
    /// a CONNECT with either, after its `ConnectSent`).
    Login {
        client: ClientName,
        conn: u32,
        user: Option<String>,
        password: Option<String>,
    },
    /// The connection is not plain TCP to the plain port (recorded only
    /// then, after its `ConnectSent`).
    Wire {
        client: ClientName,
        conn: u32,
        wire: crate::workload::Wire,
    },
    /// A TLS client's handshake failed or timed out; it tries again.
    HandshakeFailed { client: ClientName, error: String },
    /// A client not on plain TCP to the plain port found no broker to
    /// connect to in all its tries, and skipped its connection.
    GaveUp { client: ClientName },
    /// A CONNECT over a wire other than plain TCP to the plain port got no
    /// CONNACK: the broker closed the connection (`closed`, maybe after
    /// bytes that were not MQTT, such as a TLS alert), or 5 s passed
    /// without the close.
    Unanswered {
        client: ClientName,
        conn: u32,
        closed: bool,
    },
    /// A probe's TLS ClientHello to the plain port: the first bytes the
    /// broker sent back, if any, and how long after the ClientHello it
    /// closed the connection, if it did within 5 s.
    HelloAnswered {
        client: ClientName,
        answer: Vec<u8>,
        closed_after: Option<Duration>,
    },
    /// CONNACK refused, with its code as the codec names it.
    Refused {
        client: ClientName,
        conn: u32,
        code: String,
    },
    /// CONNACK accepted. `conn` counts the client's connections from 1.
    Connected {
        client: ClientName,
        conn: u32,
        clean: bool,
        session_present: bool,
        /// The will's topic, QoS and retain flag; its payload is
        /// `will:{client}:{conn}`.
        will: Option<(String, QoS, bool)>,
        /// Seconds the broker waits before sending the will (5.0).
        will_delay: u32,
    },
    /// The CONNECT had an empty client id and was accepted: the id its
    /// CONNACK assigned (5.0), or None (3.1.1 does not say).
    AssignedId {
        client: ClientName,
        conn: u32,
        id: Option<String>,
    },
    /// The client's DISCONNECT set its session's expiry to `expiry`
    /// seconds (5.0), recorded before its `Ended`.
    ExpiryOnDisconnect {
        client: ClientName,
        conn: u32,
        expiry: u32,
    },
    SubscribeSent {
        client: ClientName,
        conn: u32,
        filter: String,
        qos: QoS,
        /// The Subscription Identifier it carried (5.0).
        sub_id: Option<u32>,
        /// No Local, Retain As Published and Retain Handling, when a 5.0
        /// client asked for other than the defaults.
        options: Option<SubscriptionOptions>,
        /// What its SUBACK answers to: two SUBSCRIBEs to one filter may
        /// wait for theirs at once.
        packet_id: u16,
    },
    /// SUBACK: the granted QoS, or None for 0x80.
    Subscribed {
        client: ClientName,
        conn: u32,
        filter: String,
        granted: Option<QoS>,
        packet_id: u16,
    },
    UnsubscribeSent {
        client: ClientName,
        conn: u32,
        filter: String,
    },
    Unsubscribed {
        client: ClientName,
        conn: u32,
        filter: String,
    },
    PublishSent {
        client: ClientName,
        conn: u32,
        id: MessageId,
        topic: String,
        qos: QoS,
        retain: bool,
        /// An empty payload clears a retained message; its id is kept aside.
        empty: bool,
        /// Message Expiry Interval in seconds (5.0).
        expiry: Option<u32>,
    },
    /// An unacknowledged publish sent again, with DUP, on a resumed session.
    /// The broker may route it again, after later messages.
    PublishResent {
        client: ClientName,
        conn: u32,
        id: MessageId,
    },
    /// PUBACK for QoS 1, PUBREC for QoS 2: the broker owns the message.
    Acked { client: ClientName, id: MessageId },
    /// A PUBLISH arrived. `first` is false for a QoS 2 resend the client
    /// had already received under the same packet id.
    Received {
        client: ClientName,
        conn: u32,
        topic: String,
        payload: String,
        qos: QoS,
        retain: bool,
        dup: bool,
        first: bool,
        /// The Subscription Identifiers it carried (5.0).
        sub_ids: Vec<u32>,
        /// The Message Expiry Interval it carried: the time it had left.
        expiry: Option<u32>,
    },
    /// The client stopped reading for a while (a slow subscriber).
    Paused { client: ClientName, conn: u32 },
    /// The client went silent: no more packets, acknowledgements or pings.
    Hung { client: ClientName, conn: u32 },
    Ended {
        client: ClientName,
        conn: u32,
        how: Ending,
    },
    /// The harness held the link between the client's host and the broker:
    /// a hold longer than 1.5 keepalives lets the broker close the
    /// connection before a DISCONNECT gets through.
    Held { client: ClientName },
    /// The harness released the held link: what waited on it goes on.
    Released { client: ClientName },
    /// The harness partitioned the client's host from the broker and
    /// crashed it: what the client had written and the broker had not yet
    /// read (a DISCONNECT just sent) is lost with it.
    SilentlyCrashed { client: ClientName },
    /// The broker host was restarted; every session is gone.
    BrokerRestarted,
    /// The broker host's clock jumped forward by `by` at once, as a
    /// suspended VM's does when it resumes; the world's did not.
    ClockJumped { by: Duration },
    /// The client saw the broker break a rule it can check by itself alone,
    /// such as its Receive Maximum.
    Violation {
        client: ClientName,
        conn: u32,
        what: String,
    },
}

/// One event and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: Duration,
    pub event: Event,
}

/// Shared by every host of one simulation, which all run on one thread.
#[derive(Clone, Default)]
pub struct History {
    entries: Rc<RefCell<Vec<Entry>>>,
}

impl History {
    pub fn record(&self, event: Event) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        self.entries.borrow_mut().push(Entry { at, event });
    }

    /// Records from outside any host (the harness between steps).
    pub fn record_at(&self, at: Duration, event: Event) {
        self.entries.borrow_mut().push(Entry { at, event });
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>9.3}s {:?}", self.at.as_secs_f64(), self.event)
    }
}
