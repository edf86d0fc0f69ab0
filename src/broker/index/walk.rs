//! A match walk that stops at a budget of work and resumes later, with the
//! trie changed or not in between: one client's 65,536 overlapping filters
//! made a publish's walk 196,607 steps, 4 to 7 ms under the broker lock.
//! The cursor is the path to the next node (literal level or `+` at each
//! level), never a pointer, so a resumed walk goes down from the root again
//! (a step a level) and finds what is there now: a filter added behind the
//! cursor misses the message, one ahead of it gets it, as either would had
//! it been made just before or after the publish.
//!
//! The walk is depth first, in a fixed order: at each node its `#`
//! subscribers, then (at the topic's last level) its exact ones, then the
//! literal child, then the `+` child. Within a node, subscribers come in
//! key order, and the cursor remembers the last one taken, so that a
//! node held by a million subscribers is split too.
//!
//! A subtree whose weight (`Node::weight`, at least the work a walk does
//! in it) fits the budget left is walked whole, breadth first as
//! `matches` walks, and the cursor moves past it. Depth first, each node
//! waits for the one above it to come from memory, where breadth first
//! fetches a level's nodes at once: one 65,536-filter match took 19.6 ms
//! depth first against 2.6 ms breadth first. So the depth-first steps are
//! only those above subtrees too heavy for a slice, and a whole trie that
//! fits is one `matches`.
//!
//! Weights count every filter that passes through a node, most of which a
//! given topic does not reach: in a trie too heavy for a slice, a topic
//! that matches few filters would still step down from the root. So a
//! walk starts with a breadth-first try of the whole match, capped at a
//! sixteenth of the budget (`TRIAL_SHARE`): a small fan-out is done in
//! it, as cheap as `matches`; a big one throws its findings away and goes
//! on by subtrees, having spent at most that sixteenth for nothing.

use std::ops::Bound;

use super::breadth::{Capped, Frontier};
use super::{Node, Probe, Subscribers, SubscriptionIndex};
use crate::config::planted;
use crate::topic::TopicName;

/// Where a walk stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkCursor<K> {
    /// The next node: at each level below the root, `false` for the
    /// topic's literal level and `true` for `+`.
    path: Vec<bool>,
    at: At<K>,
}

/// How far the walk has come in the node the path leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At<K> {
    /// Not yet counted.
    Enter,
    /// In its `#` subscribers, past the key given.
    Rest(Option<K>),
    /// In its exact subscribers, past the key given.
    Exact(Option<K>),
    /// Its subscribers done; its children next.
    Children,
    Done,
}

impl<K> Default for WalkCursor<K> {
    fn default() -> Self {
        WalkCursor {
            path: Vec::new(),
            at: At::Enter,
        }
    }
}

impl<K> WalkCursor<K> {
    pub fn is_done(&self) -> bool {
        matches!(self.at, At::Done)
    }
}

/// One walk's fixed parts: the topic's levels, and whether the first level
/// may be matched by a wildcard [MQTT-4.7.2-1].
struct Topic<'a> {
    levels: Vec<Probe<'a>>,
    wildcards_at_root: bool,
}

impl Topic<'_> {
    /// Whether the node at `depth` is matched by its `#` and `+` filters.
    fn wildcards(&self, depth: usize) -> bool {
        depth > 0 || self.wildcards_at_root
    }
}

/// The share of a slice's budget that a walk's first, whole-match try may
/// spend (see the top of this file).
const TRIAL_SHARE: u64 = 16;

impl<K: Ord + Copy, V: Copy> SubscriptionIndex<K, V> {
    /// `matches`, a slice at a time: appends what it finds from `cursor`
    /// on to `out` until `budget` work is done (trie nodes walked and
    /// subscriptions appended, as `matches` counts them) or the walk ends,
    /// and leaves `cursor` where it stopped. Returns the work done, never
    /// more than `budget`.
    pub fn matches_from(
        &self,
        topic: &TopicName,
        cursor: &mut WalkCursor<K>,
        budget: u64,
        out: &mut Vec<(K, V)>,
    ) -> u64 {
        let mut frontier = Frontier::default();
        let mut tried = 0;
        if cursor.path.is_empty() && cursor.at == At::Enter {
            // The root, with no subscriptions, weighs nothing but costs
            // its visit.
            let cap = match self.root.weight.max(1) <= budget {
                true => budget,
                false => budget / TRIAL_SHARE,
            };
            let levels = topic.levels().map(Probe::new);
            let wildcards = self.wildcards_at_root(topic);
            let mark = out.len();
            match self.matches_below(&self.root, levels, wildcards, cap, &mut frontier, out) {
                Ok(work) => {
                    cursor.at = At::Done;
                    return work;
                }
                Err(Capped(work)) => {
                    out.truncate(mark);
                    tried = work;
                }
            }
        }
        let topic = Topic {
            levels: topic.levels().map(Probe::new).collect(),
            wildcards_at_root: self.wildcards_at_root(topic),
        };
        let mut walk = Walk {
            index: self,
            topic: &topic,
            stack: vec![&self.root],
            frontier,
            work: tried,
            budget,
        };
        walk.run(cursor, out);
        walk.work
    }
}

