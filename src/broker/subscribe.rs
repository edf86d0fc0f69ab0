//! Subscriptions: SUBSCRIBE and UNSUBSCRIBE, which filters are refused and
//! why, and the retained messages a new subscription receives. A session's
//! subscriptions and the indexes that find them change together, here.

use std::collections::BTreeSet;

use super::journal::{Key, Noted};
use super::reaping::levels;
use super::sessions::Session;
use super::shared::{parse_shared, split_held};
use super::{Broker, BrokerError, ConnId, Effect, Notice, SessionId};
use crate::codec::{
    Packet, PacketId, ProtocolVersion, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, UnsubAck, Unsubscribe,
};
use crate::config::planted;
use crate::topic::TopicFilter;

/// Work that one slice of a SUBSCRIBE or UNSUBSCRIBE does at most, in
/// levels of its filters: a SUBSCRIBE may carry 100,000 filters of 200
/// levels, and one of 200,000 short filters held the lock 455 ms in one
/// piece. A level here costs more than one a walk visits (it is put into
/// or taken out of maps): 16,384 of them were 3 ms a slice at the median
/// (release build, 100,000 filters of 2 levels, load 4), so a quarter of
/// that. The simulation's clients send a few dozen filters at most: there,
/// a filter or two a slice, so that their SUBSCRIBEs are split and its
/// invariants judge the slices.
pub const SUBSCRIBE_WORK_PER_SLICE: u64 = if cfg!(feature = "sim") { 8 } else { 4096 };
/// What a filter costs besides its levels, in levels: looked up and kept in
/// its session's map, noted for the store, its SUBACK code.
const FILTER_WORK: u64 = 4;

/// A SUBSCRIBE or UNSUBSCRIBE handled in slices: what is left of it, and
/// what its answer will be.
#[derive(Debug)]
pub(super) struct Subscribing {
    packet_id: PacketId,
    asked: Asked,
    codes: Vec<ReasonCode>,
    /// Whether it took more than one slice.
    split: bool,
    /// When its bytes came, if the socket told (`recent.rs`).
    arrived: u64,
}

#[derive(Debug)]
enum Asked {
    Subscribe {
        id: Option<u32>,
        filters: std::vec::IntoIter<(TopicFilter, SubscriptionOptions)>,
    },
    Unsubscribe {
        filters: std::vec::IntoIter<TopicFilter>,
        /// The store failed: each filter is answered 0x80 (5.0).
        refused: bool,
    },
}

impl Asked {
    fn left(&self) -> usize {
        match self {
            Asked::Subscribe { filters, .. } => filters.len(),
            Asked::Unsubscribe { filters, .. } => filters.len(),
        }
    }
}

/// What one filter of a session asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    /// The Subscription Identifier its SUBSCRIBE carried (5.0).
    pub id: Option<u32>,
}

impl Broker {
    pub fn subscribe(&mut self, conn: ConnId, subscribe: Subscribe) -> Result<(), BrokerError> {
        self.subscribe_arrived(conn, subscribe, 0)
    }

    /// `subscribe` for a SUBSCRIBE whose bytes came at `arrived`
    /// (`Arrivals`; 0 if the socket did not tell).
    pub fn subscribe_arrived(
        &mut self,
        conn: ConnId,
        subscribe: Subscribe,
        arrived: u64,
    ) -> Result<(), BrokerError> {
        // [MQTT-3.8.3-4 of 5.0]
        let no_local_shared = subscribe
            .filters
            .iter()
            .any(|(f, o)| o.no_local && matches!(parse_shared(f), Some(Ok(_))));
        if no_local_shared {
            return Err(BrokerError::Protocol("No Local on a shared subscription"));
        }
        let subscribing = Subscribing {
            packet_id: subscribe.packet_id,
            codes: Vec::with_capacity(subscribe.filters.len()),
            asked: Asked::Subscribe {
                id: subscribe.properties.subscription_identifiers().next(),
                filters: subscribe.filters.into_iter(),
            },
            split: false,
            arrived,
        };
        self.go_on_subscribing(conn, subscribing);
        Ok(())
    }

    /// Whether a SUBSCRIBE or UNSUBSCRIBE of the connection is still in
    /// slices.
    pub(super) fn subscribe_pending(&self, conn: ConnId) -> bool {
        self.subscribing.contains_key(&conn)
    }

    /// The next slice of the connection's SUBSCRIBE or UNSUBSCRIBE; whether
    /// any is left.
    pub(super) fn resume_subscribe(&mut self, conn: ConnId) -> bool {
        if let Some(subscribing) = self.subscribing.remove(&conn) {
            self.go_on_subscribing(conn, subscribing);
        }
        self.subscribe_pending(conn)
    }

