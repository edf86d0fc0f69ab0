//! What changed in the state that outlives a restart, for the store: the
//! durable sessions (those that outlive their connection), their filters,
//! messages and QoS 2 ids awaiting release, and the retained messages.
//!
//! The broker stays pure: each part notes what it changed as it changes it,
//! and `take_changes` hands the lot over at the end of a hold of the lock.
//! A session, a filter or a retained topic is read anew then, so that many
//! changes to one cost one entry; a message is noted with its value at each
//! change, since finding it again in its queue would cost a search.

use super::outbox::Message;
use super::subscribe::Subscription;
use super::{Broker, Millis, Retained, SessionId};
use crate::codec::{LastWill, PacketId, ProtocolVersion};
use crate::topic::{TopicFilter, TopicName};

/// A message of a durable session, as the store keeps it.
#[derive(Debug, Clone)]
pub enum Stored {
    /// Waiting for room in the window; sent before if `resend_id` is set.
    Queued(Message),
    /// Sent under this id, not yet acknowledged.
    Sent(PacketId, Message),
    /// QoS 2, PUBREL sent under this id, PUBCOMP awaited.
    Released(PacketId),
}

/// What the store keeps of a durable session beside its filters, messages
/// and QoS 2 ids.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub client_id: String,
    pub owner: Option<Box<str>>,
    pub version: ProtocolVersion,
    pub expiry_secs: u32,
    pub asked_no_expiry: bool,
    /// When it ends, if it is offline and ever does; on the broker's clock.
    pub expires_at: Option<Millis>,
    /// A will waiting out its delay, and when it is due.
    pub delayed_will: Option<(Millis, LastWill)>,
}

/// One change, as it now stands.
#[derive(Debug, Clone)]
pub enum Change {
    /// The session is durable now; `None`: it is not (ended, or no longer
    /// outlives its connection), and nothing of it may stay stored.
    Session(SessionId, Option<SessionRecord>, Key),
    Filter(SessionId, TopicFilter, Option<Subscription>, Key),
    Message(SessionId, u64, Option<Stored>, Key),
    /// A QoS 2 message's id that the session's client must release: held
    /// (always a new key: an id is held only if it was not), or released.
    AwaitingRelease(SessionId, PacketId, bool),
    Retained(TopicName, Option<Retained>),
}

/// Whether the store can hold a change's key from before it. A key made
/// and removed within one batch is then written not at all: most messages
/// of a subscriber that keeps up are queued, sent and acknowledged between
/// two commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Made by this change: absent in the broker just before it, so absent
    /// from the store once every earlier change is written.
    New,
    /// Perhaps written before.
    Seen,
}

/// Changes noted by the parts that have no other way to note them.
#[derive(Debug)]
pub(super) enum Noted {
    Filter(SessionId, TopicFilter, Key),
    AwaitingRelease(SessionId, PacketId, bool),
    Retained(TopicName),
}

impl Broker {
    /// Starts noting changes for `take_changes`: a broker with a store.
    pub fn keep_changes(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
        self.sessions.keep_changes();
        self.counts.keep_changes();
    }

    pub(super) fn note(&mut self, noted: impl FnOnce() -> Noted) {
        if let Some(journal) = &mut self.journal {
            journal.push(noted());
        }
    }

    /// What changed since the last call, each as it stands now: sessions
    /// first, then what belongs to durable sessions, then retained
    /// messages. Empty without `keep_changes`.
    pub fn take_changes(&mut self) -> Vec<Change> {
        let Some(journal) = self.journal.as_mut().map(std::mem::take) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let mut sids = self.sessions.take_changed();
        sids.sort_unstable();
        sids.dedup();
        for sid in sids {
            let record = self
                .sessions
                .contains(sid)
                .then(|| self.sessions.get(sid).record())
                .flatten();
            if let Some(key) = self.sessions.tell_store(sid, record.is_some()) {
                changes.push(Change::Session(sid, record, key));
            }
        }
        let durable = |sid| self.sessions.contains(sid) && self.sessions.get(sid).is_durable();
        for (sid, seq, stored, key) in self.counts.take_changes() {
            // Noted while durable; a session that ended since is gone whole.
            if durable(sid) {
                changes.push(Change::Message(sid, seq, stored, key));
            }
        }
        for noted in journal {
            match noted {
                Noted::Filter(sid, filter, key) if durable(sid) => {
                    let subscription = self.sessions.get(sid).subscriptions.get(&filter);
                    changes.push(Change::Filter(sid, filter, subscription.copied(), key));
                }
                Noted::AwaitingRelease(sid, id, held) if durable(sid) => {
                    changes.push(Change::AwaitingRelease(sid, id, held));
                }
                // `$SYS` is the broker's own, made anew at each start.
                Noted::Retained(topic) if !topic.as_str().starts_with("$SYS") => {
                    let retained = self.retained.get(&topic).cloned();
                    changes.push(Change::Retained(topic, retained));
                }
                _ => {}
            }
        }
        changes
    }
}

/// The durable state read back from the store at start.
#[derive(Debug, Default)]
pub struct Restored {
    pub sessions: Vec<RestoredSession>,
    pub retained: Vec<(TopicName, Retained)>,
}

#[derive(Debug)]
pub struct RestoredSession {
    pub sid: SessionId,
    pub record: SessionRecord,
    pub filters: Vec<(TopicFilter, Subscription)>,
    /// In `seq` order.
    pub messages: Vec<(u64, Stored)>,
    /// The messages after them, left on disk past the memory budget, and
    /// the last one's `seq`.
    pub tail: Option<(super::Tail, u64)>,
    pub awaiting_release: Vec<PacketId>,
}
