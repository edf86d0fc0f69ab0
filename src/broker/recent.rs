//! The messages routed last, kept a short while for subscriptions that lost
//! a race: a SUBSCRIBE whose bytes reached the host before another client's
//! PUBLISH, but the lock after it (two workers handle the two at once;
//! `net/arrival.rs`). When the subscription is made it gets the messages
//! that came after its SUBSCRIBE, as if it had been handled in the order
//! the bytes came, as mosquitto's one thread handles them. Only messages
//! and SUBSCRIBEs whose arrival the socket told are kept and compared (in
//! the simulation, the order of the reads stands for it). The copy may go
//! before the SUBACK, which MQTT allows [3.8.4 of 3.1.1 and 5.0].
//!
//! Not replayed: a retained message (the SUBSCRIBE sends the topic's
//! retained message itself, unless its Retain Handling says not to), nor
//! any message on a topic the retained store holds one for (the retained
//! one, sent after the SUBACK, would come after a later live one); a
//! shared subscription's; a message the session's other filters matched
//! (it had its copy), or one routed before the session last unsubscribed
//! (a filter it had then may have brought it); a session's own (its
//! packets are handled in order).

use std::collections::VecDeque;
use std::sync::Arc;

use super::outbox::{Message, Published};
use super::routing::copy_for;
use super::shared::split_held;
use super::subscribe::Subscription;
use super::{Broker, Millis, SessionId};
use crate::codec::Publish;
use crate::config::planted;
use crate::topic::{TopicFilter, TopicName};

/// Messages kept at most: at 2,000 messages a second, the last 32 ms; at
/// 500,000, the last 128 µs. Few, so that keeping one costs a routed
/// message little: its slot and the one it replaces stay in cache.
const RECENT_MESSAGES_MAX: usize = 64;
/// Their weight (`Publish::weight`: payload, topic, properties) at most.
const RECENT_BYTES_MAX: usize = 64 * 1024;
/// Sessions' last UNSUBSCRIBEs kept at most; past it, what was kept before
/// the one let go is replayed to nobody.
const UNSUBSCRIBES_MAX: usize = 64;
/// How much earlier than the newest a message may have come and be kept:
/// a SUBSCRIBE reaches the lock tens of microseconds after its bytes came,
/// a few milliseconds on a loaded host.
const RECENT_WINDOW_NANOS: u64 = 20_000_000;
/// Filters matched against topics in one replay at most, under the lock:
/// the new filters against the messages that came after the SUBSCRIBE,
/// then the session's other filters against those the new ones match. A
/// replay that would take more is not done (a session of thousands of
/// filters, a SUBSCRIBE of hundreds while hundreds of messages raced it).
const REPLAY_WORK_MAX: usize = 8_192;

#[derive(Debug, Default)]
pub(super) struct Recent {
    /// In the order they were routed; their arrivals nearly so.
    messages: VecDeque<RecentMessage>,
    bytes: usize,
    /// The `seq` the next message kept gets.
    next_seq: u64,
    /// Sessions that took a filter out, with `next_seq` then, oldest
    /// first: what was kept before may have reached them through it.
    unsubscribed: VecDeque<(SessionId, u64)>,
    /// Messages kept before this are replayed to nobody: an UNSUBSCRIBE
    /// that came after them was let go from `unsubscribed`.
    floor: u64,
}

#[derive(Debug)]
pub(super) struct RecentMessage {
    /// When its PUBLISH's bytes came (`Arrivals`).
    pub arrived: u64,
    pub origin: SessionId,
    pub forwarded: Publish,
    pub expires_at: Option<Millis>,
    /// Its place among the messages kept (`Recent::keep` sets it).
    pub seq: u64,
}

impl RecentMessage {
    fn bytes(&self) -> usize {
        self.forwarded.weight()
    }
}

