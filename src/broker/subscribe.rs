//! Subscriptions: SUBSCRIBE and UNSUBSCRIBE, which filters are refused and
//! why, and the retained messages a new subscription receives. A session's
//! subscriptions and the indexes that find them change together, here.

use super::journal::{Key, Noted};
use super::reaping::levels;
use super::sessions::Session;
use super::shared::parse_shared;
use super::{Broker, BrokerError, ConnId, Effect, Notice, SessionId};
use crate::codec::{
    Packet, ProtocolVersion, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use crate::config::planted;
use crate::topic::TopicFilter;

/// What one filter of a session asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// The Subscription Identifier its SUBSCRIBE carried (5.0).
    pub id: Option<u32>,
}

impl Broker {
    pub fn subscribe(&mut self, conn: ConnId, subscribe: Subscribe) -> Result<(), BrokerError> {
        let sid = self.sessions.sid_of(conn);
        // [MQTT-3.8.3-4 of 5.0]
        let no_local_shared = subscribe
            .filters
            .iter()
            .any(|(f, o)| o.no_local && matches!(parse_shared(f), Some(Ok(_))));
        if no_local_shared {
            return Err(BrokerError::Protocol("No Local on a shared subscription"));
        }
        let id = subscribe.properties.subscription_identifiers().next();
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained_for = Vec::new();
        for (filter, options) in subscribe.filters {
            let shared = parse_shared(&filter);
            let is_shared = shared.is_some();
            let session = self.sessions.get(sid);
            let is_new = !session.subscriptions.contains(&filter);
            let refusal = self.refusal(session, &filter, &shared, id, is_new);
            if let Some(code) = refusal {
                self.notices.note(Notice::SubscriptionRefused {
                    client_id: session.client_id().to_owned(),
                    filter,
                    code,
                });
                // 3.1.1 has one failure code; the encoder says 0x80.
                codes.push(code);
                continue;
            }
            let mut subscription = Subscription { options, id };
            if planted!(self.config, ResubscribeKeepsGrant) {
                let old = self.sessions.get(sid).subscriptions.get(&filter);
                subscription.options.qos =
                    old.map_or(options.qos, |o| o.options.qos.max(options.qos));
            }
            let key = match self
                .sessions
                .get_mut(sid)
                .subscriptions
                .insert(filter.clone(), subscription)
            {
                None => Key::New,
                Some(_) => Key::Seen,
            };
            self.note(|| Noted::Filter(sid, filter.clone(), key));
            self.levels_indexed += levels(&filter);
            match shared {
                Some(Ok((group, inner))) => self.shared.join(sid, group, inner, subscription),
                _ => self.index.insert(&filter, sid, subscription),
            }
            codes.push(ReasonCode::granted(options.qos));
            // Retained messages are not sent to shared subscriptions.
            let wants_retained = match options.retain_handling {
                _ if planted!(self.config, RetainHandlingIgnored) => true,
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
        // [MQTT-3.3.1-6]: retained messages follow the SUBACK, flagged as
        // retained, also when a subscription is replaced; in slices.
        self.owe_retained(sid, retained_for);
        Ok(())
    }

    /// Why a filter of a SUBSCRIBE is refused, if it is.
    fn refusal(
        &self,
        session: &Session,
        filter: &TopicFilter,
        shared: &Option<Result<(&str, TopicFilter), ()>>,
        id: Option<u32>,
        is_new: bool,
    ) -> Option<ReasonCode> {
        let c = &self.config;
        let inner = match shared {
            Some(Ok((_, inner))) => Some(inner),
            _ => None,
        };
        if id.is_some() && !c.subscription_identifiers {
            Some(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)
        } else if shared.is_some() && !c.shared_subscriptions {
            Some(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED)
        } else if matches!(shared, Some(Err(()))) || self.check_levels(filter.as_str()).is_err() {
            Some(ReasonCode::TOPIC_FILTER_INVALID)
        } else if filter.as_str().contains(['+', '#']) && !c.wildcard_subscriptions {
            Some(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED)
        } else if !self.may_subscribe(session, inner.unwrap_or(filter)) {
            // 3.1.1 has one failure code; the encoder says 0x80.
            Some(ReasonCode::NOT_AUTHORIZED)
        } else if is_new && session.subscriptions.len() >= c.subscriptions_per_client_max {
            Some(ReasonCode::QUOTA_EXCEEDED)
        } else if self.store_failed && session.is_durable() {
            // Its SUBACK would promise what the store can no longer keep.
            Some(ReasonCode::UNSPECIFIED_ERROR)
        } else {
            None
        }
    }

    pub fn unsubscribe(
        &mut self,
        conn: ConnId,
        unsubscribe: Unsubscribe,
    ) -> Result<(), BrokerError> {
        let sid = self.sessions.sid_of(conn);
        let session = self.sessions.get(sid);
        // Its UNSUBACK would promise what the store can no longer keep:
        // 5.0 says so per filter, 3.1.1 has no way but to close.
        let refused = self.store_failed && session.is_durable();
        if refused && session.version() != ProtocolVersion::V5 {
            return Err(BrokerError::StoreFailed);
        }
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            if refused {
                codes.push(ReasonCode::UNSPECIFIED_ERROR);
            } else if self
                .sessions
                .get_mut(sid)
                .subscriptions
                .remove(filter)
                .is_some()
            {
                if !planted!(self.config, UnsubscribeNotStored) {
                    self.note(|| Noted::Filter(sid, filter.clone(), Key::Seen));
                }
                self.drop_subscription(sid, filter);
                self.forget_owed(sid, filter);
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
        Ok(())
    }

    /// A subscription read back from the store: held, indexed, and owed no
    /// retained messages (it had them when it was made).
    pub(super) fn restore_subscription(
        &mut self,
        sid: SessionId,
        filter: TopicFilter,
        sub: Subscription,
    ) {
        self.levels_indexed += levels(&filter);
        match parse_shared(&filter) {
            Some(Ok((group, inner))) => self.shared.join(sid, group, inner, sub),
            _ => self.index.insert(&filter, sid, sub),
        }
        self.sessions.get_mut(sid).subscriptions.insert(filter, sub);
    }

    /// Takes a subscription the session no longer holds out of the index or
    /// its group; its levels, the work it counts.
    pub(super) fn drop_subscription(&mut self, sid: SessionId, filter: &TopicFilter) -> u64 {
        let levels = levels(filter);
        self.levels_indexed += levels;
        match parse_shared(filter) {
            Some(Ok((group, inner))) => self.shared.leave(sid, group, inner),
            _ => {
                self.index.remove(filter, sid);
            }
        }
        levels
    }
}
