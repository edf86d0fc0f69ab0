//! Retained messages owed to new subscriptions [MQTT-3.3.1-6], sent in
//! slices as the connection's outbound queue drains, never all at once: a
//! SUBSCRIBE that matches 200,000 of them would otherwise hold the routing
//! lock for its whole walk, and a queue bounded in packets would shed all
//! but the first thousand. A session keeps, per filter, a cursor into the
//! retained store (no copies of the messages); the server asks for the next
//! slice (`send_retained`) when the connection has room. QoS 1/2 ones go
//! out only as the session's window has room, so none waits in its queue
//! and none is dropped for a full one.
//!
//! Order: mosquitto sends them all at once, so a live message never comes
//! before an older retained one on its topic. Here a live message may be
//! routed while its topic is still ahead of a cursor; then the retained
//! message owed for that topic (the one stored before the live one, or
//! for a filter owed only since its route began, the one stored now) is
//! sent first, and the walk passes over the topic when it gets there
//! (`sent_live`), so that the subscriber sees the old then the new, as it
//! would from mosquitto, and neither twice.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::access::allowed;
use super::outbox::{Message, Published};
use super::retained::{Cursor, Decision, Found};
use super::subscribe::Subscription;
use super::{Broker, ConnId, Retained, SessionId};
use crate::auth::Access;
use crate::codec::{Property, Publish, QoS};
use crate::config::planted;
use crate::topic::{TopicFilter, TopicName};

/// Trie nodes one slice looks at, at most, over all its filters.
const VISITS_PER_SLICE: usize = 4096;
/// Messages one slice sends, at most.
const MESSAGES_PER_SLICE: usize = 256;
/// Topics one owed filter remembers as settled by a live message; past it
/// a topic's retained message may come again after its live one.
pub const SENT_LIVE_MAX: usize = 1024;

/// A session's owed filters, in the order they were subscribed. Boxed, and
/// `None` while empty, as an idle session's is: inline, the empty queue
/// cost each session 24 bytes more.
#[allow(
    clippy::box_collection,
    reason = "empty, one word, not the collection's three or four"
)]
#[derive(Debug, Default)]
pub struct Backlog(Option<Box<VecDeque<Owed>>>);

impl Backlog {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |owed| owed.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Owed> {
        self.0.iter().flat_map(|owed| owed.iter())
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Owed> {
        self.0.iter_mut().flat_map(|owed| owed.iter_mut())
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |owed| owed.capacity())
    }

    fn queue(&mut self) -> &mut VecDeque<Owed> {
        self.0.get_or_insert_with(Box::default)
    }

    /// An idle session keeps no room: every subscription passes through
    /// here, and the room of a few entries cost 440 bytes a connection
    /// (the load bench's idle connections).
    fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }
}

/// One filter's retained messages, still to send.
#[derive(Debug)]
pub struct Owed {
    pub filter: TopicFilter,
    subscription: Subscription,
    cursor: Cursor,
    /// Topics ahead of the cursor whose owed message went out before a
    /// live one; the walk passes over them.
    pub sent_live: BTreeSet<TopicName>,
    /// The routes started before it was owed (`Broker::settle_owed`).
    since: u64,
}

/// What one slice may still do.
struct Budget {
    /// Packets, of any QoS.
    room: usize,
    /// Trie nodes to look at.
    visits: usize,
    /// QoS 1/2 messages, for the filter being walked.
    window: usize,
}

impl Budget {
    fn take(&mut self, acknowledged: bool) -> Decision {
        if self.room == 0 || (acknowledged && self.window == 0) {
            return Decision::Stop;
        }
        self.room -= 1;
        self.window -= usize::from(acknowledged);
        Decision::Take
    }
}

/// What a session still owes after a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owing {
    Nothing,
    /// The slice used its visits: the next may go at once.
    More,
    /// Waiting for room in the outbound queue or the window.
    Blocked,
}

