//! Changes gathered for one commit, the last value of each key winning: a
//! message queued and acknowledged while the last commit ran is written as
//! the removal of a key the store never held, and a topic retained a
//! hundred times once.

use std::collections::BTreeMap;

use crate::broker::{Change, Granted, Retained, SessionId, SessionRecord, Stored};
use crate::codec::PacketId;
use crate::topic::{TopicFilter, TopicName};

#[derive(Debug, Default)]
pub struct Batch {
    pub(super) sessions: BTreeMap<SessionId, Option<SessionRecord>>,
    pub(super) filters: BTreeMap<(SessionId, TopicFilter), Option<Granted>>,
    pub(super) messages: BTreeMap<(SessionId, u64), Option<Stored>>,
    pub(super) awaiting_release: BTreeMap<(SessionId, PacketId), bool>,
    pub(super) retained: BTreeMap<TopicName, Option<Retained>>,
    changes: usize,
}

impl Batch {
    pub fn add(&mut self, changes: Vec<Change>) {
        self.changes += changes.len();
        for change in changes {
            match change {
                // An ended session's rows go whole, after the puts
                // (`sessions_gone`), whatever this batch holds for it.
                Change::Session(sid, record) => {
                    self.sessions.insert(sid, record);
                }
                Change::Filter(sid, filter, granted) => {
                    self.filters.insert((sid, filter), granted);
                }
                Change::Message(sid, seq, stored) => {
                    self.messages.insert((sid, seq), stored);
                }
                Change::AwaitingRelease(sid, id, held) => {
                    self.awaiting_release.insert((sid, id), held);
                }
                Change::Retained(topic, retained) => {
                    self.retained.insert(topic, retained);
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

    /// Sessions whose every row is to go.
    pub(super) fn sessions_gone(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.sessions
            .iter()
            .filter(|(_, record)| record.is_none())
            .map(|(sid, _)| *sid)
    }
}
