//! The subscription index: a trie over topic levels, so that finding the
//! subscribers of a topic costs what the topic's depth costs, not what the
//! number of subscriptions costs.

use std::collections::BTreeMap;

use super::SessionId;
use crate::codec::QoS;
use crate::topic::TopicFilter;

/// Subscribers `K` (sessions, or shared-subscription groups) by filter, each
/// with what it asked for, `V`.
#[derive(Debug)]
pub struct SubscriptionIndex<K = SessionId, V = QoS> {
    root: Node<K, V>,
    len: usize,
    /// A bug to plant in the walk (the broker's, set where it is made).
    #[cfg(feature = "planted-bugs")]
    pub(crate) planted_bug: Option<crate::config::PlantedBug>,
}

impl<K, V> Default for SubscriptionIndex<K, V> {
    fn default() -> Self {
        SubscriptionIndex {
            root: Node::default(),
            len: 0,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        }
    }
}

/// One level of the trie. A match walks one node per level for every
/// filter prefix the topic fits, so a node is laid out for that walk: the
/// `+` child beside the literal ones and a lone subscriber in place, where
/// maps had cost a cache miss each (a topic matching one client's 65,536
/// overlapping filters took 27 ms, 79% of it waiting on map nodes).
#[derive(Debug)]
struct Node<K, V> {
    /// The `+` child: every walk looks for it, at every level.
    plus: Option<Box<Node<K, V>>>,
    /// Literal levels, by level text.
    children: Children<K, V>,
    /// Filters that end here.
    exact: Subscribers<K, V>,
    /// Filters that end here with `/#` (or are `#`): they match this level
    /// and everything below it.
    rest: Subscribers<K, V>,
    /// At least the work a match walk can do in this subtree (`weigh`):
    /// a sliced walk takes a subtree that fits its budget in one
    /// breadth-first pass (`walk.rs`).
    weight: u64,
}

/// What a subscription to a filter with `levels` levels (not counting a
/// `#`) below a node adds to that node's weight: a walk from the node
/// visits at most each node on its path and appends it once. A node's
/// weight is the sum over the subscriptions below it, an upper bound on
/// its nodes and subscriptions together (shared nodes are counted once
/// per filter through them), kept without knowing which nodes are new.
fn weigh(levels: usize) -> u64 {
    levels as u64 + 2
}

/// A node's literal children. Most levels of most filters have one child,
/// and a map for one child cost a kilobyte (a B-tree leaf has room for
/// eleven): a filter of 200 levels took 200 KB. One child is kept on its
/// own. Many children are boxed too: a B-tree leaf has room for eleven
/// and is often a third empty, and with 96-byte nodes in place 10,000
/// clients each subscribed to its own `t/{i}` cost 52 bytes of heap a
/// client more (`benches/idle_heap.py`).
#[derive(Debug)]
enum Children<K, V> {
    None,
    One(Level, Box<Node<K, V>>),
    Many(BTreeMap<Box<str>, Box<Node<K, V>>>),
}

/// A lone child's level text, in place when short (most are), so that a
/// walk compares it without chasing a pointer to the heap, where the
/// comparisons had spent a third of the time.
#[derive(Debug)]
enum Level {
    Short {
        len: u8,
        bytes: [u8; LEVEL_INLINE_BYTES],
    },
    Long(Box<str>),
}

/// What fits beside the length in the 24 bytes of the enum.
const LEVEL_INLINE_BYTES: usize = 22;

impl Level {
    fn new(level: &str) -> Level {
        match padded(level) {
            Some((len, bytes)) => Level::Short { len, bytes },
            None => Level::Long(level.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Level::Short { len, bytes } => &bytes[..usize::from(*len)],
            Level::Long(text) => text.as_bytes(),
        }
    }

    fn is(&self, level: &str) -> bool {
        self.as_bytes() == level.as_bytes()
    }

    /// `is`, for the walk: a short level against a padded one is a few
    /// words compared in place, where a call to `memcmp` cost each node
    /// more instructions than the processor could run ahead of its misses.
    fn fits(&self, probe: &Probe) -> bool {
        match (self, &probe.padded) {
            (Level::Short { len, bytes }, Some((probe_len, probe_bytes))) => {
                len == probe_len && bytes == probe_bytes
            }
            (Level::Long(text), None) => **text == *probe.text,
            _ => false,
        }
    }

    fn to_boxed(&self) -> Box<str> {
        std::str::from_utf8(self.as_bytes())
            .expect("made from a str")
            .into()
    }
}

/// `level`'s length and bytes, padded with zeros, if it is short enough to
/// be kept in place.
fn padded(level: &str) -> Option<(u8, [u8; LEVEL_INLINE_BYTES])> {
    let mut bytes = [0; LEVEL_INLINE_BYTES];
    bytes
        .get_mut(..level.len())?
        .copy_from_slice(level.as_bytes());
    let len = u8::try_from(level.len()).expect("at most 22");
    Some((len, bytes))
}

/// A topic's level as the walk looks for it, padded once as a short
/// `Level` is.
#[derive(Clone, Copy)]
struct Probe<'a> {
    text: &'a str,
    padded: Option<(u8, [u8; LEVEL_INLINE_BYTES])>,
}

impl Probe<'_> {
    fn new(text: &str) -> Probe<'_> {
        Probe {
            text,
            padded: padded(text),
        }
    }
}

/// Who subscribed with a filter: mostly one subscriber, kept in place;
/// more in a map boxed apart, so that a node costs 88 bytes, not 104 (a
/// filter level, with its allocation, 99 bytes, where it was 132). The
/// node's weight, for sliced walks, made it 96.
#[derive(Debug)]
#[expect(
    clippy::box_collection,
    reason = "a second allocation for the rare many, so that the usual one is small"
)]
enum Subscribers<K, V> {
    None,
    One(K, V),
    Many(Box<BTreeMap<K, V>>),
}

