//! One client's session: its subscriptions, the QoS 1/2 messages on their way
//! to it, and the QoS 2 messages it has sent us but not yet released.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::ConnId;
use crate::codec::{LastWill, PacketId, ProtocolVersion, Publish, QoS};
use crate::topic::TopicFilter;

#[derive(Debug)]
pub struct Session {
    pub client_id: String,
    /// The connection attached to it, if the client is online.
    pub conn: Option<ConnId>,
    pub version: ProtocolVersion,
    /// Clean sessions end with their connection.
    pub clean: bool,
    pub will: Option<LastWill>,
    pub subscriptions: BTreeMap<TopicFilter, QoS>,
    pub outgoing: Outgoing,
    /// QoS 2 packet ids received and answered with PUBREC, awaiting PUBREL;
    /// a PUBLISH that reuses one is a resend and is not routed again. Packet
    /// ids bound it at 65,535.
    pub incoming_qos2: BTreeSet<PacketId>,
}

/// QoS 1/2 messages to the client: those sent and not yet acknowledged
/// (`inflight`, in send order) and those waiting for room in the window.
#[derive(Debug, Default)]
pub struct Outgoing {
    pub inflight: VecDeque<Inflight>,
    pub pending: VecDeque<Publish>,
    /// Payload bytes in `pending`.
    pub pending_bytes: usize,
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
    Unacked(Publish),
    /// QoS 2 PUBREL sent, PUBCOMP awaited.
    Released,
}

impl Stage {
    /// The QoS the message was sent with; a released one was QoS 2.
    pub fn qos(&self) -> QoS {
        match self {
            Stage::Unacked(publish) => publish.qos,
            Stage::Released => QoS::ExactlyOnce,
        }
    }
}

impl Outgoing {
    /// A packet id not in use by any inflight message. The window is far
    /// smaller than 65,535, so the search ends quickly.
    pub fn next_packet_id(&mut self) -> PacketId {
        let mut id = self
            .last_id
            .map_or(PacketId::new(1).expect("1 is non-zero"), PacketId::next);
        while self.inflight.iter().any(|m| m.packet_id == id) {
            id = id.next();
        }
        self.last_id = Some(id);
        id
    }

    pub fn position(&self, packet_id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|m| m.packet_id == packet_id)
    }

    pub fn push_pending(&mut self, publish: Publish) {
        self.pending_bytes += publish.payload.len();
        self.pending.push_back(publish);
    }

    pub fn pop_pending(&mut self) -> Option<Publish> {
        let publish = self.pending.pop_front()?;
        self.pending_bytes -= publish.payload.len();
        Some(publish)
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
            clean: true,
            will: None,
            subscriptions: BTreeMap::new(),
            outgoing: Outgoing::default(),
            incoming_qos2: BTreeSet::new(),
        }
    }
}
