//! A hold's effects grouped by the connection they are for, so that each
//! outbox is locked and woken once a hold however many of the hold's
//! messages it gets. Grouped through a map rather than sorted: a fan-out's
//! effects are one per subscriber in the order of the subscription index,
//! not of connection ids, and sorting a thousand of them (with the
//! publisher's PUBACK last) cost 350 instructions an effect, a twentieth of
//! the broker's at QoS 1 (callgrind, fan-out to 1,000).

use std::collections::hash_map::Entry;

use crate::broker::{ConnId, ScratchIdMap};

/// No further effect of the connection.
const END: usize = usize::MAX;

/// Kept between holds, each worker thread its own (`apply_effects`).
pub(super) struct ByConn {
    /// Each connection's last effect so far.
    lasts: ScratchIdMap<ConnId, usize>,
    /// The first effect of each connection, in the order they came.
    firsts: Vec<usize>,
    /// After each effect, the next of its connection, or `END`.
    next: Vec<usize>,
}

/// What `Cell::take` leaves in the thread-local while a hold uses it.
impl Default for ByConn {
    fn default() -> ByConn {
        ByConn::EMPTY
    }
}

impl ByConn {
    /// For a thread-local without a lazy start.
    pub(super) const EMPTY: ByConn = ByConn {
        lasts: ScratchIdMap::with_hasher(std::hash::BuildHasherDefault::new()),
        firsts: Vec::new(),
        next: Vec::new(),
    };

    /// Groups the effects whose connections are `conns`, in order.
    pub(super) fn group(&mut self, conns: impl Iterator<Item = ConnId>) {
        self.clear();
        // Most holds are for one connection (a client's own replies, the
        // messages its acknowledgements let go): no map for them.
        let mut only: Option<(ConnId, usize)> = None;
        for (i, conn) in conns.enumerate() {
            self.next.push(END);
            match only {
                None if i == 0 => {
                    only = Some((conn, i));
                    self.firsts.push(i);
                    continue;
                }
                Some((one, last)) if one == conn => {
                    self.next[last] = i;
                    only = Some((one, i));
                    continue;
                }
                Some((one, last)) => {
                    self.lasts.insert(one, last);
                    only = None;
                }
                None => {}
            }
            match self.lasts.entry(conn) {
                Entry::Occupied(mut last) => {
                    self.next[*last.get()] = i;
                    *last.get_mut() = i;
                }
                Entry::Vacant(last) => {
                    last.insert(i);
                    self.firsts.push(i);
                }
            }
        }
    }

    /// The groups, in the order of their first effects: each the indices
    /// of one connection's effects, in order.
    pub(super) fn groups(&self) -> impl Iterator<Item = Group<'_>> + '_ {
        self.firsts.iter().map(|&first| Group {
            next: &self.next,
            at: first,
        })
    }

    /// Empties it, keeping its room.
    pub(super) fn clear(&mut self) {
        self.lasts.clear();
        self.firsts.clear();
        self.next.clear();
    }

    /// The most effects it has room for without growing.
    pub(super) fn room(&self) -> usize {
        self.next.capacity().max(self.lasts.capacity())
    }
}

/// One connection's effects: their indices, in order.
pub(super) struct Group<'a> {
    next: &'a [usize],
    at: usize,
}

impl Iterator for Group<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.at == END {
            return None;
        }
        let at = self.at;
        self.at = self.next[at];
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grouped(conns: &[u64]) -> Vec<Vec<usize>> {
        let mut by_conn = ByConn::EMPTY;
        by_conn.group(conns.iter().map(|&c| ConnId(c)));
        by_conn.groups().map(Iterator::collect).collect()
    }

    #[test]
    fn each_connections_effects_stay_in_order_and_groups_follow_first_effects() {
        assert_eq!(
            grouped(&[7, 3, 7, 9, 3, 7]),
            vec![vec![0, 2, 5], vec![1, 4], vec![3]]
        );
        assert_eq!(grouped(&[]), Vec::<Vec<usize>>::new());
        assert_eq!(grouped(&[5, 5, 5]), vec![vec![0, 1, 2]]);
        assert_eq!(grouped(&[5, 5, 6, 5]), vec![vec![0, 1, 3], vec![2]]);
        assert_eq!(grouped(&[4]), vec![vec![0]]);
    }

    #[test]
    fn a_second_use_forgets_the_first() {
        let mut by_conn = ByConn::EMPTY;
        by_conn.group([1, 2, 1].into_iter().map(ConnId));
        by_conn.group([2, 2].into_iter().map(ConnId));
        let groups: Vec<Vec<usize>> = by_conn.groups().map(Iterator::collect).collect();
        assert_eq!(groups, vec![vec![0, 1]]);
    }
}
