//! Retained messages: the last message published with the retain flag on
//! each topic, handed to every new subscription that matches it. Kept in a
//! trie over topic levels, so that a filter costs what it can match, not
//! what the store holds: `+/x` over 200,000 topics `a/N` looks at `a` and
//! finds no `x` under it. `walk` finds them in bounded slices.

mod walk;

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Millis;
use crate::codec::{Properties, QoS};
use crate::topic::TopicName;
pub use walk::{Cursor, Decision, Found};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    pub payload: Bytes,
    pub qos: QoS,
    /// The publisher's properties (5.0), to be forwarded with it.
    pub properties: Properties,
    /// From its Message Expiry Interval: after this it is not sent.
    pub expires_at: Option<Millis>,
}

impl Retained {
    pub fn new(payload: Bytes, qos: QoS) -> Retained {
        Retained {
            payload,
            qos,
            properties: Properties::new(),
            expires_at: None,
        }
    }
}

/// One topic level. Children are ordered, so walks are deterministic and a
/// walk can resume after the last level it reached.
#[derive(Debug, Default)]
struct Node {
    children: BTreeMap<Box<str>, Node>,
    /// Boxed: most nodes of a deep store are inner levels with no message,
    /// and an inline one would cost each of them its ~100 bytes.
    message: Option<Box<Stored>>,
}

impl Node {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

#[derive(Debug)]
struct Stored {
    /// The topic whole, shared with the PUBLISH that stored it, so that a
    /// walk hands it out without joining levels.
    topic: TopicName,
    retained: Retained,
}

#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    len: usize,
    bytes: usize,
    /// Trie nodes looked at by walks, since the start: the work filters
    /// cost, for the census.
    visited: u64,
}

/// What `RetainedStore::set` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainOutcome {
    Stored,
    Cleared,
    /// The store is full and the topic had no retained message yet.
    Refused,
}

impl RetainedStore {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Trie nodes looked at to answer filters, since the start.
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// The message retained on `topic`, if any.
    pub fn get(&self, topic: &TopicName) -> Option<&Retained> {
        // Asked for every message routed, mostly of a broker holding none.
        if self.len == 0 {
            return None;
        }
        let mut node = &self.root;
        for level in topic.levels() {
            node = node.children.get(level)?;
        }
        node.message.as_ref().map(|stored| &stored.retained)
    }

    /// Stores, replaces, or (with an empty payload) clears the retained
    /// message of `topic`. A new topic beyond `max` is refused.
    pub fn set(&mut self, topic: &TopicName, retained: Retained, max: usize) -> RetainOutcome {
        if retained.payload.is_empty() {
            self.remove(topic);
            return RetainOutcome::Cleared;
        }
        if self.len >= max && self.get(topic).is_none() {
            return RetainOutcome::Refused;
        }
        let mut node = &mut self.root;
        for level in topic.levels() {
            node = node.children.entry(level.into()).or_default();
        }
        self.bytes += retained.payload.len();
        let stored = Box::new(Stored {
            topic: topic.clone(),
            retained,
        });
        match node.message.replace(stored) {
            Some(old) => self.bytes -= old.retained.payload.len(),
            None => self.len += 1,
        }
        RetainOutcome::Stored
    }

    /// Removes the message of `topic` (cleared, or expired), and the levels
    /// that led only to it. Iterative: a topic's depth is bounded by
    /// `topic_levels_max`, but no stack should depend on it.
    pub fn remove(&mut self, topic: &TopicName) {
        let levels: Vec<&str> = topic.levels().collect();
        let Some((keep, leaf)) = self.prune_point(&levels) else {
            return;
        };
        let parent = walk_to(&mut self.root, &levels[..keep]);
        let old = if leaf {
            // Nothing below it: the chain of levels that led only to it goes.
            let mut cut = parent
                .children
                .remove(levels[keep])
                .expect("the path was just walked");
            walk_to(&mut cut, &levels[keep + 1..]).message.take()
        } else {
            walk_to(parent, &levels[keep..]).message.take()
        };
        let old = old.expect("the message was just seen");
        self.len -= 1;
        self.bytes -= old.retained.payload.len();
    }

    /// For a topic with a message: the depth of the deepest node on its
    /// path that stays once the message goes (the root, or one with a
    /// message or another child), and whether the topic's own node has no
    /// children (so the levels below that one go with it).
    fn prune_point(&self, levels: &[&str]) -> Option<(usize, bool)> {
        let mut keep = 0;
        let mut node = &self.root;
        for (depth, level) in levels.iter().enumerate() {
            if node.children.len() > 1 || (depth > 0 && node.message.is_some()) {
                keep = depth;
            }
            node = node.children.get(*level)?;
        }
        node.message.as_ref()?;
        Some((keep, node.children.is_empty()))
    }
}

/// The node at `levels` below `node`, which must be there.
fn walk_to<'a>(node: &'a mut Node, levels: &[&str]) -> &'a mut Node {
    levels.iter().fold(node, |node, level| {
        node.children
            .get_mut(*level)
            .expect("the path was just walked")
    })
}

#[cfg(test)]
mod tests;