    /// A slice of the packet's filters, `SUBSCRIBE_WORK_PER_SLICE` of work
    /// at most: it is handled as a sequence of packets, one a slice, whose
    /// answers are combined in one SUBACK or UNSUBACK [MQTT-3.8.4-4,
    /// MQTT-3.10.4-6 of 5.0], sent with the last slice. The retained
    /// messages each slice owes wait for it too (`send_retained`).
    fn go_on_subscribing(&mut self, conn: ConnId, mut subscribing: Subscribing) {
        let sid = self.sessions.sid_of(conn);
        let budget = match planted!(self.config, SubscribeUnbounded) {
            false => SUBSCRIBE_WORK_PER_SLICE,
            true => u64::MAX,
        };
        let codes = &mut subscribing.codes;
        match &mut subscribing.asked {
            Asked::Subscribe { id, filters } => {
                let arrived = subscribing.arrived;
                self.subscribe_slice(sid, *id, filters, codes, budget, arrived)
            }
            Asked::Unsubscribe { filters, refused } => {
                self.unsubscribe_slice(sid, filters, *refused, codes, budget)
            }
        }
        if subscribing.asked.left() > 0 {
            subscribing.split = true;
            self.subscribing.insert(conn, subscribing);
            return;
        }
        let (packet_id, codes) = (subscribing.packet_id, subscribing.codes);
        let properties = Default::default();
        let answer = match subscribing.asked {
            Asked::Subscribe { .. } => Packet::SubAck(SubAck {
                packet_id,
                codes,
                properties,
            }),
            Asked::Unsubscribe { .. } => Packet::UnsubAck(UnsubAck {
                packet_id,
                codes,
                properties,
            }),
        };
        self.effects.push(Effect::Send(conn, answer));
        // Its answer waits for the commit of every slice's changes.
        self.split_acks |= subscribing.split;
    }

    fn subscribe_slice(
        &mut self,
        sid: SessionId,
        id: Option<u32>,
        filters: &mut std::vec::IntoIter<(TopicFilter, SubscriptionOptions)>,
        codes: &mut Vec<ReasonCode>,
        budget: u64,
        arrived: u64,
    ) {
        let mut work = 0;
        let (mut retained_for, mut again) = (Vec::new(), BTreeSet::new());
        // Filters new to the session, if a message routed before this
        // slice may have come after the SUBSCRIBE (`recent.rs`).
        let replays = arrived != 0 && !self.recent.is_empty();
        let mut made = Vec::new();
        for (filter, options) in filters.by_ref() {
            // A refused filter costs a check of each level too.
            work += levels(&filter) + FILTER_WORK;
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
            } else {
                let granted = self.subscribe_one(sid, &filter, shared, options, id, is_new);
                codes.push(ReasonCode::granted(options.qos));
                if replays && is_new && !is_shared {
                    made.push((filter.clone(), Subscription { options, id }));
                }
                // Retained messages are not sent to shared subscriptions.
                if let Some(subscription) = granted.filter(|_| !is_shared) {
                    if !is_new {
                        again.insert(filter.clone());
                    }
                    retained_for.push((filter, subscription));
                }
            }
            if work >= budget {
                break;
            }
        }
        self.replay_recent(sid, arrived, &made);
        // [MQTT-3.3.1-6]: retained messages follow the SUBACK, flagged as
        // retained, also when a subscription is replaced; in slices.
        self.owe_retained(sid, retained_for, &again);
    }

    /// Grants one filter; returns its subscription if it asks for the
    /// retained messages that match it.
    fn subscribe_one(
        &mut self,
        sid: SessionId,
        filter: &TopicFilter,
        shared: Option<Result<(&str, TopicFilter), ()>>,
        options: SubscriptionOptions,
        id: Option<u32>,
        is_new: bool,
    ) -> Option<Subscription> {
        let mut subscription = Subscription { options, id };
        if planted!(self.config, ResubscribeKeepsGrant) {
            let old = self.sessions.get(sid).subscriptions.get(filter);
            subscription.options.qos = old.map_or(options.qos, |o| o.options.qos.max(options.qos));
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
        self.levels_indexed += levels(filter);
        match shared {
            Some(Ok((group, inner))) => self.shared.join(sid, group, inner, subscription),
            _ => self.index.insert(filter, sid, subscription),
        }
        let wants_retained = match options.retain_handling {
            _ if planted!(self.config, RetainHandlingIgnored) => true,
            RetainHandling::OnSubscribe => true,
            RetainHandling::OnNewSubscription => is_new,
            RetainHandling::Never => false,
        };
        wants_retained.then_some(subscription)
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
        let subscribing = Subscribing {
            packet_id: unsubscribe.packet_id,
            codes: Vec::with_capacity(unsubscribe.filters.len()),
            asked: Asked::Unsubscribe {
                filters: unsubscribe.filters.into_iter(),
                refused,
            },
            split: false,
            arrived: 0,
        };
        self.go_on_subscribing(conn, subscribing);
        Ok(())
    }

    fn unsubscribe_slice(
        &mut self,
        sid: SessionId,
        filters: &mut std::vec::IntoIter<TopicFilter>,
        refused: bool,
        codes: &mut Vec<ReasonCode>,
        budget: u64,
    ) {
        let mut work = 0;
        let mut gone = BTreeSet::new();
        for filter in filters.by_ref() {
            work += levels(&filter) + FILTER_WORK;
            let session = self.sessions.get_mut(sid);
            if refused {
                codes.push(ReasonCode::UNSPECIFIED_ERROR);
            } else if session.subscriptions.remove(&filter).is_some() {
                if !planted!(self.config, UnsubscribeNotStored) {
                    self.note(|| Noted::Filter(sid, filter.clone(), Key::Seen));
                }
                self.drop_subscription(sid, &filter);
                self.recent.unsubscribed(sid);
                gone.insert(filter);
                codes.push(ReasonCode::SUCCESS);
            } else {
                codes.push(ReasonCode::NO_SUBSCRIPTION_EXISTED);
            }
            if work >= budget {
                break;
            }
        }
        self.forget_owed(sid, &gone);
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
        match split_held(filter) {
            Some((group, inner)) => self.shared.leave(sid, group, inner),
            None => {
                self.index.remove(filter, sid);
            }
        }
        levels
    }
}
