//! Routing: a client's PUBLISH fanned out to every matching session and to
//! one member of each matching shared group, each copy as its subscription
//! asks for it. What happens to a copy then is `delivery`'s business.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::access::may_read_in;
use super::fanout::RouteAck;
use super::journal::Noted;
use super::outbox::{Message, Published};
use super::sessions::Sessions;
use super::subscribe::Subscription;
use super::{Broker, BrokerError, ConnId, Effect, Millis, Notice, SessionId};
use crate::codec::{
    Ack, Packet, PacketId, Property, ProtocolVersion, Publish, QoS, ReasonCode, SharedFrame,
};
use crate::config::{planted, Config};
use crate::topic::TopicName;

/// QoS 2 packet ids a client sent, answered with PUBREC and awaiting
/// PUBREL; a PUBLISH that reuses one is a resend and is not routed again.
/// Packet ids bound it at 65,535, and a 5.0 client's at the Receive Maximum.
/// Changed only here, by PUBLISH and PUBREL.
/// Boxed, and `None` while empty, as for most sessions: inline, the empty
/// set cost each session 16 bytes more.
#[allow(
    clippy::box_collection,
    reason = "empty, one word, not the collection's three or four"
)]
#[derive(Debug, Default)]
pub struct AwaitingRelease(Option<Box<BTreeSet<PacketId>>>);

impl AwaitingRelease {
    /// The ids the store kept.
    pub fn restore(&mut self, ids: Vec<PacketId>) {
        for id in ids {
            self.insert(id);
        }
    }

    #[cfg(test)]
    pub fn holds_set(&self) -> bool {
        self.0.is_some()
    }

    fn contains(&self, id: PacketId) -> bool {
        self.0.as_ref().is_some_and(|ids| ids.contains(&id))
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |ids| ids.len())
    }

    fn insert(&mut self, id: PacketId) {
        self.0.get_or_insert_with(Box::default).insert(id);
    }

    /// Whether it held `id`.
    fn remove(&mut self, id: PacketId) -> bool {
        let Some(ids) = &mut self.0 else {
            return false;
        };
        let held = ids.remove(&id);
        if ids.is_empty() {
            self.0 = None;
        }
        held
    }
}

impl Broker {
    /// A PUBLISH from a client. It is routed before it is acknowledged, so
    /// an acknowledged message is already in every subscriber's queue.
    pub fn publish(&mut self, conn: ConnId, publish: Publish) -> Result<(), BrokerError> {
        self.publish_arrived(conn, publish, 0)
    }

