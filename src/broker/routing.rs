//! Messages: a client's PUBLISH routed to every matching session, and the
//! QoS 1/2 flows that carry each copy to its subscriber.

use bytes::Bytes;

use super::session::{Inflight, Message, Stage, Subscription};
use super::{Broker, BrokerError, ConnId, GroupId, Millis, SessionId};
use crate::codec::{
    encoded_len, Ack, Packet, PacketId, Property, ProtocolVersion, Publish, QoS, ReasonCode,
};
use crate::config::planted;
use crate::topic::TopicName;

impl Broker {
    /// A PUBLISH from a client. It is routed before it is acknowledged, so
    /// an acknowledged message is already in every subscriber's queue.
    pub fn publish(&mut self, conn: ConnId, mut publish: Publish) -> Result<(), BrokerError> {
        self.check_levels(publish.topic.as_str())?;
        let sid = self.sid_of(conn);
        let v5 = self.sessions[&sid].version == ProtocolVersion::V5;
        if publish
            .properties
            .subscription_identifiers()
            .next()
            .is_some()
        {
            return Err(BrokerError::Protocol(
                "a client's PUBLISH carries a Subscription Identifier",
            ));
        }
        // The connection resolved the alias; it means nothing to others.
        publish
            .properties
            .retain(|p| !matches!(p, Property::TopicAlias(_)));
        let utf8_ok = publish.properties.payload_format_indicator() != Some(1)
            || std::str::from_utf8(&publish.payload).is_ok();
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) if !utf8_ok => return Err(BrokerError::PayloadFormatInvalid),
            (QoS::AtMostOnce, _) => {
                self.route_from(Some(sid), &publish);
            }
            (QoS::AtLeastOnce, Some(id)) => {
                let reason = if !utf8_ok {
                    ReasonCode::PAYLOAD_FORMAT_INVALID
                } else {
                    matched_reason(self.route_from(Some(sid), &publish))
                };
                let ack = Ack::with_reason(id, reason);
                self.effects.push(Effect::Send(conn, Packet::PubAck(ack)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // Method B of [MQTT-4.3.3]: route now, remember the id until
                // PUBREL so that a resend is not routed twice.
                let receive_max = self.config.receive_maximum;
                let session = self.session_mut(sid);
                let known = session.incoming_qos2.contains(&id);
                let reason = if !utf8_ok {
                    ReasonCode::PAYLOAD_FORMAT_INVALID
                } else if known {
                    ReasonCode::SUCCESS
                } else {
                    if v5 && session.incoming_qos2.len() >= usize::from(receive_max) {
                        return Err(BrokerError::ReceiveMaximumExceeded { max: receive_max });
                    }
                    session.incoming_qos2.insert(id);
                    matched_reason(self.route_from(Some(sid), &publish))
                };
                let ack = Ack::with_reason(id, reason);
                self.effects.push(Effect::Send(conn, Packet::PubRec(ack)));
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
            properties: Default::default(),
        };
        self.route_from(None, &publish);
    }

    /// Routes a message that `origin` published (none for wills and the
    /// broker's own); returns how many sessions it went to.
    pub(super) fn route_from(&mut self, origin: Option<SessionId>, publish: &Publish) -> usize {
        let expires_at = publish
            .properties
            .message_expiry_interval()
            .map(|secs| self.now + u64::from(secs) * 1000);
        // Forwarded as published [MQTT-3.3.2-*], but for the interval, which
        // is worked out again when each copy is sent.
        let mut forwarded = publish.clone();
        forwarded
            .properties
            .retain(|p| !matches!(p, Property::MessageExpiryInterval(_)));
        if publish.retain {
            self.retain(&forwarded, expires_at);
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.index.matches(&publish.topic, &mut matches);
        matches.sort_unstable_by_key(|m| m.0);
        let mut delivered = 0;
        let mut frames = Frames::default();
        // One copy per session [MQTT-3.3.4-2 of 5.0]: at the highest QoS its
        // filters grant, with every Subscription Identifier among them.
        for run in matches.chunk_by(|a, b| a.0 == b.0) {
            let sid = run[0].0;
            let subscriptions = run
                .iter()
                .map(|(_, s)| s)
                .filter(|s| !(s.options.no_local && origin == Some(sid)));
            if is_plain_qos0(&forwarded, subscriptions.clone()) {
                delivered += 1;
                self.send_frame(sid, &forwarded, expires_at, &mut frames);
                continue;
            }
            let Some(message) = copy_for(&forwarded, subscriptions) else {
                continue;
            };
            delivered += 1;
            self.deliver(
                sid,
                Message {
                    publish: message,
                    expires_at,
                    group: None,
                    resend_id: None,
                    published: (forwarded.qos, forwarded.retain),
                },
            );
        }
        self.matches = matches;
        delivered + self.route_shared(&forwarded, expires_at)
    }

    fn retain(&mut self, publish: &Publish, expires_at: Option<Millis>) {
        let max = self.config.retained_messages_max;
        let retained = super::Retained {
            payload: publish.payload.clone(),
            qos: publish.qos,
            properties: publish.properties.clone(),
            expires_at,
        };
        if self.retained.set(&publish.topic, retained, max) == super::RetainOutcome::Refused {
            self.dropped.retained_full += 1;
            tracing::warn!(topic = %publish.topic, max, "retained store full; message not retained");
        }
    }

    /// Sends a plain QoS 0 copy of `forwarded` to the session if it is
    /// online (QoS 0 is not queued for offline clients, as in mosquitto), as
    /// the frame `frames` holds for its version, encoded on first need.
    fn send_frame(
        &mut self,
        sid: SessionId,
        forwarded: &Publish,
        expires_at: Option<Millis>,
        frames: &mut Frames,
    ) {
        let session = &self.sessions[&sid];
        let Some(conn) = session.conn else {
            return;
        };
        let (version, max) = (session.version, session.packet_size_max);
        let slot = usize::from(version == ProtocolVersion::V5);
        let frame = if let Some(frame) = &frames[slot] {
            frame.clone()
        } else {
            let copy = Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                packet_id: None,
                ..forwarded.clone()
            };
            // Built for this session, so within its limits; `None` is counted.
            let Some(packet) = self.stamp(sid, copy, expires_at, None, false) else {
                return;
            };
            let mut buf = bytes::BytesMut::with_capacity(encoded_len(&packet, version));
            crate::codec::encode(&packet, version, &mut buf);
            let frame = buf.freeze();
            frames[slot] = Some(frame.clone());
            frame
        };
        if frame.len() > max.min(crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES) {
            // [MQTT-3.1.2-25]: discarded as if it had been sent.
            self.dropped.too_large += 1;
            return;
        }
        self.effects.push(Effect::SendFrame(conn, frame));
    }

    /// Sends `message` to the session now, queues it, or drops and counts it.
    pub(super) fn deliver(&mut self, sid: SessionId, message: Message) {
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("the index holds live sessions");
        if message.publish.qos == QoS::AtMostOnce {
            // QoS 0 is not queued for offline clients, as in mosquitto.
            if let Some(conn) = session.conn {
                if let Some(packet) =
                    self.stamp(sid, message.publish, message.expires_at, None, false)
                {
                    self.effects.push(Effect::Send(conn, packet));
                }
            }
            return;
        }
        let (window, max_queued, max_bytes) = (
            session.window,
            self.config.queued_messages_max,
            self.config.queued_bytes_max,
        );
        let out = &mut session.outgoing;
        if session.conn.is_some() && out.pending.is_empty() && out.inflight.len() < window {
            self.send_inflight(sid, message);
        } else if session.conn.is_some() && planted!(self.config, LoseWhenWindowFull) {
            // Planted: lost without a count.
        } else if out.pending.len() < max_queued
            && out.pending_bytes + message.weight() <= max_bytes
        {
            out.push_pending(message);
            self.queued += 1;
        } else {
            self.dropped.queue_full += 1;
            tracing::debug!(client_id = session.client_id, topic = %message.publish.topic, "session queue full; message dropped");
        }
    }

    /// The PUBLISH packet for `message` as the session's client gets it now,
    /// with the time it has left; `None`, counted, when it has expired or is
    /// larger than the client takes. A resend (`resend`) of a PUBLISH already
    /// sent does not expire [MQTT-4.3.3-7 of 5.0]: its delivery has begun.
    fn stamp(
        &mut self,
        sid: SessionId,
        mut publish: Publish,
        expires_at: Option<Millis>,
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
        let session = &self.sessions[&sid];
        // Forwarding can make a packet larger than the one received (a
        // topic for its alias, subscription ids): never past MQTT's limit.
        // Measuring costs: without a client maximum or properties, and with
        // a payload under half the limit, the packet cannot be over it.
        let protocol_max = crate::codec::PACKET_SIZE_PROTOCOL_MAX_BYTES;
        let max = session.packet_size_max.min(protocol_max);
        let may_be_over = session.packet_size_max != usize::MAX
            || !publish.properties.is_empty()
            || publish.payload.len() > protocol_max / 2;
        let packet = Packet::Publish(publish);
        if may_be_over && encoded_len(&packet, session.version) > max {
            // [MQTT-3.1.2-25]: discarded as if it had been sent.
            self.dropped.too_large += 1;
            tracing::debug!(
                client_id = session.client_id,
                "message over the client's maximum packet size; dropped"
            );
            return None;
        }
        Some(packet)
    }

    fn send_inflight(&mut self, sid: SessionId, mut message: Message) {
        let session = self
            .sessions
            .get_mut(&sid)
            .expect("sending to a live session");
        let conn = session
            .conn
            .expect("inflight messages go to connected sessions");
        let resend = message.resend_id.is_some();
        let packet_id = match message.resend_id.take() {
            Some(id) => {
                message.publish.dup = true;
                id
            }
            None => session.outgoing.next_packet_id(),
        };
        let publish = message.publish.clone();
        let Some(packet) = self.stamp(sid, publish, message.expires_at, Some(packet_id), resend)
        else {
            return;
        };
        self.session_mut(sid).outgoing.inflight.push_back(Inflight {
            packet_id,
            stage: Stage::Unacked(message),
        });
        self.inflight += 1;
        self.effects.push(Effect::Send(conn, packet));
    }

    /// Moves queued messages into the inflight window while there is room.
    pub(super) fn fill_window(&mut self, sid: SessionId) {
        loop {
            let session = self.sessions.get_mut(&sid).expect("filling a live session");
            if session.conn.is_none() || session.outgoing.inflight.len() >= session.window {
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
    /// One that has expired meanwhile is dropped, as mosquitto does. A
    /// client that now allows fewer in flight (its Receive Maximum) gets
    /// the rest later, under the same packet ids [MQTT-4.9.0-2 of 5.0].
    pub(super) fn resend_inflight(&mut self, sid: SessionId) {
        let session = self.session_mut(sid);
        let conn = session.conn.expect("resending to a connected session");
        let window = session.window;
        let mut inflight = std::mem::take(&mut session.outgoing.inflight);
        // Released messages stay in flight: their PUBLISH is done with.
        let mut room = window.saturating_sub(
            inflight
                .iter()
                .filter(|e| matches!(e.stage, Stage::Released))
                .count(),
        );
        let mut unsent = Vec::new();
        inflight.retain(|entry| match &entry.stage {
            Stage::Released => true,
            Stage::Unacked(_) if room > 0 => {
                room -= 1;
                true
            }
            Stage::Unacked(message) => {
                unsent.push((message.clone(), entry.packet_id));
                false
            }
        });
        self.inflight -= unsent.len();
        self.queued += unsent.len();
        let out = &mut self.session_mut(sid).outgoing;
        for (message, packet_id) in unsent.into_iter().rev() {
            out.unsend(message, packet_id);
        }
        let first_resend = self.effects.len();
        let mut kept = std::collections::VecDeque::with_capacity(inflight.len());
        for entry in inflight {
            let packet = match &entry.stage {
                Stage::Unacked(message) => {
                    let mut publish = message.publish.clone();
                    publish.dup = true;
                    match self.stamp(
                        sid,
                        publish,
                        message.expires_at,
                        Some(entry.packet_id),
                        true,
                    ) {
                        Some(packet) => packet,
                        None => {
                            self.inflight -= 1;
                            continue;
                        }
                    }
                }
                Stage::Released => Packet::PubRel(Ack::success(entry.packet_id)),
            };
            self.effects.push(Effect::Send(conn, packet));
            kept.push_back(entry);
        }
        if planted!(self.config, ReorderRedelivery) {
            self.effects[first_resend..].reverse();
        }
        self.session_mut(sid).outgoing.inflight = kept;
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
    /// the PUBREL again. A 5.0 PUBREC with an error reason ends the flow
    /// there [MQTT-4.3.3-4 of 5.0].
    pub fn pubrec(&mut self, conn: ConnId, ack: &Ack) {
        let packet_id = ack.packet_id;
        let sid = self.sid_of(conn);
        let out = &mut self.session_mut(sid).outgoing;
        let Some(i) = out.position(packet_id) else {
            tracing::debug!(?packet_id, "PUBREC for no message in flight; ignored");
            return;
        };
        match &mut out.inflight[i].stage {
            Stage::Unacked(m) if m.publish.qos != QoS::ExactlyOnce => {
                tracing::debug!(?packet_id, "PUBREC for a QoS 1 message; ignored");
                return;
            }
            Stage::Unacked(_) if ack.reason.is_error() => {
                out.inflight.remove(i);
                self.inflight -= 1;
                self.fill_window(sid);
                return;
            }
            stage => *stage = Stage::Released,
        }
        self.effects
            .push(Effect::Send(conn, Packet::PubRel(Ack::success(packet_id))));
    }

    /// PUBREL for a QoS 2 message the client sent: forget its id. PUBCOMP is
    /// sent even for an unknown id, so that the client can finish; a 5.0
    /// client is told it was unknown (0x92).
    pub fn pubrel(&mut self, conn: ConnId, packet_id: PacketId) {
        let sid = self.sid_of(conn);
        let reason = if self.session_mut(sid).incoming_qos2.remove(&packet_id) {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        self.effects.push(Effect::Send(
            conn,
            Packet::PubComp(Ack::with_reason(packet_id, reason)),
        ));
    }

    /// Messages a shared subscription chose an ended session for, and that
    /// it had not acknowledged, go to another member of their group, as that
    /// member's subscription asks for them. Not a QoS 2 message already
    /// sent: the ended session may have had it [MQTT-4.8.2-5 of 5.0].
    pub(super) fn reroute_shared(&mut self, outgoing: super::session::Outgoing) {
        let sent = outgoing
            .inflight
            .into_iter()
            .filter_map(|entry| match entry.stage {
                Stage::Unacked(message) => Some((message, true)),
                Stage::Released => None,
            });
        let queued = outgoing.pending.into_iter().map(|m| {
            let sent = m.resend_id.is_some();
            (m, sent)
        });
        for (mut message, sent) in sent.chain(queued) {
            let Some(group) = message.group else {
                continue;
            };
            let member = self.pick_member(group);
            let Some(member) =
                member.filter(|_| !(sent && message.publish.qos == QoS::ExactlyOnce))
            else {
                self.dropped.shared_undeliverable += 1;
                continue;
            };
            message.resend_id = None;
            if planted!(self.config, RerouteKeepsOldCopy) {
                self.deliver(member, message);
                continue;
            }
            let subscription = self.groups[&group].members[&member];
            let (qos, retain) = message.published;
            let publish = &mut message.publish;
            publish.dup = false;
            publish.qos = qos.min(subscription.options.qos);
            publish.retain = retain && subscription.options.retain_as_published;
            publish
                .properties
                .retain(|p| !matches!(p, Property::SubscriptionIdentifier(_)));
            publish
                .properties
                .0
                .extend(subscription.id.map(Property::SubscriptionIdentifier));
            self.deliver(member, message);
        }
    }

    /// Sends a message to one member of each shared group whose filter
    /// matches; returns how many groups it went to.
    fn route_shared(&mut self, publish: &Publish, expires_at: Option<Millis>) -> usize {
        if self.groups.is_empty() {
            return 0;
        }
        let mut groups = Vec::new();
        self.shared_index.matches(&publish.topic, &mut groups);
        let mut delivered = 0;
        for (group, ()) in groups {
            let members = self.groups[&group].members.len();
            let copies = if planted!(self.config, SharedToAll) {
                members
            } else {
                1
            };
            for _ in 0..copies {
                let Some(member) = self.pick_member(group) else {
                    break;
                };
                let subscription = self.groups[&group].members[&member];
                let Some(message) = copy_for(publish, std::iter::once(&subscription)) else {
                    continue;
                };
                delivered += 1;
                self.deliver(
                    member,
                    Message {
                        publish: message,
                        expires_at,
                        group: Some(group),
                        resend_id: None,
                        published: (publish.qos, publish.retain),
                    },
                );
            }
        }
        delivered
    }

    /// The next member of `group` in turn, preferring one that is online.
    fn pick_member(&mut self, group: GroupId) -> Option<SessionId> {
        let sessions = &self.sessions;
        let group = self.groups.get_mut(&group)?;
        let after = group.cursor;
        let in_turn = || {
            let later = group
                .members
                .range(after.map_or(SessionId(0), |c| SessionId(c.0 + 1))..);
            later.chain(group.members.range(..)).map(|(sid, _)| *sid)
        };
        let online = in_turn().find(|sid| sessions[sid].conn.is_some());
        let chosen = online.or_else(|| in_turn().next())?;
        group.cursor = Some(chosen);
        Some(chosen)
    }
}

use super::Effect;

/// 5.0 tells a publisher that nobody received its message (0x10); 3.1.1
/// acks carry no reason and the encoder leaves it out.
fn matched_reason(matched: usize) -> ReasonCode {
    if matched == 0 {
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    } else {
        ReasonCode::SUCCESS
    }
}

/// One message's QoS 0 PUBLISH as encoded for 3.1.1 and for 5.0 clients.
type Frames = [Option<Bytes>; 2];

/// Whether the copy of `publish` for a session with these matching
/// subscriptions is a QoS 0 PUBLISH with nothing of the session's own (no
/// Subscription Identifier, retain cleared): then it is the same bytes for
/// every session of a protocol version.
fn is_plain_qos0<'a>(
    publish: &Publish,
    subscriptions: impl Iterator<Item = &'a Subscription>,
) -> bool {
    let mut granted: Option<QoS> = None;
    for subscription in subscriptions {
        let options = subscription.options;
        if subscription.id.is_some() || (options.retain_as_published && publish.retain) {
            return false;
        }
        granted = Some(granted.map_or(options.qos, |g| g.max(options.qos)));
    }
    granted.is_some_and(|granted| publish.qos.min(granted) == QoS::AtMostOnce)
}

/// The copy of `publish` that a session whose matching subscriptions are
/// `subscriptions` receives; `None` if there are none.
fn copy_for<'a>(
    publish: &Publish,
    subscriptions: impl Iterator<Item = &'a Subscription>,
) -> Option<Publish> {
    let mut granted: Option<QoS> = None;
    let mut retain = false;
    let mut ids = Vec::new();
    for subscription in subscriptions {
        let options = subscription.options;
        granted = Some(granted.map_or(options.qos, |g| g.max(options.qos)));
        // [MQTT-3.3.1-9]: retain is cleared for live subscriptions, unless
        // one asked for it as published (5.0).
        retain |= options.retain_as_published && publish.retain;
        ids.extend(subscription.id);
    }
    let granted = granted?;
    let mut properties = publish.properties.clone();
    properties
        .0
        .extend(ids.into_iter().map(Property::SubscriptionIdentifier));
    Some(Publish {
        dup: false,
        qos: publish.qos.min(granted),
        retain,
        topic: publish.topic.clone(),
        packet_id: None,
        payload: publish.payload.clone(),
        properties,
    })
}
