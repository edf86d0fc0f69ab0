//! Delivery: how one copy of a message reaches one session. Sent now, queued
//! or dropped; stamped with the time it has left; resent on reconnect; and
//! retired by the subscriber's PUBACK, PUBREC and PUBCOMP. Routing decides
//! who gets a copy; this decides what happens to it.

use std::sync::Arc;

use super::outbox::{Message, PubRec, Stage};
use super::routing::Frames;
use super::{Broker, ConnId, Effect, Notice, SessionId};
use crate::codec::{
    encoded_len, Ack, Packet, PacketId, Property, ProtocolVersion, Publish, QoS, SharedFrame,
};
use crate::config::planted;

impl Broker {
    /// Sends `message` to the session now, queues it, or drops and counts it.
    pub(super) fn deliver(&mut self, sid: SessionId, message: Message) {
        self.deliver_framed(sid, message, None);
    }

    /// `deliver`, where a QoS 1 message sent now may go as a frame of
    /// `frames`, shared with the other sessions it is fanned out to.
    pub(super) fn deliver_framed(
        &mut self,
        sid: SessionId,
        message: Message,
        frames: Option<&mut Frames>,
    ) {
        let session = self.sessions.get(sid);
        if message.publish.qos == QoS::AtMostOnce {
            // QoS 0 is not queued for offline clients, as in mosquitto.
            if let Some(conn) = session.conn() {
                if let Some(packet) = self.stamp(
                    sid,
                    Arc::unwrap_or_clone(message.publish),
                    message.expires_at,
                    None,
                    false,
                ) {
                    self.effects.push(Effect::Send(conn, packet));
                }
            }
            return;
        }
        let (max_queued, max_bytes) = (
            self.config.queued_messages_max,
            self.config.queued_bytes_max,
        );
        let online = session.conn().is_some();
        // Behind a tail on disk, or past the memory budget (`tail.rs`).
        let to_tail = self.goes_to_tail(sid, &message);
        if online && !to_tail && session.outbox.may_send_now() {
            self.send_inflight(sid, message, frames);
        } else if online && !to_tail && planted!(self.config, LoseWhenWindowFull) {
            // Planted: lost without a count.
        } else if session.outbox.may_queue(&message, max_queued, max_bytes) {
            let session = self.sessions.get_mut(sid);
            match to_tail {
                true => {
                    self.counts.spill(&mut session.outbox, message);
                    // Online behind its tail: its head may have run dry.
                    self.want_tail(sid);
                }
                false => self.counts.queue(&mut session.outbox, message),
            }
        } else {
            self.dropped.queue_full += 1;
            self.notices.debug(|| Notice::QueueFull {
                client_id: session.client_id().to_owned(),
                topic: message.publish.topic.clone(),
            });
            #[cfg(feature = "sim")]
            self.count_drops_for(sid, 1);
        }
    }

    /// The PUBLISH packet for `message` as the session's client gets it now,
    /// with the time it has left; `None`, counted, when it has expired or is
    /// larger than the client takes. A resend (`resend`) of a PUBLISH already
    /// sent does not expire [MQTT-4.3.3-7 of 5.0]: its delivery has begun.
    pub(super) fn stamp(
        &mut self,
        sid: SessionId,
        mut publish: Publish,
        expires_at: Option<super::Millis>,
        id: Option<PacketId>,
        resend: bool,
    ) -> Option<Packet> {
        // Expired once its interval has passed: one of 0 reaches those
        // online at once and is queued for nobody.
        let expired = expires_at.is_some_and(|at| at < self.now);
        if !resend && expired && !planted!(self.config, DeliverExpired) {
            self.dropped.expired += 1;
            return None;
        }
        publish.packet_id = id;
        if let Some(at) = expires_at {
            let left = at.saturating_sub(self.now).div_ceil(1000);
            let left = u32::try_from(left).unwrap_or(u32::MAX);
            publish
                .properties
                .push(Property::MessageExpiryInterval(left));
        }
        let session = self.sessions.get(sid);
        // Forwarding can make a packet larger than the one received (a
        // topic for its alias, subscription ids): never past MQTT's limit.
        // Measuring costs: without a client maximum or properties, and with
        // a payload under half the limit, the packet cannot be over it.
        let protocol_max = crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES;
        let max = session.packet_size_max().min(protocol_max);
        let may_be_over = session.packet_size_max() != usize::MAX
            || !publish.properties.is_empty()
            || publish.payload.len() > protocol_max / 2;
        let packet = Packet::Publish(publish);
        if may_be_over && encoded_len(&packet, session.version()) > max {
            // [MQTT-3.1.2-25]: discarded as if it had been sent.
            self.dropped.too_large += 1;
            self.notices.debug(|| Notice::TooLarge {
                client_id: session.client_id().to_owned(),
            });
            return None;
        }
        Some(packet)
    }

