//! Subscriptions of ended sessions that had too many to take out of the
//! index in one hold of the lock: one client with 10,000 filters of 200
//! levels, or 65,536 overlapping ones, once held everyone up for 135 to
//! 220 ms as its session ended. The hold that ends it takes out a slice's
//! worth; the timers task takes out the rest, a slice at a time, shared
//! and not alike. Until then the walk and the shared groups skip them:
//! their session is gone, and session ids are never reused, so nothing
//! reaches anyone.

use std::collections::{BTreeSet, VecDeque};

use super::filters::Filters;
use super::{Broker, SessionId};
use crate::config::planted;
use crate::topic::TopicFilter;

/// Filter levels taken out of the index at once, here and in a slice: the
/// runtime's budget of work per hold.
pub const LEVELS_PER_SLICE: u64 = 16_384;

/// A shared filter's leave against an unshared one's removal, level for
/// level: it parses the filter, makes its group's key and looks in three
/// maps besides the groups' own trie. A slice of 65,536 shared filters'
/// levels took about 3 ms, of unshared ones 1.1 ms (release build, load
/// 3-5).
const SHARED_WEIGHT: u64 = 3;

/// Ended sessions' filters, each session's handed over whole as it ends:
/// collecting 65,536 of them into a list held the lock 8.7 ms.
#[derive(Debug, Default)]
pub struct Reaping {
    queue: VecDeque<(SessionId, Filters)>,
    /// The sessions in `queue`.
    sessions: BTreeSet<SessionId>,
    /// The filters in `queue`, each still in the index or its group.
    len: usize,
}

impl Reaping {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Filters still in the index or a group that belong to no session.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether `sid`'s session ended with filters still to take out: the
    /// walk and the shared groups skip it until then.
    pub fn holds(&self, sid: SessionId) -> bool {
        self.sessions.contains(&sid)
    }

    fn push(&mut self, sid: SessionId, filters: Filters, front: bool) {
        if filters.len() == 0 {
            return;
        }
        self.len += filters.len();
        self.sessions.insert(sid);
        if front {
            self.queue.push_front((sid, filters));
        } else {
            self.queue.push_back((sid, filters));
        }
    }

    fn pop(&mut self) -> Option<(SessionId, Filters)> {
        let (sid, filters) = self.queue.pop_front()?;
        self.len -= filters.len();
        self.sessions.remove(&sid);
        Some((sid, filters))
    }
}

/// A filter's levels, counted by its separators: `split` looked for each
/// one apart, and a session of 10,000 filters of 200 levels took 20 to
/// 50 ms to count under the lock as it ended.
pub fn levels(filter: &TopicFilter) -> u64 {
    let separators = filter.as_str().bytes().filter(|&b| b == b'/').count();
    separators as u64 + 1
}

impl Broker {
    /// Takes an ending session's subscriptions out of the index and their
    /// groups: a slice's worth now, the rest (if any) a slice at a time
    /// from `reap`.
    pub(super) fn drop_subscriptions(&mut self, sid: SessionId, filters: &mut Filters) {
        let mut filters = std::mem::take(filters);
        let budget = if planted!(self.config, SessionEndUnbounded) {
            u64::MAX
        } else {
            LEVELS_PER_SLICE
        };
        self.drop_some(sid, &mut filters, budget);
        self.reaping.push(sid, filters, false);
    }

    /// Takes one slice of the filters waiting out of the index and their
    /// groups; whether any are left.
    pub fn reap(&mut self) -> bool {
        let mut done = 0;
        while done < LEVELS_PER_SLICE {
            let Some((sid, mut filters)) = self.reaping.pop() else {
                break;
            };
            done += self.drop_some(sid, &mut filters, LEVELS_PER_SLICE - done);
            self.reaping.push(sid, filters, true);
        }
        !self.reaping.is_empty()
    }

    /// Takes filters out until `budget` is spent or none are left; the
    /// budget spent: a filter's levels, weighed by `SHARED_WEIGHT` for a
    /// shared one.
    fn drop_some(&mut self, sid: SessionId, filters: &mut Filters, budget: u64) -> u64 {
        let mut done = 0;
        while done < budget {
            let Some(filter) = filters.pop_last() else {
                break;
            };
            let shared = filter.as_str().starts_with("$share/");
            let levels = self.drop_subscription(sid, &filter);
            done += if shared {
                levels * SHARED_WEIGHT
            } else {
                levels
            };
        }
        done
    }
}