impl Broker {
    /// Owes `filters` their retained messages, once per filter: a SUBSCRIBE
    /// that repeats `#` must not repeat the whole store. A filter owed
    /// already starts again, as a new subscription would. `again` holds
    /// those of `filters` that the session had before (or that came twice):
    /// only they may be owed already, so a SUBSCRIBE of new filters, a
    /// slice of 100,000 at a time, does not search the backlog for each.
    pub(super) fn owe_retained(
        &mut self,
        sid: SessionId,
        filters: Vec<(TopicFilter, Subscription)>,
        again: &BTreeSet<TopicFilter>,
    ) {
        // The last of each filter counts, as its subscription does.
        let mut last = BTreeMap::new();
        for (i, (filter, _)) in filters.iter().enumerate() {
            if again.contains(filter) {
                last.insert(filter.clone(), i);
            }
        }
        let replaced_owe_nothing = planted!(self.config, ReplacedOwedDropped);
        let since = self.routes_started;
        let owed: Vec<Owed> = (filters.into_iter().enumerate())
            .filter(|(i, (filter, _))| last.get(filter).is_none_or(|last| last == i))
            .filter(|(_, (filter, _))| !(replaced_owe_nothing && again.contains(filter)))
            .map(|(_, (filter, subscription))| Owed {
                filter,
                subscription,
                cursor: Cursor::Start,
                sent_live: BTreeSet::new(),
                since,
            })
            .collect();
        let backlog = self.sessions.get_mut(sid).backlog.queue();
        if !again.is_empty() {
            // One pass, not one per filter: a SUBSCRIBE may carry thousands.
            let before = backlog.len();
            backlog.retain(|old| !again.contains(&old.filter));
            self.owed -= before - backlog.len();
        }
        self.owed += owed.len();
        backlog.extend(owed);
        self.sessions.get_mut(sid).backlog.release_if_empty();
    }

    /// Whether any session owes retained messages.
    pub fn owes_retained(&self) -> bool {
        self.owed > 0
    }

    /// The filters are no longer subscribed: nothing is owed for them. One
    /// pass for a slice of an UNSUBSCRIBE, not one per filter.
    pub(super) fn forget_owed(&mut self, sid: SessionId, filters: &BTreeSet<TopicFilter>) {
        let Some(backlog) = &mut self.sessions.get_mut(sid).backlog.0 else {
            return;
        };
        if filters.is_empty() {
            return;
        }
        let before = backlog.len();
        backlog.retain(|owed| !filters.contains(&owed.filter));
        self.owed -= before - backlog.len();
        self.sessions.get_mut(sid).backlog.release_if_empty();
    }

    /// Sends the next slice of the retained messages the connection's
    /// session owes: at most `room` packets, and QoS 1/2 ones only as its
    /// window has room.
    pub fn send_retained(&mut self, conn: ConnId, room: usize) -> Owing {
        let Some(sid) = self.sessions.by_conn(conn) else {
            return Owing::Nothing;
        };
        // They follow the SUBACK, which waits for the SUBSCRIBE's last
        // slice; the hold that ends it sends them.
        if self.subscribe_pending(conn) && !planted!(self.config, RetainedBeforeSubAck) {
            return Owing::Nothing;
        }
        let mut budget = Budget {
            room: room.min(MESSAGES_PER_SLICE),
            visits: VISITS_PER_SLICE,
            window: 0,
        };
        let mut found = Vec::new();
        loop {
            let Some((done, subscription)) = self.walk_owed(sid, &mut budget, &mut found) else {
                return Owing::Nothing;
            };
            for (topic, retained) in found.drain(..) {
                self.deliver(sid, retained_message(topic, &retained, subscription));
            }
            if !done {
                return if budget.visits == 0 {
                    Owing::More
                } else {
                    Owing::Blocked
                };
            }
        }
    }