    fn send_inflight(&mut self, sid: SessionId, mut message: Message, frames: Option<&mut Frames>) {
        let session = self.sessions.get_mut(sid);
        let conn = session
            .conn()
            .expect("inflight messages go to connected sessions");
        let resend = message.resend_id.is_some();
        let packet_id = match message.resend_id.take() {
            Some(id) => {
                Arc::make_mut(&mut message.publish).dup = true;
                id
            }
            None => session.outbox.next_packet_id(),
        };
        if let Some(frames) = frames.filter(|_| !resend && is_frameable(&message)) {
            return self.send_frame_as(sid, conn, packet_id, message, frames);
        }
        let publish = Publish::clone(&message.publish);
        let Some(packet) = self.stamp(sid, publish, message.expires_at, Some(packet_id), resend)
        else {
            return;
        };
        let session = self.sessions.get_mut(sid);
        self.counts.sent(&mut session.outbox, packet_id, message);
        self.effects.push(Effect::Send(conn, packet));
    }

    /// `send_inflight` of a message that is the same bytes for every
    /// session of a protocol version but for its packet id: the frame of
    /// the first is shared by the rest, each with its id written in as its
    /// connection copies it. A fan-out to 1,000 sessions at QoS 1 copied,
    /// encoded and dropped a PUBLISH for each.
    fn send_frame_as(
        &mut self,
        sid: SessionId,
        conn: ConnId,
        packet_id: PacketId,
        message: Message,
        frames: &mut Frames,
    ) {
        let session = self.sessions.get(sid);
        let (version, max) = (session.version(), session.packet_size_max());
        let slot = usize::from(version == ProtocolVersion::V5);
        let frame = match &frames[slot] {
            Some(frame) => frame.clone(),
            None => {
                let mut publish = Publish::clone(&message.publish);
                publish.packet_id = Some(packet_id);
                let frame = Arc::new(SharedFrame::new(Packet::Publish(publish), version));
                frames[slot] = Some(frame.clone());
                frame
            }
        };
        if frame.len() > max.min(crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES) {
            // [MQTT-3.1.2-25]: discarded as if it had been sent.
            self.dropped.too_large += 1;
            self.notices.debug(|| Notice::TooLarge {
                client_id: session.client_id().to_owned(),
            });
            return;
        }
        let session = self.sessions.get_mut(sid);
        self.counts.sent(&mut session.outbox, packet_id, message);
        self.effects
            .push(Effect::SendFrameAs(conn, frame, packet_id));
    }

    /// Moves queued messages into the inflight window while there is room.
    /// Then asks for the next chunk of its tail on disk if it runs low.
    pub(super) fn fill_window(&mut self, sid: SessionId) {
        loop {
            let session = self.sessions.get_mut(sid);
            if session.conn().is_none() {
                return;
            }
            let Some(message) = self.counts.next_for_window(&mut session.outbox) else {
                break;
            };
            self.send_inflight(sid, message, None);
        }
        self.want_tail(sid);
    }

