//! Retained messages: the last message published with the retain flag on
//! each topic, handed to every new subscription that matches it.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::Millis;
use crate::codec::{Properties, QoS};
use crate::topic::{TopicFilter, TopicName};

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

/// Ordered by topic so that a filter's literal prefix narrows the scan.
#[derive(Debug, Default)]
pub struct RetainedStore {
    messages: BTreeMap<TopicName, Retained>,
    bytes: usize,
    /// Entries looked at by `matching`, ever: the work filters cost.
    visited: std::cell::Cell<u64>,
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
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Entries looked at to answer filters, since the start.
    pub fn visited(&self) -> u64 {
        self.visited.get()
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Stores, replaces, or (with an empty payload) clears the retained
    /// message of `topic`. A new topic beyond `max` is refused.
    pub fn set(&mut self, topic: &TopicName, retained: Retained, max: usize) -> RetainOutcome {
        if retained.payload.is_empty() {
            if let Some(old) = self.messages.remove(topic) {
                self.bytes -= old.payload.len();
            }
            return RetainOutcome::Cleared;
        }
        if self.messages.len() >= max && !self.messages.contains_key(topic) {
            return RetainOutcome::Refused;
        }
        self.bytes += retained.payload.len();
        if let Some(old) = self.messages.insert(topic.clone(), retained) {
            self.bytes -= old.payload.len();
        }
        RetainOutcome::Stored
    }

    /// Removes the message of `topic`, which has expired.
    pub fn remove(&mut self, topic: &TopicName) {
        if let Some(old) = self.messages.remove(topic) {
            self.bytes -= old.payload.len();
        }
    }

    /// Every retained message whose topic `filter` matches, in topic order.
    pub fn matching<'a>(
        &'a self,
        filter: &'a TopicFilter,
    ) -> impl Iterator<Item = (&'a TopicName, &'a Retained)> + 'a {
        let prefix = literal_prefix(filter);
        let start = TopicName::new(prefix).ok();
        let range = match &start {
            Some(start) => self.messages.range(start.clone()..),
            None => self.messages.range(..),
        };
        range
            .take_while(move |(topic, _)| topic.as_str().starts_with(prefix))
            .inspect(|_| self.visited.set(self.visited.get() + 1))
            .filter(|(topic, _)| filter.matches(topic))
    }
}

/// The part of a filter before its first wildcard level, without the slash
/// that ends it, so that `a/#` also finds `a` itself.
fn literal_prefix(filter: &TopicFilter) -> &str {
    let s = filter.as_str();
    let mut end = 0;
    for level in s.split('/') {
        if level == "+" || level == "#" {
            break;
        }
        end += level.len() + 1;
    }
    &s[..end.saturating_sub(1).min(s.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(topics: &[&str]) -> RetainedStore {
        let mut store = RetainedStore::default();
        for topic in topics {
            let outcome = store.set(
                &TopicName::new(topic).unwrap(),
                Retained::new(Bytes::from(topic.to_string()), QoS::AtMostOnce),
                100,
            );
            assert_eq!(outcome, RetainOutcome::Stored);
        }
        store
    }

    fn matching(store: &RetainedStore, filter: &str) -> Vec<String> {
        let filter = TopicFilter::new(filter).unwrap();
        store
            .matching(&filter)
            .map(|(t, _)| t.to_string())
            .collect()
    }

    #[test]
    fn filters_find_what_they_match() {
        let store = store(&["a", "a/b", "a/b/c", "ab", "b/b", "$SYS/x", "/"]);
        assert_eq!(matching(&store, "a/#"), ["a", "a/b", "a/b/c"]);
        assert_eq!(matching(&store, "a/+"), ["a/b"]);
        assert_eq!(matching(&store, "+/b"), ["a/b", "b/b"]);
        assert_eq!(
            matching(&store, "#"),
            ["/", "a", "a/b", "a/b/c", "ab", "b/b"]
        );
        assert_eq!(matching(&store, "$SYS/#"), ["$SYS/x"]);
        assert_eq!(matching(&store, "ab"), ["ab"]);
        assert_eq!(matching(&store, "/"), ["/"]);
        assert_eq!(matching(&store, "+/+"), ["/", "a/b", "b/b"]);
    }

    #[test]
    fn empty_payload_clears_and_limit_refuses_new_topics() {
        let mut store = store(&["a", "b"]);
        assert_eq!(store.bytes(), 2);
        let a = TopicName::new("a").unwrap();
        let c = TopicName::new("c").unwrap();
        assert_eq!(
            store.set(&c, Retained::new(Bytes::from("c"), QoS::AtMostOnce), 2),
            RetainOutcome::Refused
        );
        assert_eq!(
            store.set(&a, Retained::new(Bytes::from("new"), QoS::AtLeastOnce), 2),
            RetainOutcome::Stored
        );
        assert_eq!(store.bytes(), 4);
        assert_eq!(
            store.set(&a, Retained::new(Bytes::new(), QoS::AtMostOnce), 2),
            RetainOutcome::Cleared
        );
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), 1);
    }
}