    /// `publish` for a PUBLISH whose bytes came at `arrived` (`Arrivals`;
    /// 0 if the socket did not tell).
    pub fn publish_arrived(
        &mut self,
        conn: ConnId,
        mut publish: Publish,
        arrived: u64,
    ) -> Result<(), BrokerError> {
        self.check_levels(publish.topic.as_str())?;
        let sid = self.sessions.sid_of(conn);
        // The runtime resumes a route before the next packet; a caller
        // that does not has it finished here, to keep the client's order.
        self.finish_routes(sid);
        let v5 = self.sessions.get(sid).version() == ProtocolVersion::V5;
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
        let refusal = if !utf8_ok {
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
        } else if !self.may_publish_to(&publish.topic) || !self.may_write(sid, &publish.topic) {
            // Dropped as mosquitto drops it; 3.1.1 has no way to say so.
            self.dropped.not_authorized += 1;
            self.notices.debug(|| Notice::PublishDenied {
                client_id: self.sessions.get(sid).client_id().to_owned(),
                topic: publish.topic.clone(),
            });
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if self.store_failed && publish.qos != QoS::AtMostOnce {
            // Even a QoS 2 resend: its PUBREC would promise what may not
            // have been written.
            self.dropped.store_failed += 1;
            if !v5 {
                return Err(BrokerError::StoreFailed);
            }
            Some(ReasonCode::UNSPECIFIED_ERROR)
        } else if self.memory_full && !self.is_qos2_resend(sid, &publish) {
            self.dropped.memory_full += 1;
            if !v5 {
                // 3.1.1 cannot say no, and an ack would promise what we
                // did not keep: no ack, so the client still holds it.
                return Ok(());
            }
            Some(ReasonCode::QUOTA_EXCEEDED)
        } else {
            None
        };
        match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) if !utf8_ok => return Err(BrokerError::PayloadFormatInvalid),
            (QoS::AtMostOnce, _) if refusal.is_some() => {}
            (QoS::AtMostOnce, _) => self.route_publish(sid, &publish, None, arrived),
            (QoS::AtLeastOnce, Some(id)) => {
                if let Some(reason) = refusal {
                    let ack = Ack::with_reason(id, reason);
                    self.effects.push(Effect::Send(conn, Packet::PubAck(ack)));
                } else {
                    let ack = RouteAck {
                        conn,
                        id,
                        received: false,
                    };
                    self.route_publish(sid, &publish, Some(ack), arrived);
                }
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // Method B of [MQTT-4.3.3]: route now, remember the id until
                // PUBREL so that a resend is not routed twice.
                let receive_max = self.config.receive_maximum;
                let session = self.sessions.get_mut(sid);
                let known = session.incoming_qos2.contains(id);
                let reason = if let Some(refusal) = refusal {
                    refusal
                } else if known {
                    ReasonCode::SUCCESS
                } else {
                    if v5 && session.incoming_qos2.len() >= usize::from(receive_max) {
                        return Err(BrokerError::ReceiveMaximumExceeded { max: receive_max });
                    }
                    session.incoming_qos2.insert(id);
                    if !planted!(self.config, AwaitingReleaseNotStored) {
                        self.note(|| Noted::AwaitingRelease(sid, id, true));
                    }
                    let ack = RouteAck {
                        conn,
                        id,
                        received: true,
                    };
                    self.route_publish(sid, &publish, Some(ack), arrived);
                    return Ok(());
                };
                let ack = Ack::with_reason(id, reason);
                self.effects.push(Effect::Send(conn, Packet::PubRec(ack)));
            }
            (_, None) => unreachable!("the decoder gives QoS 1/2 a packet id"),
        }
        Ok(())
    }

    /// A QoS 2 PUBLISH whose id was answered with PUBREC already: it is
    /// answered again, whatever the broker's state, since it was routed.
    fn is_qos2_resend(&self, sid: SessionId, publish: &Publish) -> bool {
        publish.qos == QoS::ExactlyOnce
            && publish
                .packet_id
                .is_some_and(|id| self.sessions.get(sid).incoming_qos2.contains(id))
    }

    /// `$SYS` is the broker's; other `$` topics are the clients' only if
    /// the configuration says so [MQTT-4.7.2].
    pub(super) fn may_publish_to(&self, topic: &TopicName) -> bool {
        let sys = topic.as_str() == "$SYS"
            || (topic.as_str().starts_with("$SYS/") && !planted!(self.config, SysOpenToClients));
        !topic.is_dollar() || (self.config.dollar_topics_from_clients && !sys)
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

    pub(super) fn retain(&mut self, publish: &Publish, expires_at: Option<Millis>) {
        let max = self.config.retained_messages_max;
        // Only a will can get here with more levels than a PUBLISH may
        // have; the store's walks recurse once per level.
        if self.check_levels(publish.topic.as_str()).is_err() {
            return;
        }
        let retained = super::Retained {
            payload: publish.payload.clone(),
            qos: publish.qos,
            properties: publish.properties.clone(),
            expires_at,
        };
        let outcome = self.retained.set(&publish.topic, retained, max);
        if !(publish.payload.is_empty() && planted!(self.config, RetainedClearNotStored)) {
            self.note(|| Noted::Retained(publish.topic.clone()));
        }
        if outcome == super::RetainOutcome::Refused {
            self.dropped.retained_full += 1;
            self.notices.note(Notice::RetainedFull {
                topic: publish.topic.clone(),
                max,
            });
        }
    }

    /// Sends a plain QoS 0 copy of `forwarded` to the session if it is
    /// online (QoS 0 is not queued for offline clients, as in mosquitto), as
    /// the frame `frames` holds for its version, built on first need (and
    /// encoded by the first connection that writes it).
    pub(super) fn send_frame(
        &mut self,
        sid: SessionId,
        forwarded: &Publish,
        expires_at: Option<Millis>,
        frames: &mut Frames,
    ) {
        let session = self.sessions.get(sid);
        let Some(conn) = session.conn() else {
            return;
        };
        let (version, max) = (session.version(), session.packet_size_max());
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
            let frame = Arc::new(SharedFrame::new(packet, version));
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

    /// PUBREL for a QoS 2 message the client sent: forget its id. PUBCOMP is
    /// sent even for an unknown id, so that the client can finish; a 5.0
    /// client is told it was unknown (0x92).
    pub fn pubrel(&mut self, conn: ConnId, packet_id: PacketId) {
        let sid = self.sessions.sid_of(conn);
        let reason = if self.sessions.get_mut(sid).incoming_qos2.remove(packet_id) {
            self.note(|| Noted::AwaitingRelease(sid, packet_id, false));
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
    pub(super) fn reroute_shared(&mut self, undelivered: impl Iterator<Item = (Message, bool)>) {
        for (mut message, sent) in undelivered {
            let Some(group) = message.group else {
                continue;
            };
            let (sessions, checked) = (&self.sessions, self.acl.is_some());
            let topic = &message.publish.topic;
            let member = self.shared.pick(
                group,
                |sid| may_choose(&self.config, checked, sessions, sid, topic),
                |sid| sessions.get(sid).conn().is_some(),
            );
            let Some(member) =
                member.filter(|_| !(sent && message.publish.qos == QoS::ExactlyOnce))
            else {
                self.dropped.shared_undeliverable += 1;
                continue;
            };
            message.resend_id = None;
            // A new place in the member's queue, not the ended session's.
            message.seq = 0;
            if planted!(self.config, RerouteKeepsOldCopy) {
                self.deliver(member, message);
                continue;
            }
            let subscription = self.shared.subscription(group, member);
            let published = message.published;
            let publish = Arc::make_mut(&mut message.publish);
            publish.dup = false;
            publish.qos = published.qos.min(subscription.options.qos);
            publish.retain = published.retain && subscription.options.retain_as_published;
            publish
                .properties
                .retain(|p| !matches!(p, Property::SubscriptionIdentifier(_)));
            publish
                .properties
                .extend(subscription.id.map(Property::SubscriptionIdentifier));
            self.deliver(member, message);
        }
    }

    /// Sends a message to one member of each shared group whose filter
    /// matches; returns how many groups it went to.
    pub(super) fn route_shared(&mut self, publish: &Publish, expires_at: Option<Millis>) -> usize {
        if self.shared.is_empty() {
            return 0;
        }
        let mut groups = Vec::new();
        self.subscriptions_visited += self.shared.matching(&publish.topic, &mut groups);
        let mut delivered = 0;
        for (group, ()) in groups {
            let members = self.shared.len_of(group);
            let copies = if planted!(self.config, SharedToAll) {
                members
            } else {
                1
            };
            for _ in 0..copies {
                let (sessions, checked) = (&self.sessions, self.acl.is_some());
                let config = &self.config;
                let may = |sid| may_choose(config, checked, sessions, sid, &publish.topic);
                let online = |sid| sessions.get(sid).conn().is_some();
                let Some(member) = self.shared.pick(group, may, online) else {
                    break;
                };
                let subscription = self.shared.subscription(group, member);
                let Some(message) = copy_for(publish, std::iter::once(&subscription)) else {
                    continue;
                };
                delivered += 1;
                self.deliver(
                    member,
                    Message {
                        publish: Arc::new(message),
                        expires_at,
                        group: Some(group),
                        resend_id: None,
                        seq: 0,
                        published: Published {
                            qos: publish.qos,
                            retain: publish.retain,
                        },
                    },
                );
            }
        }
        delivered
    }
}

/// Whether a shared group may choose member `sid` for a message on
/// `topic`: its ACL lets it read, and its session is there. An ended
/// session stays in its groups until `reap` takes its filters out, and a
/// group's message goes to one of the sessions subscribed to it (5.0,
/// 4.8.2): a group whose members have all ended has no one to send it to.
fn may_choose(
    config: &Config,
    checked: bool,
    sessions: &Sessions,
    sid: SessionId,
    topic: &TopicName,
) -> bool {
    let ended = !sessions.contains(sid) && !planted!(config, SharedPicksReaped);
    !ended && may_read_in(checked, sessions, sid, topic)
}

/// 5.0 tells a publisher that nobody received its message (0x10); 3.1.1
/// acks carry no reason and the encoder leaves it out.
pub(super) fn matched_reason(matched: usize) -> ReasonCode {
    if matched == 0 {
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    } else {
        ReasonCode::SUCCESS
    }
}

/// One message's PUBLISH as encoded for 3.1.1 and for 5.0 clients: at
/// QoS 0, or at QoS 1 with a packet id each connection writes over.
pub(super) type Frames = [Option<Arc<SharedFrame>>; 2];

/// The copy of `publish` that a session whose matching subscriptions are
/// `subscriptions` receives; `None` if there are none.
pub(super) fn copy_for<'a>(
    publish: &Publish,
    subscriptions: impl Iterator<Item = &'a Subscription>,
) -> Option<Publish> {
    grant_for(publish, subscriptions).map(|grant| grant.copy(publish))
}

/// What a session's copy of a message takes from its matching
/// subscriptions.
pub(super) struct Grant {
    qos: QoS,
    retain: bool,
    /// Their Subscription Identifiers, in order.
    ids: Vec<u32>,
}

impl Grant {
    /// Whether the copy is a QoS 0 PUBLISH with nothing of the session's
    /// own: then it is the same bytes for every session of a protocol
    /// version.
    pub(super) fn is_plain_qos0(&self, publish: &Publish) -> bool {
        self.is_as_forwarded() && publish.qos.min(self.qos) == QoS::AtMostOnce
    }

    /// Whether the copy is the message as forwarded, but for DUP and its
    /// packet id: the same for every session so granted.
    pub(super) fn is_as_is(&self, publish: &Publish) -> bool {
        self.is_as_forwarded() && self.qos >= publish.qos
    }

    /// Nothing of the session's own: no Subscription Identifier, retain
    /// cleared.
    fn is_as_forwarded(&self) -> bool {
        !self.retain && self.ids.is_empty()
    }

    pub(super) fn copy(self, publish: &Publish) -> Publish {
        let mut properties = publish.properties.clone();
        properties.extend(self.ids.into_iter().map(Property::SubscriptionIdentifier));
        Publish {
            dup: false,
            qos: publish.qos.min(self.qos),
            retain: self.retain,
            topic: publish.topic.clone(),
            packet_id: None,
            payload: publish.payload.clone(),
            properties,
        }
    }
}

/// The grant of a session with these matching subscriptions; `None` if
/// there are none.
pub(super) fn grant_for<'a>(
    publish: &Publish,
    subscriptions: impl Iterator<Item = &'a Subscription>,
) -> Option<Grant> {
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
    // In one order whatever order the walk's runs gave them in.
    ids.sort_unstable();
    Some(Grant {
        qos: granted?,
        retain,
        ids,
    })
}
