//! A route's matches put in session order a slice at a time. A session
//! gets one copy however many of its filters match, so the matches must be
//! grouped by session before any copy goes; sorted all at once when the
//! walk ends, a publish to a million subscribers, or to a few sessions
//! with 65,536 overlapping filters each, was one sort of all of them in
//! one hold of the broker lock. Here each walk slice sorts only what it
//! appended (a run, at most a slice's budget), and deliveries take the
//! runs' smallest session first, a k-way merge that goes only as far as
//! the slice's deliveries do.
//!
//! A walk done in one slice, the common case, is one run: it is walked
//! straight through, as the whole sort was, and allocates nothing here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use super::subscribe::Subscription;
use super::SessionId;

/// One (session, subscription) a walk found.
pub(super) type Match = (SessionId, Subscription);

/// The sorted runs of a route's matches, and how far deliveries took them.
#[derive(Debug, Default)]
pub(super) struct Runs {
    /// Where each run after the first starts; empty while there is one.
    starts: Vec<usize>,
    /// The end of the last run sorted: what the walk appends after it is
    /// the next run.
    sorted: usize,
    /// With one run: the first match not yet taken.
    next: usize,
    /// With more: what is left of each run, and the runs by the session
    /// at their head (then by run, so that ties go in one order), made
    /// when the first session is taken.
    left: Vec<Range<usize>>,
    heads: BinaryHeap<Reverse<(SessionId, usize)>>,
    /// All taken, or given up (`FullQueueEndsFanOut`).
    done: bool,
}

impl Runs {
    /// Sorts what the walk appended since the last call into a run of its
    /// own, by session then Subscription Identifier, so that a copy's
    /// identifiers come in one order whatever order the walk found them
    /// in. Returns how many it sorted.
    pub(super) fn seal(&mut self, matches: &mut [Match]) -> usize {
        let run = &mut matches[self.sorted..];
        run.sort_unstable_by_key(|(sid, s)| (*sid, s.id));
        let sorted = run.len();
        if self.sorted > 0 && sorted > 0 {
            self.starts.push(self.sorted);
        }
        self.sorted = matches.len();
        sorted
    }

    /// The next session's matches: the ranges of `matches` that hold
    /// them, in `into` (cleared first), one per run it is in. False when
    /// every session has been taken.
    pub(super) fn next_session(&mut self, matches: &[Match], into: &mut Vec<Range<usize>>) -> bool {
        into.clear();
        if self.done {
            return false;
        }
        if self.starts.is_empty() {
            let Some(&(sid, _)) = matches[..self.sorted].get(self.next) else {
                self.done = true;
                return false;
            };
            let end = block_end(matches, self.next..self.sorted, sid);
            into.push(self.next..end);
            self.next = end;
            return true;
        }
        if self.left.is_empty() {
            self.start_merge(matches);
        }
        let Some(&Reverse((sid, _))) = self.heads.peek() else {
            self.done = true;
            return false;
        };
        while let Some(&Reverse((head, run))) = self.heads.peek() {
            if head != sid {
                break;
            }
            self.heads.pop();
            let left = self.left[run].clone();
            let end = block_end(matches, left.clone(), sid);
            into.push(left.start..end);
            self.left[run].start = end;
            if end < left.end {
                self.heads.push(Reverse((matches[end].0, run)));
            }
        }
        true
    }

    /// The session of the match `n` places past the next one, with one
    /// run: a session a few on, for `prefetch.rs`. With more runs, `None`:
    /// where the merge goes next is not worth working out for a hint.
    pub(super) fn ahead(&self, matches: &[Match], n: usize) -> Option<SessionId> {
        if self.done || !self.starts.is_empty() {
            return None;
        }
        matches[..self.sorted].get(self.next + n).map(|m| m.0)
    }

    /// Whether `next_session` has a session left to give.
    pub(super) fn has_more(&self) -> bool {
        if self.done {
            false
        } else if self.starts.is_empty() {
            self.next < self.sorted
        } else {
            // Before the merge starts, every run has a session to give.
            self.left.is_empty() || !self.heads.is_empty()
        }
    }