struct Walk<'a, 't, K, V> {
    index: &'a SubscriptionIndex<K, V>,
    topic: &'t Topic<'t>,
    /// The nodes on the cursor's path, the root first.
    stack: Vec<&'a Node<K, V>>,
    frontier: Frontier<'a, K, V>,
    work: u64,
    budget: u64,
}

impl<'a, K: Ord + Copy, V: Copy> Walk<'a, '_, K, V> {
    fn run(&mut self, cursor: &mut WalkCursor<K>, out: &mut Vec<(K, V)>) {
        loop {
            if !self.descend(cursor) {
                return;
            }
            let node = *self.stack.last().expect("the root at least");
            let depth = cursor.path.len();
            let last = depth == self.topic.levels.len();
            match cursor.at {
                At::Done => return,
                At::Enter => {
                    let weight = node.weight.max(1);
                    let left = self.budget - self.work;
                    if weight <= left {
                        let levels = self.topic.levels[depth..].iter().copied();
                        let wildcards = self.topic.wildcards(depth);
                        let frontier = &mut self.frontier;
                        let whole = self
                            .index
                            .matches_below(node, levels, wildcards, left, frontier, out);
                        self.work += whole.unwrap_or_else(|_| unreachable!("weighed"));
                        self.next_subtree(cursor);
                        continue;
                    }
                    // Whole in the next slice rather than step by step in
                    // this one.
                    if weight <= self.budget && self.work > 0 {
                        return;
                    }
                    if !self.take(1) {
                        return;
                    }
                    cursor.at = At::Rest(None);
                }
                At::Rest(after) => {
                    // `t/#` matches `t` [MQTT-4.7.1-2].
                    let rest = if last {
                        !planted!(self.index, HashMissesParent)
                    } else {
                        self.topic.wildcards(depth)
                    };
                    if rest {
                        if let Err(stopped) = self.extend(&node.rest, after, out) {
                            cursor.at = At::Rest(stopped);
                            return;
                        }
                    }
                    cursor.at = if last { At::Exact(None) } else { At::Children };
                }
                At::Exact(after) => {
                    if let Err(stopped) = self.extend(&node.exact, after, out) {
                        cursor.at = At::Exact(stopped);
                        return;
                    }
                    cursor.at = At::Children;
                }
                At::Children if last => self.next_subtree(cursor),
                At::Children => {
                    cursor.path.push(false);
                    cursor.at = At::Enter;
                }
            }
        }
    }

    /// Makes `stack` the nodes of the cursor's path, going down from the
    /// deepest node it holds; where the path leads nowhere (a node taken
    /// out since), moves on to the next subtree. False when the budget is
    /// spent or the walk is done.
    fn descend(&mut self, cursor: &mut WalkCursor<K>) -> bool {
        while self.stack.len() <= cursor.path.len() {
            let depth = self.stack.len() - 1;
            let parent = self.stack[depth];
            let child = if cursor.path[depth] {
                parent.plus.as_deref()
            } else {
                parent.children.get(&self.topic.levels[depth])
            };
            match child {
                Some(child) => self.stack.push(child),
                None => {
                    cursor.path.truncate(depth + 1);
                    self.next_subtree(cursor);
                }
            }
        }
        !matches!(cursor.at, At::Done) && self.work < self.budget
    }

    /// Moves the cursor past the subtree its path leads to: to the `+`
    /// sibling of the deepest literal level that has one to go to.
    fn next_subtree(&mut self, cursor: &mut WalkCursor<K>) {
        cursor.at = At::Enter;
        while let Some(plus) = cursor.path.pop() {
            let parent_depth = cursor.path.len();
            if !plus && self.topic.wildcards(parent_depth) {
                cursor.path.push(true);
                self.stack.truncate(cursor.path.len());
                return;
            }
        }
        cursor.at = At::Done;
        self.stack.truncate(1);
    }

    /// Counts `n` work if the budget has room for it.
    fn take(&mut self, n: u64) -> bool {
        if self.work + n > self.budget {
            return false;
        }
        self.work += n;
        true
    }

    /// Appends the subscribers past `after`, while the budget lasts;
    /// `Err` with the last one taken (if any) when it ran out first.
    fn extend(
        &mut self,
        subscribers: &Subscribers<K, V>,
        after: Option<K>,
        out: &mut Vec<(K, V)>,
    ) -> Result<(), Option<K>> {
        match subscribers {
            Subscribers::None => Ok(()),
            Subscribers::One(_, _) if after.is_some() => Ok(()),
            Subscribers::One(k, v) => {
                if !self.take(1) {
                    return Err(None);
                }
                out.push((*k, *v));
                Ok(())
            }
            Subscribers::Many(map) => {
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                let mut last = after;
                for (k, v) in map.range((from, Bound::Unbounded)) {
                    if !self.take(1) {
                        return Err(last);
                    }
                    out.push((*k, *v));
                    last = Some(*k);
                }
                Ok(())
            }
        }
    }
}
