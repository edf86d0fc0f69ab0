//! The subscription index: a trie over topic levels, so that finding the
//! subscribers of a topic costs what the topic's depth costs, not what the
//! number of subscriptions costs.

use std::collections::BTreeMap;

use super::SessionId;
use crate::codec::QoS;
use crate::topic::{TopicFilter, TopicName};

/// Subscribers `K` (sessions, or shared-subscription groups) by filter, each
/// with what it asked for, `V`.
#[derive(Debug)]
pub struct SubscriptionIndex<K = SessionId, V = QoS> {
    root: Node<K, V>,
    len: usize,
}

impl<K, V> Default for SubscriptionIndex<K, V> {
    fn default() -> Self {
        SubscriptionIndex {
            root: Node::default(),
            len: 0,
        }
    }
}

#[derive(Debug)]
struct Node<K, V> {
    /// Literal levels and `+`, by level text.
    children: Children<K, V>,
    /// Filters that end here.
    exact: BTreeMap<K, V>,
    /// Filters that end here with `/#` (or are `#`): they match this level
    /// and everything below it.
    rest: BTreeMap<K, V>,
}

/// A node's children. Most levels of most filters have one child, and a
/// map for one child cost a kilobyte (a B-tree leaf has room for eleven):
/// a filter of 200 levels took 200 KB. One child is kept on its own.
#[derive(Debug)]
enum Children<K, V> {
    None,
    One(Box<str>, Box<Node<K, V>>),
    Many(BTreeMap<Box<str>, Node<K, V>>),
}

impl<K, V> Children<K, V> {
    fn is_empty(&self) -> bool {
        matches!(self, Children::None)
    }

    fn get(&self, level: &str) -> Option<&Node<K, V>> {
        match self {
            Children::None => None,
            Children::One(key, node) => (**key == *level).then_some(&**node),
            Children::Many(map) => map.get(level),
        }
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match self {
            Children::None => None,
            Children::One(key, node) => (**key == *level).then_some(&mut **node),
            Children::Many(map) => map.get_mut(level),
        }
    }

    /// The child at `level`, made if there is none.
    fn get_or_insert(&mut self, level: &str) -> &mut Node<K, V> {
        match std::mem::replace(self, Children::None) {
            Children::None => *self = Children::One(level.into(), Box::default()),
            Children::One(key, node) if *key == *level => *self = Children::One(key, node),
            Children::One(key, node) => {
                let mut map = BTreeMap::new();
                map.insert(key, *node);
                map.insert(level.into(), Node::default());
                *self = Children::Many(map);
            }
            Children::Many(mut map) => {
                map.entry(level.into()).or_default();
                *self = Children::Many(map);
            }
        }
        self.get_mut(level).expect("inserted above")
    }

    fn remove(&mut self, level: &str) {
        match self {
            Children::One(key, _) if **key == *level => *self = Children::None,
            Children::Many(map) => {
                map.remove(level);
                if map.is_empty() {
                    *self = Children::None;
                }
            }
            _ => {}
        }
    }
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node {
            children: Children::None,
            exact: BTreeMap::new(),
            rest: BTreeMap::new(),
        }
    }
}

impl<K, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.exact.is_empty() && self.rest.is_empty()
    }
}

impl<K: Ord + Copy, V: Copy> SubscriptionIndex<K, V> {
    /// Number of (session, filter) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds or replaces the subscription of `session` to `filter`.
    pub fn insert(&mut self, filter: &TopicFilter, session: K, qos: V) {
        let mut node = &mut self.root;
        let mut is_rest = false;
        for level in filter.levels() {
            if level == "#" {
                is_rest = true;
                break;
            }
            node = node.children.get_or_insert(level);
        }
        let slot = if is_rest {
            &mut node.rest
        } else {
            &mut node.exact
        };
        if slot.insert(session, qos).is_none() {
            self.len += 1;
        }
    }