    /// Every run's bounds, and its head in the heap.
    fn start_merge(&mut self, matches: &[Match]) {
        let bounds = std::iter::once(0).chain(self.starts.iter().copied());
        let ends = self
            .starts
            .iter()
            .copied()
            .chain(std::iter::once(self.sorted));
        self.left = bounds.zip(ends).map(|(start, end)| start..end).collect();
        for (run, range) in self.left.iter().enumerate() {
            self.heads.push(Reverse((matches[range.start].0, run)));
        }
    }

    /// No session gets the message after this.
    pub(super) fn give_up(&mut self) {
        self.done = true;
    }
}

/// The end of the block of `sid`'s matches that starts `within`.
fn block_end(matches: &[Match], within: Range<usize>, sid: SessionId) -> usize {
    let run = matches[within.clone()]
        .iter()
        .take_while(|(s, _)| *s == sid)
        .count();
    within.start + run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{QoS, SubscriptionOptions};

    fn found(sid: u64, id: u32) -> Match {
        let options = SubscriptionOptions::qos(QoS::AtMostOnce);
        (
            SessionId(sid),
            Subscription {
                options,
                id: Some(id),
            },
        )
    }

    /// Seals each slice's finds, then takes the sessions back: for each,
    /// (session, identifier) of its matches in the order given.
    fn sessions_of(slices: Vec<Vec<Match>>) -> Vec<Vec<(u64, u32)>> {
        let (mut runs, mut matches) = (Runs::default(), Vec::new());
        for slice in slices {
            matches.extend(slice);
            runs.seal(&mut matches);
        }
        let (mut blocks, mut sessions) = (Vec::new(), Vec::new());
        while runs.next_session(&matches, &mut blocks) {
            let taken = blocks.iter().flat_map(|b| &matches[b.clone()]);
            sessions.push(taken.map(|(sid, s)| (sid.0, s.id.unwrap())).collect());
        }
        assert!(!runs.next_session(&matches, &mut blocks), "done stays done");
        sessions
    }

    #[test]
    fn each_session_comes_once_in_order_with_its_matches_from_every_run() {
        let slices = vec![
            vec![found(3, 1), found(1, 2), found(3, 3)],
            vec![found(2, 4), found(1, 5)],
            vec![],
            vec![found(3, 6), found(4, 7)],
        ];
        assert_eq!(
            sessions_of(slices),
            vec![
                vec![(1, 2), (1, 5)],
                vec![(2, 4)],
                vec![(3, 1), (3, 3), (3, 6)],
                vec![(4, 7)],
            ]
        );
    }

    #[test]
    fn ahead_names_the_match_n_past_the_next_in_one_run_only() {
        let (mut runs, mut blocks) = (Runs::default(), Vec::new());
        let mut matches = vec![found(3, 1), found(1, 2), found(1, 3), found(2, 4)];
        runs.seal(&mut matches);
        let ahead = |runs: &Runs, matches: &[Match], n| runs.ahead(matches, n).map(|s| s.0);
        assert_eq!(ahead(&runs, &matches, 0), Some(1));
        assert!(runs.next_session(&matches, &mut blocks));
        // Session 1 taken, both its matches: next is 2, then 3.
        assert_eq!(ahead(&runs, &matches, 0), Some(2));
        assert_eq!(ahead(&runs, &matches, 1), Some(3));
        assert_eq!(ahead(&runs, &matches, 2), None);
        // A second run: the merge's order is not worked out for a hint.
        matches.push(found(0, 5));
        runs.seal(&mut matches);
        assert_eq!(ahead(&runs, &matches, 0), None);
        runs.give_up();
        assert_eq!(ahead(&runs, &matches, 0), None);
    }

    #[test]
    fn one_run_is_sorted_whole_and_taken_straight_through() {
        let slices = vec![vec![], vec![found(2, 9), found(1, 8), found(2, 1)]];
        assert_eq!(
            sessions_of(slices),
            vec![vec![(1, 8)], vec![(2, 1), (2, 9)]]
        );
    }
}