impl<K: Ord + Copy, V: Copy> Subscribers<K, V> {
    fn is_empty(&self) -> bool {
        matches!(self, Subscribers::None)
    }

    /// Adds or replaces; returns whether `key` is new here.
    fn insert(&mut self, key: K, value: V) -> bool {
        match self {
            Subscribers::None => *self = Subscribers::One(key, value),
            Subscribers::One(k, v) if *k == key => {
                *v = value;
                return false;
            }
            Subscribers::One(k, v) => {
                *self = Subscribers::Many(Box::new(BTreeMap::from([(*k, *v), (key, value)])));
            }
            Subscribers::Many(map) => return map.insert(key, value).is_none(),
        }
        true
    }

    fn remove(&mut self, key: K) -> bool {
        match self {
            Subscribers::One(k, _) if *k == key => *self = Subscribers::None,
            Subscribers::Many(map) => {
                let removed = map.remove(&key).is_some();
                if map.len() == 1 {
                    let (k, v) = map.pop_first().expect("one left");
                    *self = Subscribers::One(k, v);
                }
                return removed;
            }
            _ => return false,
        }
        true
    }

    fn len(&self) -> usize {
        match self {
            Subscribers::None => 0,
            Subscribers::One(..) => 1,
            Subscribers::Many(map) => map.len(),
        }
    }

    /// Appends them in key order.
    fn extend_into(&self, out: &mut Vec<(K, V)>) {
        match self {
            Subscribers::None => {}
            Subscribers::One(k, v) => out.push((*k, *v)),
            Subscribers::Many(map) => out.extend(map.iter().map(|(k, v)| (*k, *v))),
        }
    }
}

impl<K, V> Children<K, V> {
    fn is_empty(&self) -> bool {
        matches!(self, Children::None)
    }

    fn get(&self, level: &Probe) -> Option<&Node<K, V>> {
        match self {
            Children::None => None,
            Children::One(key, node) => key.fits(level).then_some(&**node),
            Children::Many(map) => map.get(level.text).map(|node| &**node),
        }
    }

    fn get_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match self {
            Children::None => None,
            Children::One(key, node) => key.is(level).then_some(&mut **node),
            Children::Many(map) => map.get_mut(level).map(|node| &mut **node),
        }
    }

    /// The child at `level`, made if there is none.
    fn get_or_insert(&mut self, level: &str) -> &mut Node<K, V> {
        match std::mem::replace(self, Children::None) {
            Children::None => *self = Children::One(Level::new(level), Box::default()),
            Children::One(key, node) if key.is(level) => *self = Children::One(key, node),
            Children::One(key, node) => {
                let mut map = BTreeMap::new();
                map.insert(key.to_boxed(), node);
                map.insert(level.into(), Box::default());
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
            Children::One(key, _) if key.is(level) => *self = Children::None,
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
            plus: None,
            children: Children::None,
            exact: Subscribers::None,
            rest: Subscribers::None,
            weight: 0,
        }
    }
}

impl<K: Ord + Copy, V: Copy> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.plus.is_none()
            && self.children.is_empty()
            && self.exact.is_empty()
            && self.rest.is_empty()
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K, V>> {
        match level {
            "+" => self.plus.as_deref_mut(),
            _ => self.children.get_mut(level),
        }
    }

    /// The child at `level`, made if there is none.
    fn child_or_insert(&mut self, level: &str) -> &mut Node<K, V> {
        match level {
            "+" => self.plus.get_or_insert_with(Box::default),
            _ => self.children.get_or_insert(level),
        }
    }

    fn remove_child(&mut self, level: &str) {
        match level {
            "+" => self.plus = None,
            _ => self.children.remove(level),
        }
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
        let levels = filter.levels().take_while(|&level| level != "#").count();
        // Weighed on the way down as new, and undone if it was not: a
        // second walk only for a subscription replaced.
        let mut node = &mut self.root;
        for (depth, level) in filter.levels().take(levels).enumerate() {
            node.weight += weigh(levels - depth);
            node = node.child_or_insert(level);
        }
        node.weight += weigh(0);
        let slot = if filter.levels().nth(levels).is_some() {
            &mut node.rest
        } else {
            &mut node.exact
        };
        if slot.insert(session, qos) {
            self.len += 1;
        } else {
            self.unweigh(filter, levels);
        }
    }

    /// Takes back what `insert` weighed on the nodes of `filter`, all there.
    fn unweigh(&mut self, filter: &TopicFilter, levels: usize) {
        let mut node = &mut self.root;
        for (depth, level) in filter.levels().take(levels).enumerate() {
            node.weight -= weigh(levels - depth);
            node = node.child_mut(level).expect("made by insert");
        }
        node.weight -= weigh(0);
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
}

fn remove_at<K: Ord + Copy, V: Copy>(node: &mut Node<K, V>, levels: &[&str], session: K) -> bool {
    let removed = remove_below(node, levels, session);
    if removed {
        let below = levels.len() - usize::from(levels.last() == Some(&"#"));
        node.weight -= weigh(below);
    }
    removed
}

fn remove_below<K: Ord + Copy, V: Copy>(
    node: &mut Node<K, V>,
    levels: &[&str],
    session: K,
) -> bool {
    match levels {
        [] => node.exact.remove(session),
        ["#"] => node.rest.remove(session),
        [level, tail @ ..] => {
            let Some(child) = node.child_mut(level) else {
                return false;
            };
            let removed = remove_at(child, tail, session);
            if child.is_empty() {
                node.remove_child(level);
            }
            removed
        }
    }
}

mod breadth;
#[cfg(test)]
mod tests;
mod walk;

pub use walk::WalkCursor;