    /// Removes the subscription; returns whether there was one.
    pub fn remove(&mut self, filter: &TopicFilter, session: K) -> bool {
        let levels: Vec<&str> = filter.levels().collect();
        let removed = remove_at(&mut self.root, &levels, session);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Appends every (session, granted QoS) whose filter matches `topic`. A
    /// session with overlapping filters appears once per filter; the caller
    /// merges them.
    pub fn matches(&self, topic: &TopicName, out: &mut Vec<(K, V)>) {
        let levels: Vec<&str> = topic.levels().collect();
        collect(&self.root, &levels, topic.is_dollar(), out);
    }
}

fn remove_at<K: Ord, V>(node: &mut Node<K, V>, levels: &[&str], session: K) -> bool {
    match levels {
        [] => node.exact.remove(&session).is_some(),
        ["#"] => node.rest.remove(&session).is_some(),
        [level, tail @ ..] => {
            let Some(child) = node.children.get_mut(level) else {
                return false;
            };
            let removed = remove_at(child, tail, session);
            if child.is_empty() {
                node.children.remove(level);
            }
            removed
        }
    }
}

/// `at_root_of_dollar` is true while matching the first level of a
/// `$`-topic, which a leading wildcard must not match [MQTT-4.7.2-1].
fn collect<K: Copy, V: Copy>(
    node: &Node<K, V>,
    levels: &[&str],
    at_root_of_dollar: bool,
    out: &mut Vec<(K, V)>,
) {
    if !at_root_of_dollar {
        out.extend(node.rest.iter().map(|(s, q)| (*s, *q)));
    }
    let Some((level, tail)) = levels.split_first() else {
        out.extend(node.exact.iter().map(|(s, q)| (*s, *q)));
        return;
    };
    if let Some(child) = node.children.get(level) {
        collect(child, tail, false, out);
    }
    if !at_root_of_dollar {
        if let Some(child) = node.children.get("+") {
            collect(child, tail, false, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(filters: &[(&str, u64)]) -> SubscriptionIndex {
        let mut index = SubscriptionIndex::default();
        for (filter, session) in filters {
            index.insert(
                &TopicFilter::new(filter).unwrap(),
                SessionId(*session),
                QoS::AtLeastOnce,
            );
        }
        index
    }

    fn sessions(index: &SubscriptionIndex, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        index.matches(&TopicName::new(topic).unwrap(), &mut out);
        let mut ids: Vec<u64> = out.into_iter().map(|(s, _)| s.0).collect();
        ids.sort();
        ids
    }

    const FILTERS: [&str; 14] = [
        "#", "+", "a", "a/#", "a/+", "a/b", "a/+/c", "+/b/#", "/+", "+/+", "$SYS/#", "$SYS/+",
        "a/b/c/#", "+/#",
    ];
    const TOPICS: [&str; 11] = [
        "a", "a/b", "a/b/c", "a/x/c", "/a", "b/b", "$SYS/x", "$SYS", "a/b/c/d", "/", "x/b",
    ];

    #[test]
    fn agrees_with_the_reference_matcher() {
        let filters: Vec<(&str, u64)> = FILTERS
            .iter()
            .enumerate()
            .map(|(i, f)| (*f, i as u64))
            .collect();
        let index = index(&filters);
        for topic in TOPICS {
            let name = TopicName::new(topic).unwrap();
            let expected: Vec<u64> = filters
                .iter()
                .filter(|(f, _)| TopicFilter::new(f).unwrap().matches(&name))
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(sessions(&index, topic), expected, "topic {topic}");
        }
    }

    #[test]
    fn removal_prunes_and_counts() {
        let mut index = index(&[("a/b", 1), ("a/#", 1), ("a/b", 2)]);
        assert_eq!(index.len(), 3);
        assert!(index.remove(&TopicFilter::new("a/b").unwrap(), SessionId(1)));
        assert!(!index.remove(&TopicFilter::new("a/b").unwrap(), SessionId(1)));
        assert!(!index.remove(&TopicFilter::new("x/y").unwrap(), SessionId(1)));
        assert_eq!(sessions(&index, "a/b"), vec![1, 2]);
        assert!(index.remove(&TopicFilter::new("a/#").unwrap(), SessionId(1)));
        assert!(index.remove(&TopicFilter::new("a/b").unwrap(), SessionId(2)));
        assert!(index.is_empty());
        assert!(index.root.is_empty(), "empty nodes are pruned");
    }

    #[test]
    fn one_child_becomes_many_and_back_to_none() {
        let mut index = index(&[("a/b/c", 1)]);
        assert!(matches!(index.root.children, Children::One(..)));
        index.insert(
            &TopicFilter::new("a/x").unwrap(),
            SessionId(2),
            QoS::AtMostOnce,
        );
        let a = index.root.children.get("a").unwrap();
        assert!(matches!(a.children, Children::Many(_)));
        assert_eq!(sessions(&index, "a/b/c"), vec![1]);
        assert_eq!(sessions(&index, "a/x"), vec![2]);
        assert!(index.remove(&TopicFilter::new("a/b/c").unwrap(), SessionId(1)));
        assert_eq!(sessions(&index, "a/x"), vec![2]);
        assert!(index.remove(&TopicFilter::new("a/x").unwrap(), SessionId(2)));
        assert!(index.root.children.is_empty(), "pruned to nothing");
    }

    #[test]
    fn reinsert_replaces_the_granted_qos() {
        let mut index = index(&[("a", 1)]);
        index.insert(
            &TopicFilter::new("a").unwrap(),
            SessionId(1),
            QoS::ExactlyOnce,
        );
        assert_eq!(index.len(), 1);
        let mut out = Vec::new();
        index.matches(&TopicName::new("a").unwrap(), &mut out);
        assert_eq!(out, vec![(SessionId(1), QoS::ExactlyOnce)]);
    }
}