impl Recent {
    pub(super) fn keep(&mut self, mut message: RecentMessage) {
        let bytes = message.bytes();
        if bytes > RECENT_BYTES_MAX {
            return;
        }
        // The host's clock went back: what was kept would look newer than
        // what comes from now on.
        if self
            .messages
            .back()
            .is_some_and(|last| last.arrived > message.arrived + RECENT_WINDOW_NANOS)
        {
            self.messages.clear();
            self.bytes = 0;
        }
        let arrived = message.arrived;
        message.seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes;
        self.messages.push_back(message);
        while let Some(oldest) = self.messages.front() {
            let over = self.messages.len() > RECENT_MESSAGES_MAX || self.bytes > RECENT_BYTES_MAX;
            if !over && oldest.arrived + RECENT_WINDOW_NANOS >= arrived {
                break;
            }
            self.bytes -= oldest.bytes();
            self.messages.pop_front();
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Session `sid` took a filter out: none of the messages kept so far
    /// is replayed to it.
    pub(super) fn unsubscribed(&mut self, sid: SessionId) {
        if self.messages.is_empty() {
            return;
        }
        self.unsubscribed.retain(|(s, _)| *s != sid);
        if self.unsubscribed.len() == UNSUBSCRIBES_MAX {
            if let Some((_, seq)) = self.unsubscribed.pop_front() {
                self.floor = self.floor.max(seq);
            }
        }
        self.unsubscribed.push_back((sid, self.next_seq));
    }

    /// Whether `message` may be replayed to session `sid`.
    fn replayable_to(&self, message: &RecentMessage, sid: SessionId) -> bool {
        message.seq >= self.floor
            && !(self.unsubscribed.iter()).any(|(s, seq)| *s == sid && message.seq < *seq)
    }
}

impl Broker {
    /// The recent messages that came after a SUBSCRIBE that `arrived`, and
    /// that its new filters `new` (made just now, in this hold) match, to
    /// session `sid`: each one copy, as its matching new filters ask.
    pub(super) fn replay_recent(
        &mut self,
        sid: SessionId,
        arrived: u64,
        new: &[(TopicFilter, Subscription)],
    ) {
        if arrived == 0 || new.is_empty() || self.recent.is_empty() {
            return;
        }
        let recent = &self.recent;
        let after = |m: &&RecentMessage| {
            m.arrived > arrived && m.origin != sid && recent.replayable_to(m, sid)
        };
        let mut work = self.recent.messages.iter().filter(after).count() * new.len();
        if work > REPLAY_WORK_MAX {
            return;
        }
        let raced: Vec<&RecentMessage> = (self.recent.messages.iter().filter(after))
            .filter(|m| new.iter().any(|(f, _)| f.matches(&m.forwarded.topic)))
            .filter(|m| self.retained.get(&m.forwarded.topic).is_none())
            .collect();
        let filters = &self.sessions.get(sid).subscriptions;
        work += raced.len() * (filters.len() - new.len());
        if raced.is_empty() || work > REPLAY_WORK_MAX {
            return;
        }
        let mut made: Vec<&TopicFilter> = new.iter().map(|(filter, _)| filter).collect();
        made.sort_unstable();
        let others: Vec<&TopicFilter> = filters
            .iter()
            .map(|(filter, _)| filter)
            .filter(|filter| made.binary_search(filter).is_err())
            .filter(|_| !planted!(self.config, ReplayToHeldFilters))
            .collect();
        let mut copies = Vec::new();
        for message in raced {
            let topic = &message.forwarded.topic;
            // It had its copy through one of these.
            if others.iter().any(|filter| held_matches(filter, topic)) {
                continue;
            }
            let matching = new.iter().filter(|(f, _)| f.matches(topic)).map(|(_, s)| s);
            if let Some(copy) = copy_for(&message.forwarded, matching) {
                let published = Published {
                    qos: message.forwarded.qos,
                    retain: message.forwarded.retain,
                };
                copies.push((copy, message.expires_at, published));
            }
        }
        for (publish, expires_at, published) in copies {
            if !self.may_read(sid, &publish.topic) {
                continue;
            }
            self.replayed += 1;
            let message = Message {
                publish: Arc::new(publish),
                expires_at,
                group: None,
                resend_id: None,
                seq: 0,
                published,
            };
            self.deliver(sid, message);
        }
    }
}

/// Whether a filter a session holds, shared or not, matches `topic`.
fn held_matches(filter: &TopicFilter, topic: &TopicName) -> bool {
    match split_held(filter) {
        Some((_, inner)) => TopicFilter::new(inner).is_ok_and(|inner| inner.matches(topic)),
        None => filter.matches(topic),
    }
}
