//! Subscriptions: SUBSCRIBE and UNSUBSCRIBE, the retained messages a new
//! subscription receives, and shared-subscription groups.

use std::collections::BTreeMap;

use super::session::{Message, Subscription};
use super::{Broker, BrokerError, ConnId, Effect, GroupId, SessionId};
use crate::codec::{
    Packet, Property, Publish, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use crate::topic::TopicFilter;

/// The sessions subscribed to one `$share/{group}/{filter}`; each message
/// goes to one of them, in turn.
#[derive(Debug, Default)]
pub struct Group {
    pub members: BTreeMap<SessionId, Subscription>,
    /// The member that got the last message.
    pub cursor: Option<SessionId>,
}

/// `$share/{group}/{filter}` split into its group name and filter; `None` for
/// a filter that is not shared, `Some(Err)` for one that is malformed.
fn parse_shared(filter: &TopicFilter) -> Option<Result<(&str, TopicFilter), ()>> {
    let rest = filter.as_str().strip_prefix("$share/")?;
    let Some((group, inner)) = rest.split_once('/') else {
        return Some(Err(()));
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Some(Err(()));
    }
    Some(TopicFilter::new(inner).map(|f| (group, f)).map_err(|_| ()))
}

impl Broker {
    pub fn subscribe(&mut self, conn: ConnId, subscribe: Subscribe) -> Result<(), BrokerError> {
        let sid = self.sid_of(conn);
        // [MQTT-3.8.3-4 of 5.0]
        let no_local_shared = subscribe
            .filters
            .iter()
            .any(|(f, o)| o.no_local && matches!(parse_shared(f), Some(Ok(_))));
        if no_local_shared {
            return Err(BrokerError::Protocol("No Local on a shared subscription"));
        }
        let id = subscribe.properties.subscription_identifiers().next();
        let max_subscriptions = self.config.subscriptions_per_client_max;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained_for = Vec::new();
        for (filter, options) in subscribe.filters {
            let shared = parse_shared(&filter);
            let is_shared = shared.is_some();
            let session = &self.sessions[&sid];
            let is_new = !session.subscriptions.contains_key(&filter);
            let refusal = if id.is_some() && !self.config.subscription_identifiers {
                Some(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
            } else if shared.is_some() && !self.config.shared_subscriptions {
                Some(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
            } else if matches!(shared, Some(Err(()))) || self.check_levels(filter.as_str()).is_err()
            {
                Some(ReasonCode::TOPIC_FILTER_INVALID)
            } else if filter.as_str().contains(['+', '#']) && !self.config.wildcard_subscriptions {
                Some(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)
            } else if is_new && session.subscriptions.len() >= max_subscriptions {
                Some(ReasonCode::QUOTA_EXCEEDED)
            } else {
                None
            };
            if let Some(code) = refusal {
                tracing::info!(client_id = session.client_id, %filter, ?code, "subscription refused");
                // 3.1.1 has one failure code; the encoder says 0x80.
                codes.push(code);
                continue;
            }
            let subscription = Subscription { options, id };
            self.session_mut(sid)
                .subscriptions
                .insert(filter.clone(), subscription);
            match shared {
                Some(Ok((group, inner))) => self.join_group(sid, group, inner, subscription),
                _ => self.index.insert(&filter, sid, subscription),
            }
            codes.push(ReasonCode::granted(options.qos));
            // Retained messages are not sent to shared subscriptions.
            let wants_retained = match options.retain_handling {
                RetainHandling::OnSubscribe => true,
                RetainHandling::OnNewSubscription => is_new,
                RetainHandling::Never => false,
            };
            if !is_shared && wants_retained {
                retained_for.push((filter, subscription));
            }
        }
        let suback = SubAck {
            packet_id: subscribe.packet_id,
            codes,
            properties: Default::default(),
        };
        self.effects
            .push(Effect::Send(conn, Packet::SubAck(suback)));
        self.send_retained(sid, retained_for);
        Ok(())
    }

    /// [MQTT-3.3.1-6]: retained messages follow the SUBACK, flagged as
    /// retained, also when a subscription is replaced. Once per filter: a
    /// SUBSCRIBE that repeats `#` must not repeat the whole store.
    fn send_retained(&mut self, sid: SessionId, mut filters: Vec<(TopicFilter, Subscription)>) {
        let mut seen = std::collections::BTreeSet::new();
        filters.reverse();
        filters.retain(|(f, _)| seen.insert(f.clone()));
        filters.reverse();
        let now = self.now;
        for (filter, subscription) in filters {
            let mut expired = Vec::new();
            let mut messages = Vec::new();
            for (topic, retained) in self.retained.matching(&filter) {
                if retained.expires_at.is_some_and(|at| at <= now) {
                    expired.push(topic.clone());
                    continue;
                }
                let mut properties = retained.properties.clone();
                properties
                    .0
                    .extend(subscription.id.map(Property::SubscriptionIdentifier));
                messages.push(Message {
                    publish: Publish {
                        dup: false,
                        qos: retained.qos.min(subscription.options.qos),
                        retain: true,
                        topic: topic.clone(),
                        packet_id: None,
                        payload: retained.payload.clone(),
                        properties,
                    },
                    expires_at: retained.expires_at,
                    group: None,
                    resend_id: None,
                    published: (retained.qos, true),
                });
            }
            for topic in expired {
                self.retained.remove(&topic);
            }
            for message in messages {
                self.deliver(sid, message);
            }
        }
    }

    pub fn unsubscribe(&mut self, conn: ConnId, unsubscribe: Unsubscribe) {
        let sid = self.sid_of(conn);
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            if self.session_mut(sid).subscriptions.remove(filter).is_some() {
                self.drop_subscription(sid, filter);
                codes.push(ReasonCode::SUCCESS);
            } else {
                codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED);
            }
        }
        let unsuback = UnsubAck {
            packet_id: unsubscribe.packet_id,
            codes,
            properties: Default::default(),
        };
        self.effects
            .push(Effect::Send(conn, Packet::UnsubAck(unsuback)));
    }

    /// Takes a subscription the session no longer holds out of the index or
    /// its group.
    pub(super) fn drop_subscription(&mut self, sid: SessionId, filter: &TopicFilter) {
        let Some(Ok((group, inner))) = parse_shared(filter) else {
            self.index.remove(filter, sid);
            return;
        };
        let key = (group.to_owned(), inner);
        let Some(&gid) = self.group_ids.get(&key) else {
            return;
        };
        let group = self
            .groups
            .get_mut(&gid)
            .expect("group ids point at groups");
        group.members.remove(&sid);
        if group.members.is_empty() {
            self.groups.remove(&gid);
            self.shared_index.remove(&key.1, gid);
            self.group_ids.remove(&key);
        }
    }

    fn join_group(&mut self, sid: SessionId, name: &str, filter: TopicFilter, sub: Subscription) {
        let key = (name.to_owned(), filter);
        let gid = match self.group_ids.get(&key) {
            Some(&gid) => gid,
            None => {
                self.next_group += 1;
                let gid = GroupId(self.next_group);
                self.shared_index.insert(&key.1, gid, ());
                self.group_ids.insert(key, gid);
                gid
            }
        };
        self.groups.entry(gid).or_default().members.insert(sid, sub);
    }

    /// Members of all shared groups: each is one of a session's
    /// subscriptions.
    pub(super) fn shared_members(&self) -> usize {
        self.groups.values().map(|g| g.members.len()).sum()
    }
}
