//! Subscriptions of ended sessions that had too many to take out of the
//! index in one hold of the lock: one client with 10,000 filters of 200
//! levels, or 65,536 overlapping ones, once held everyone up for 135 to
//! 220 ms as its session ended. They are taken out a slice at a time by the
//! timers task instead, and until then the walk skips them: their session
//! is gone, and session ids are never reused, so nothing reaches anyone.

use std::collections::{BTreeSet, VecDeque};

use super::{Broker, SessionId};
use crate::topic::TopicFilter;

/// Filter levels taken out of the index at once, here and in a slice: the
/// runtime's budget of work per hold.
pub const LEVELS_PER_SLICE: u64 = 16_384;

#[derive(Debug, Default)]
pub struct Reaping {
    filters: VecDeque<(SessionId, TopicFilter)>,
    /// The sessions with filters in `filters`.
    sessions: BTreeSet<SessionId>,
}

impl Reaping {
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Filters still in the index that belong to no session.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    pub fn holds(&self, sid: SessionId) -> bool {
        self.sessions.contains(&sid)
    }

    pub fn add(&mut self, sid: SessionId, filters: impl IntoIterator<Item = TopicFilter>) {
        let before = self.filters.len();
        self.filters.extend(filters.into_iter().map(|f| (sid, f)));
        if self.filters.len() > before {
            self.sessions.insert(sid);
        }
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
    /// Takes one slice of the filters waiting out of the index; whether
    /// any are left.
    pub fn reap(&mut self) -> bool {
        let mut done = 0;
        while done < LEVELS_PER_SLICE {
            let Some((sid, filter)) = self.reaping.filters.pop_front() else {
                break;
            };
            done += levels(&filter);
            self.index.remove(&filter, sid);
            if self
                .reaping
                .filters
                .front()
                .is_none_or(|(next, _)| *next != sid)
            {
                self.reaping.sessions.remove(&sid);
            }
        }
        self.levels_indexed += done;
        !self.reaping.is_empty()
    }
}
