//! Changes gathered for one commit, the last value of each key winning, and
//! a key the batch saw made and removed written not at all: a message
//! queued, sent and acknowledged while the last commit ran costs the store
//! nothing, and a topic retained a hundred times is written once.

use std::collections::BTreeMap;

use crate::broker::{Change, Granted, Key, Retained, SessionId, SessionRecord, Stored};
use crate::codec::PacketId;
use crate::topic::{TopicFilter, TopicName};

#[derive(Debug, Default)]
pub struct Batch {
    pub(super) sessions: BTreeMap<SessionId, SessionEntry>,
    /// Filters, messages and QoS 2 ids, by session: a session's end drops
    /// them from the batch at once.
    pub(super) rows: BTreeMap<SessionId, Rows>,
    pub(super) retained: BTreeMap<TopicName, Option<Retained>>,
    changes: usize,
}

#[derive(Debug)]
pub(super) struct SessionEntry {
    pub record: Option<SessionRecord>,
    /// Its rows in the store are to go, before this batch's are written:
    /// it ended (or stopped outliving its connection) in this batch.
    pub gone: bool,
    /// The store did not hold it when this batch began.
    new: bool,
}

#[derive(Debug, Default)]
pub(super) struct Rows {
    pub filters: BTreeMap<TopicFilter, Entry<Option<Granted>>>,
    pub messages: BTreeMap<u64, Entry<Option<Stored>>>,
    pub awaiting_release: BTreeMap<PacketId, Entry<bool>>,
}

/// A key's last value in the batch.
#[derive(Debug)]
pub(super) struct Entry<V> {
    pub value: V,
    /// The store did not hold the key when this batch began (its first
    /// change in the batch made it), so removing it writes nothing.
    new: bool,
}

impl<V> Entry<Option<V>> {
    /// Neither a value to write nor one to remove.
    pub fn is_nothing(&self) -> bool {
        self.new && self.value.is_none()
    }
}

impl Entry<bool> {
    /// An id held and released within the batch.
    pub fn is_nothing(&self) -> bool {
        self.new && !self.value
    }
}

/// Sets `key` to `value`; whether the store held it is its first change's
/// to say, since a later one may come after this batch made it.
fn set<K: Ord, V>(map: &mut BTreeMap<K, Entry<V>>, key: K, value: V, made: Key) {
    match map.entry(key) {
        std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().value = value,
        std::collections::btree_map::Entry::Vacant(entry) => {
            entry.insert(Entry {
                value,
                new: made == Key::New,
            });
        }
    }
}

impl Batch {
    pub fn add(&mut self, changes: Vec<Change>) {
        self.changes += changes.len();
        for change in changes {
            match change {
                Change::Session(sid, record, made) => self.session(sid, record, made),
                Change::Filter(sid, filter, granted, made) => {
                    set(&mut self.rows(sid).filters, filter, granted, made);
                }
                Change::Message(sid, seq, stored, made) => {
                    set(&mut self.rows(sid).messages, seq, stored, made);
                }
                Change::AwaitingRelease(sid, id, held) => {
                    let made = if held { Key::New } else { Key::Seen };
                    set(&mut self.rows(sid).awaiting_release, id, held, made);
                }
                Change::Retained(topic, retained) => {
                    self.retained.insert(topic, retained);
                }
            }
        }
    }

    fn rows(&mut self, sid: SessionId) -> &mut Rows {
        self.rows.entry(sid).or_default()
    }

    /// A session's end takes every row of it this batch holds: what it
    /// held before goes whole (`gone`), and one this batch made leaves no
    /// trace at all.
    fn session(&mut self, sid: SessionId, record: Option<SessionRecord>, made: Key) {
        let ended = record.is_none();
        if ended {
            self.rows.remove(&sid);
        }
        match self.sessions.entry(sid) {
            std::collections::btree_map::Entry::Occupied(mut entry) => {
                if ended && entry.get().new {
                    entry.remove();
                } else {
                    let entry = entry.get_mut();
                    entry.gone |= ended;
                    entry.record = record;
                }
            }
            std::collections::btree_map::Entry::Vacant(entry) => {
                let new = made == Key::New;
                if !(ended && new) {
                    entry.insert(SessionEntry {
                        record,
                        gone: ended,
                        new,
                    });
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// Changes added, before the last value of each key won: what one
    /// commit serves.
    pub fn changes(&self) -> usize {
        self.changes
    }
}