    /// On reconnect of a persistent session: every unacknowledged message
    /// again, in its first order, with DUP [MQTT-4.4.0-1]; then the queue.
    /// One that has expired meanwhile is dropped, as mosquitto does. A
    /// client that now allows fewer in flight (its Receive Maximum) gets
    /// the rest later, under the same packet ids [MQTT-4.9.0-2 of 5.0].
    pub(super) fn resend_inflight(&mut self, sid: SessionId) {
        let session = self.sessions.get_mut(sid);
        let conn = session.conn().expect("resending to a connected session");
        let inflight = self.counts.take_for_resend(&mut session.outbox);
        let first_resend = self.effects.len();
        for entry in inflight {
            let packet = match &entry.stage {
                Stage::Unacked(message) => {
                    let mut publish = Publish::clone(&message.publish);
                    publish.dup = !planted!(self.config, ResendWithoutDup);
                    let id = Some(entry.packet_id);
                    match self.stamp(sid, publish, message.expires_at, id, true) {
                        Some(packet) => packet,
                        None => continue,
                    }
                }
                Stage::Released => Packet::PubRel(Ack::success(entry.packet_id)),
            };
            self.effects.push(Effect::Send(conn, packet));
            let session = self.sessions.get_mut(sid);
            self.counts.resent(&mut session.outbox, entry);
        }
        if planted!(self.config, ReorderRedelivery) {
            self.effects[first_resend..].reverse();
        }
        if planted!(self.config, ResumeLosesQueue) {
            let out = &mut self.sessions.get_mut(sid).outbox;
            while self.counts.next_for_window(out).is_some() {}
        }
        self.fill_window(sid);
    }

    /// PUBACK for a QoS 1 message we sent. An unknown id is ignored.
    pub fn puback(&mut self, conn: ConnId, packet_id: PacketId) {
        self.complete(
            conn,
            packet_id,
            |stage| matches!(stage, Stage::Unacked(m) if m.publish.qos == QoS::AtLeastOnce),
        );
    }

    /// PUBCOMP for a QoS 2 message we released.
    pub fn pubcomp(&mut self, conn: ConnId, packet_id: PacketId) {
        self.complete(conn, packet_id, |stage| matches!(stage, Stage::Released));
    }

    fn complete(&mut self, conn: ConnId, packet_id: PacketId, expected: impl Fn(&Stage) -> bool) {
        let sid = self.sessions.sid_of(conn);
        let out = &mut self.sessions.get_mut(sid).outbox;
        if self.counts.complete(out, packet_id, expected) {
            self.fill_window(sid);
        } else {
            let client_id = self.sessions.get(sid).client_id();
            self.notices.debug(|| Notice::AckUnknown {
                client_id: client_id.to_owned(),
                packet_id,
            });
        }
    }

    /// PUBREC for a QoS 2 message we sent: release it. A repeated PUBREC gets
    /// the PUBREL again. A 5.0 PUBREC with an error reason ends the flow
    /// there [MQTT-4.3.3-4 of 5.0].
    pub fn pubrec(&mut self, conn: ConnId, ack: &Ack) {
        let packet_id = ack.packet_id;
        let sid = self.sessions.sid_of(conn);
        let out = &mut self.sessions.get_mut(sid).outbox;
        match self.counts.pubrec(out, packet_id, ack.reason.is_error()) {
            PubRec::Unknown => {
                let client_id = self.sessions.get(sid).client_id();
                self.notices.debug(|| Notice::PubRecUnknown {
                    client_id: client_id.to_owned(),
                    packet_id,
                });
            }
            PubRec::NotQos2 => {
                let client_id = self.sessions.get(sid).client_id();
                self.notices.debug(|| Notice::PubRecForQos1 {
                    client_id: client_id.to_owned(),
                    packet_id,
                });
            }
            PubRec::Ended => self.fill_window(sid),
            PubRec::Released => self
                .effects
                .push(Effect::Send(conn, Packet::PubRel(Ack::success(packet_id)))),
        }
    }
}

/// Whether a message sent now (not resent: DUP) is the same bytes, but for
/// its packet id, for every session it goes to with the same protocol
/// version: QoS 1 (QoS 2 waits for commits, `Outbound::waits_for_commit`),
/// no time left to stamp, retain cleared, and no Subscription Identifier
/// of a session's own.
fn is_frameable(message: &Message) -> bool {
    let p = &message.publish;
    p.qos == QoS::AtLeastOnce
        && !p.retain
        && message.expires_at.is_none()
        // Not `iter()`: it copies each property out, User Properties
        // decoded into strings, for every delivery.
        && !p
            .properties
            .others()
            .iter()
            .any(|q| matches!(q, Property::SubscriptionIdentifier(_)))
}