    /// Walks the first owed filter of the session within `budget`, into
    /// `found`; drops it once done. Returns whether it was done, and its
    /// subscription; `None` when nothing is owed.
    fn walk_owed(
        &mut self,
        sid: SessionId,
        budget: &mut Budget,
        found: &mut Vec<Found>,
    ) -> Option<(bool, Subscription)> {
        let now = self.now;
        let skip_acl = planted!(self.config, AclSkippedForRetained);
        let session = self.sessions.get_mut(sid);
        let out = &session.outbox;
        // QoS 1/2 only straight into the window, never into the queue.
        budget.window = if out.pending_len() == 0 && out.tail().is_none() {
            out.window().saturating_sub(out.inflight_len())
        } else {
            0
        };
        let (checked, acl) = (self.acl.is_some(), session.acl.as_deref());
        let owed = session.backlog.0.as_mut()?.front_mut()?;
        let mut expired = Vec::new();
        let granted = owed.subscription.options.qos;
        let sent_live = &owed.sent_live;
        budget.visits -= self.retained.walk(
            &owed.filter,
            &mut owed.cursor,
            budget.visits,
            |topic, retained| {
                // A filter granted may match topics the client may not read.
                let readable = allowed(checked, acl, topic, Access::Read) || skip_acl;
                if sent_live.contains(topic) || !readable {
                    Decision::Skip
                } else if retained.expires_at.is_some_and(|at| at <= now) {
                    expired.push(topic.clone());
                    Decision::Skip
                } else {
                    budget.take(retained.qos.min(granted) != QoS::AtMostOnce)
                }
            },
            found,
        );
        let done = owed.cursor == Cursor::Done;
        let subscription = owed.subscription;
        owed.sent_live.retain(|topic| owed.cursor.is_before(topic));
        if done {
            session.backlog.queue().pop_front();
            session.backlog.release_if_empty();
            self.owed -= 1;
        }
        for topic in expired {
            self.retained.remove(&topic);
            self.note(|| super::journal::Noted::Retained(topic));
        }
        Some((done, subscription))
    }

    /// A live message on `topic`, of the route that was the `started`th,
    /// is about to go to the session: a retained message it is still owed
    /// on that topic goes first, and is not sent again later. That is the
    /// one stored before this message (`previous`) for a filter owed before
    /// the route began; for one owed since, the route had already stored
    /// its message, and the filter is owed what the store holds (as its
    /// walk would have sent), not what it held before: a route in slices
    /// once gave a subscription made meanwhile the value it replaced
    /// (`tests/fanout.rs`).
    pub(super) fn settle_owed(
        &mut self,
        sid: SessionId,
        topic: &TopicName,
        previous: Option<&Retained>,
        started: u64,
    ) {
        let session = self.sessions.get_mut(sid);
        let mut early = Vec::new();
        for owed in session.backlog.iter_mut() {
            let ahead = owed.cursor.is_before(topic)
                && owed.filter.matches(topic)
                && !owed.sent_live.contains(topic);
            if !ahead || owed.sent_live.len() >= SENT_LIVE_MAX {
                continue;
            }
            owed.sent_live.insert(topic.clone());
            let later = owed.since >= started && !planted!(self.config, LaterOwedGetPrevious);
            let due = match later {
                true => self.retained.get(topic),
                false => previous,
            };
            if let Some(due) = due.filter(|r| r.expires_at.is_none_or(|at| at > self.now)) {
                early.push(retained_message(topic.clone(), due, owed.subscription));
            }
        }
        for message in early {
            self.deliver(sid, message);
        }
    }
}

/// The copy of a retained message that a new subscription gets: flagged
/// retained, at the lesser QoS, with the subscription's identifier.
fn retained_message(topic: TopicName, retained: &Retained, subscription: Subscription) -> Message {
    let mut properties = retained.properties.clone();
    properties.extend(subscription.id.map(Property::SubscriptionIdentifier));
    Message {
        publish: Arc::new(Publish {
            dup: false,
            qos: retained.qos.min(subscription.options.qos),
            retain: true,
            topic,
            packet_id: None,
            payload: retained.payload.clone(),
            properties,
        }),
        expires_at: retained.expires_at,
        group: None,
        resend_id: None,
        seq: 0,
        published: Published {
            qos: retained.qos,
            retain: true,
        },
    }
}
