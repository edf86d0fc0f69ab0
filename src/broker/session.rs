//! One client's session: its subscriptions, the QoS 1/2 messages on their way
//! to it, and the QoS 2 messages it has sent us but not yet released.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{ConnId, GroupId, Millis};
use crate::codec::{LastWill, PacketId, ProtocolVersion, Publish, QoS, SubscriptionOptions};
use crate::topic::TopicFilter;

/// A session that never expires (3.1.1's persistent sessions, and 5.0's
/// interval 0xFFFFFFFF).
pub const EXPIRY_NEVER: u32 = u32::MAX;

#[derive(Debug)]
pub struct Session {
    pub client_id: String,
    /// The connection attached to it, if the client is online.
    pub conn: Option<ConnId>,
    pub version: ProtocolVersion,
    /// Seconds the session outlives its connection: 0 ends it with the
    /// connection (3.1.1's clean session), `EXPIRY_NEVER` keeps it.
    pub expiry_secs: u32,
    /// When an offline session ends, if it ever does.
    pub expires_at: Option<Millis>,
    /// The CONNECT asked for no expiry, so its DISCONNECT may not ask for
    /// one [MQTT-3.14.2-2]; told apart from an expiry the broker cut to 0.
    pub asked_no_expiry: bool,
    /// Boxed, as is the delayed one: most sessions have none, and an
    /// inline will with its properties costs every idle session ~80 bytes.
    pub will: Option<Box<LastWill>>,
    /// A will whose Will Delay Interval is running, and when it is due.
    pub delayed_will: Option<Box<(Millis, LastWill)>>,
    /// The most QoS 1/2 messages in flight to the client: the broker's
    /// limit, or the client's Receive Maximum if lower.
    pub window: usize,
    /// The client's Maximum Packet Size; larger packets are not sent to it.
    pub packet_size_max: usize,
    pub subscriptions: BTreeMap<TopicFilter, Subscription>,
    pub outgoing: Outgoing,
    /// QoS 2 packet ids received and answered with PUBREC, awaiting PUBREL;
    /// a PUBLISH that reuses one is a resend and is not routed again. Packet
    /// ids bound it at 65,535, and a 5.0 client's at the Receive Maximum.
    pub incoming_qos2: BTreeSet<PacketId>,
}

/// What one filter of a session asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// The Subscription Identifier its SUBSCRIBE carried (5.0).
    pub id: Option<u32>,
}

/// A message on its way to one session.
#[derive(Debug, Clone)]
pub struct Message {
    /// As it will be sent, but for its packet id and the Message Expiry
    /// Interval, which is the time left when it is sent.
    pub publish: Publish,
    pub expires_at: Option<Millis>,
    /// The shared subscription that chose this session, so that another
    /// member gets it if this session ends before acknowledging it.
    pub group: Option<GroupId>,
    /// The packet id it was sent with before, if it was sent and then put
    /// back in the queue because a resumed session's client allows fewer
    /// messages in flight: it is sent again under that id, with DUP.
    pub resend_id: Option<PacketId>,
    /// QoS and retain flag as published, before this session's copy lowered
    /// them: what another member's copy is made from.
    pub published: (QoS, bool),
}

impl Message {
    /// What it counts against a session's queue bytes: payload, topic and
    /// properties, all of which a client chooses.
    pub fn weight(&self) -> usize {
        let p = &self.publish;
        p.payload.len() + p.topic.as_str().len() + p.properties.wire_len()
    }
}

/// QoS 1/2 messages to the client: those sent and not yet acknowledged
/// (`inflight`, in send order) and those waiting for room in the window.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub inflight: VecDeque<Inflight>,
    pub pending: VecDeque<Message>,
    /// The weight of the messages in `pending` (`Message::weight`).
    pub pending_bytes: usize,
    /// Messages in `pending` with a `resend_id`, which stays taken.
    pending_with_ids: usize,
    last_id: Option<PacketId>,
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: PacketId,
    pub stage: Stage,
}

#[derive(Debug, Clone)]
pub enum Stage {
    /// QoS 1 sent, PUBACK awaited; QoS 2 sent, PUBREC awaited. The message is
    /// kept for redelivery with DUP.
    Unacked(Message),
    /// QoS 2 PUBREL sent, PUBCOMP awaited.
    Released,
}

impl Outgoing {
    /// A packet id not in use by any inflight message. The window is far
    /// smaller than 65,535, so the search ends quickly.
    pub fn next_packet_id(&mut self) -> PacketId {
        let mut id = self
            .last_id
            .map_or(PacketId::new(1).expect("1 is non-zero"), PacketId::next);
        let taken = |id: PacketId| {
            self.inflight.iter().any(|m| m.packet_id == id)
                || (self.pending_with_ids > 0
                    && self.pending.iter().any(|m| m.resend_id == Some(id)))
        };
        while taken(id) {
            id = id.next();
        }
        self.last_id = Some(id);
        id
    }

    pub fn position(&self, packet_id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|m| m.packet_id == packet_id)
    }

    pub fn push_pending(&mut self, message: Message) {
        self.pending_bytes += message.weight();
        self.pending.push_back(message);
    }

    /// Puts a message that was in flight back at the head of the queue,
    /// keeping its packet id.
    pub fn unsend(&mut self, mut message: Message, packet_id: PacketId) {
        message.resend_id = Some(packet_id);
        self.pending_with_ids += 1;
        self.pending_bytes += message.weight();
        self.pending.push_front(message);
    }

    pub fn pop_pending(&mut self) -> Option<Message> {
        let message = self.pending.pop_front()?;
        self.pending_bytes -= message.weight();
        if message.resend_id.is_some() {
            self.pending_with_ids -= 1;
        }
        Some(message)
    }
}

impl Session {
    /// A session with no connection yet; `Broker::connect` attaches one and
    /// sets the fields its CONNECT decides.
    pub fn new(client_id: String) -> Session {
        Session {
            client_id,
            conn: None,
            version: ProtocolVersion::V311,
            expiry_secs: 0,
            expires_at: None,
            asked_no_expiry: true,
            will: None,
            delayed_will: None,
            window: 1,
            packet_size_max: usize::MAX,
            subscriptions: BTreeMap::new(),
            outgoing: Outgoing::default(),
            incoming_qos2: BTreeSet::new(),
        }
    }
}
