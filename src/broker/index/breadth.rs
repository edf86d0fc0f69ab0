//! The match walk level by level: every node the topic's prefix reaches,
//! one level after the other. The nodes of one level do not depend on each
//! other, so the processor fetches several at once, where a depth-first
//! walk waits for each in turn (a topic that one client's 65,536
//! overlapping filters match walks 131,071 nodes, mostly not in cache).

use smallvec::SmallVec;

use super::{Node, Probe, SubscriptionIndex};
use crate::config::planted;
use crate::topic::TopicName;

/// The nodes of the level a walk is at and of the next, kept by a sliced
/// walk so that its subtrees' walks allocate once. A topic that few
/// wildcards match reaches a handful of nodes a level: those are kept in
/// place, where two vectors allocated and grew for every message routed.
pub(super) struct Frontier<'a, K, V> {
    reached: Nodes<'a, K, V>,
    next: Nodes<'a, K, V>,
}

type Nodes<'a, K, V> = SmallVec<[&'a Node<K, V>; FRONTIER_INLINE]>;

/// Nodes a level kept in place: the literal child and `+` of a few nodes.
const FRONTIER_INLINE: usize = 8;

impl<K, V> Default for Frontier<'_, K, V> {
    fn default() -> Self {
        Frontier {
            reached: SmallVec::new(),
            next: SmallVec::new(),
        }
    }
}

/// A walk that would have passed its cap: the work it did, and what it
/// appended is the caller's to take back.
pub(super) struct Capped(pub u64);

impl<K: Ord + Copy, V: Copy> SubscriptionIndex<K, V> {
    /// Appends every (session, granted QoS) whose filter matches `topic`. A
    /// session with overlapping filters appears once per filter; the caller
    /// merges them. Returns the work it took: trie nodes walked and
    /// subscriptions appended, which the caller counts against its budget.
    pub fn matches(&self, topic: &TopicName, out: &mut Vec<(K, V)>) -> u64 {
        let levels = topic.levels().map(Probe::new);
        let uncapped = self.matches_below(
            &self.root,
            levels,
            self.wildcards_at_root(topic),
            u64::MAX,
            &mut Frontier::default(),
            out,
        );
        uncapped.unwrap_or_else(|Capped(work)| work)
    }

    /// A leading wildcard does not match a `$` topic's first level
    /// [MQTT-4.7.2-1].
    pub(super) fn wildcards_at_root(&self, topic: &TopicName) -> bool {
        !topic.is_dollar() || planted!(self, WildcardsMatchDollar)
    }

    /// `matches` in the subtree of `start`, for the topic's `levels` below
    /// it (`wildcards`: whether `start`'s own `+` and `#` filters match),
    /// stopped before its work would pass `cap`.
    pub(super) fn matches_below<'a, 'p>(
        &self,
        start: &'a Node<K, V>,
        levels: impl Iterator<Item = Probe<'p>>,
        mut wildcards: bool,
        cap: u64,
        frontier: &mut Frontier<'a, K, V>,
        out: &mut Vec<(K, V)>,
    ) -> Result<u64, Capped> {
        let Frontier { reached, next } = frontier;
        reached.clear();
        next.clear();
        reached.push(start);
        let mut work = 0;
        for level in levels {
            for &node in reached.iter() {
                let rest = if wildcards { node.rest.len() as u64 } else { 0 };
                if work + 1 + rest > cap {
                    return Err(Capped(work));
                }
                work += 1 + rest;
                // Pushed, not extended: `SmallVec::extend` reserves first.
                if wildcards {
                    node.rest.extend_into(out);
                    if let Some(plus) = node.plus.as_deref() {
                        next.push(plus);
                    }
                }
                if let Some(child) = node.children.get(&level) {
                    next.push(child);
                }
            }
            reached.clear();
            std::mem::swap(reached, next);
            // Nothing below: the topic's other levels need no splitting.
            if reached.is_empty() {
                return Ok(work);
            }
            wildcards = true;
        }
        // `t/#` matches `t` [MQTT-4.7.1-2].
        let parent = !planted!(self, HashMissesParent);
        for &node in reached.iter() {
            let rest = if parent { node.rest.len() as u64 } else { 0 };
            let found = rest + node.exact.len() as u64;
            if work + 1 + found > cap {
                return Err(Capped(work));
            }
            work += 1 + found;
            if parent {
                node.rest.extend_into(out);
            }
            node.exact.extend_into(out);
        }
        Ok(work)
    }
}
