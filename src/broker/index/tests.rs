//! The subscription trie against the reference matcher, and the shapes its
//! nodes take as filters come and go.

use super::*;
use crate::topic::TopicName;

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
    let a = index.root.children.get(&Probe::new("a")).unwrap();
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

#[test]
fn the_work_follows_the_walk() {
    // One session's 2^4 filters, `+` or the literal in each level: the
    // topic walks every prefix of them, root included, 2^5 - 1 nodes,
    // and appends all 2^4.
    let index = overlapping_filters();
    let mut out = Vec::new();
    assert_eq!(
        index.matches(&TopicName::new("a/b/c/d").unwrap(), &mut out),
        31 + 16
    );
    assert_eq!(out.len(), 16);
    out.clear();
    // A miss at the last level walks the prefixes that fit, finds none.
    assert_eq!(
        index.matches(&TopicName::new("a/b/c").unwrap(), &mut out),
        15
    );
    assert!(out.is_empty());
}

#[test]
fn long_levels_and_many_subscribers_come_and_go() {
    let long = "a-level-longer-than-twenty-two-bytes";
    let filter = TopicFilter::new(&format!("{long}/+")).unwrap();
    let mut index = index(&[(&format!("{long}/+"), 1), ("short/+", 2)]);
    for session in [3, 4] {
        index.insert(&filter, SessionId(session), QoS::AtMostOnce);
    }
    assert_eq!(sessions(&index, &format!("{long}/x")), vec![1, 3, 4]);
    assert_eq!(sessions(&index, "short/x"), vec![2]);
    for session in [1, 3] {
        assert!(index.remove(&filter, SessionId(session)));
    }
    assert_eq!(sessions(&index, &format!("{long}/x")), vec![4]);
    assert!(index.remove(&filter, SessionId(4)));
    assert!(index.remove(&TopicFilter::new("short/+").unwrap(), SessionId(2)));
    assert!(index.root.is_empty(), "pruned to nothing");
}

#[test]
fn levels_either_side_of_the_inline_size_match_only_themselves() {
    let short = "s".repeat(LEVEL_INLINE_BYTES);
    let long = "s".repeat(LEVEL_INLINE_BYTES + 1);
    let shorter = "s".repeat(LEVEL_INLINE_BYTES - 1);
    // One filter each, so that the level is a lone child, kept as `Level`.
    for (level, kind) in [(&short, "short"), (&long, "long")] {
        let index = index(&[(&format!("{level}/a"), 1)]);
        for topic in [&shorter, &short, &long] {
            let expected = if topic == level { vec![1] } else { vec![] };
            assert_eq!(sessions(&index, &format!("{topic}/a")), expected, "{kind}");
        }
    }
}

/// `matches_from` in slices of `budget`: what it found, and the work of
/// each slice.
fn walk_in_slices(index: &SubscriptionIndex, topic: &str, budget: u64) -> (Vec<u64>, Vec<u64>) {
    let topic = TopicName::new(topic).unwrap();
    let (mut cursor, mut out, mut slices) = (WalkCursor::default(), Vec::new(), Vec::new());
    while !cursor.is_done() {
        slices.push(index.matches_from(&topic, &mut cursor, budget, &mut out));
        assert!(slices.len() < 10_000, "the walk makes progress");
    }
    let mut ids: Vec<u64> = out.into_iter().map(|(s, _)| s.0).collect();
    ids.sort();
    (ids, slices)
}

#[test]
fn a_walk_in_slices_finds_what_one_walk_finds_within_each_budget() {
    // Each filter twice (two subscribers to a node) and once alone.
    let mut filters: Vec<(&str, u64)> = Vec::new();
    for (i, filter) in FILTERS.iter().enumerate() {
        filters.extend([(*filter, i as u64), (*filter, 100 + i as u64)]);
    }
    filters.push(("a/b/c", 200));
    let index = index(&filters);
    for topic in TOPICS {
        let mut out = Vec::new();
        let whole = index.matches(&TopicName::new(topic).unwrap(), &mut out);
        for budget in [1, 2, 3, 5, 8, 13, 40, 1000] {
            let (found, slices) = walk_in_slices(&index, topic, budget);
            assert_eq!(
                found,
                sessions(&index, topic),
                "topic {topic}, budget {budget}"
            );
            assert!(slices.iter().all(|&w| w <= budget), "{topic}: {slices:?}");
            // The same work, but for a first try cut short (`TRIAL_SHARE`).
            let sum = slices.iter().sum::<u64>();
            assert!(sum >= whole && sum <= whole + budget / 16, "{topic}: {sum}");
        }
    }
}

#[test]
fn a_walk_resumed_after_the_trie_changed_finds_what_stayed() {
    // Budget 1: a step a slice. Larger: subtrees walked whole between
    // steps.
    for budget in [1, 4, 9, 20] {
        walk_resumed_after_changes(budget);
    }
}

fn walk_resumed_after_changes(budget: u64) {
    // 2^4 overlapping filters of session 1; the walk stops after each
    // slice, and between slices a filter of session 2 that it has passed
    // or not comes and goes, taking nodes on the walk's path with it.
    let mut index = overlapping_filters();
    let topic = TopicName::new("a/b/c/d").unwrap();
    let churn = [
        TopicFilter::new("a/b/x/y").unwrap(),
        TopicFilter::new("+/+/c/d/#").unwrap(),
        TopicFilter::new("a/+/c/+/e").unwrap(),
    ];
    let (mut cursor, mut out, mut steps) = (WalkCursor::default(), Vec::new(), 0);
    while !cursor.is_done() {
        let filter = &churn[steps % churn.len()];
        if steps % 2 == 0 {
            index.insert(filter, SessionId(2), QoS::AtMostOnce);
        } else {
            index.remove(filter, SessionId(2));
        }
        steps += 1;
        check_weights(&index.root);
        let work = index.matches_from(&topic, &mut cursor, budget, &mut out);
        assert!(work <= budget, "budget {budget}: {work}");
    }
    let ones = out.iter().filter(|(s, _)| *s == SessionId(1)).count();
    assert_eq!(
        ones, 16,
        "budget {budget}: every filter that stayed, once each"
    );
}

/// Checks that each node's weight is what its subscriptions weigh, and at
/// least its nodes and subscriptions; returns (weight, subscriptions,
/// nodes) of the subtree.
fn check_weights<K: Ord + Copy, V: Copy>(node: &Node<K, V>) -> (u64, u64, u64) {
    let own = |s: &Subscribers<K, V>| match s {
        Subscribers::None => 0,
        Subscribers::One(..) => 1,
        Subscribers::Many(map) => map.len() as u64,
    };
    let own = own(&node.exact) + own(&node.rest);
    let (mut weight, mut subscriptions, mut nodes) = (2 * own, own, 1);
    let children: Vec<&Node<K, V>> = match &node.children {
        Children::None => vec![],
        Children::One(_, child) => vec![child],
        Children::Many(map) => map.values().map(|node| &**node).collect(),
    };
    for child in children.into_iter().chain(node.plus.as_deref()) {
        let (w, s, n) = check_weights(child);
        // Each subscription below weighs a level more from here.
        (weight, subscriptions, nodes) = (weight + w + s, subscriptions + s, nodes + n);
    }
    assert_eq!(node.weight, weight, "the weight kept is the weight there");
    assert!(weight >= subscriptions + nodes || subscriptions == 0);
    (weight, subscriptions, nodes)
}

#[test]
fn weights_follow_inserts_replacements_and_removals() {
    let filters: Vec<TopicFilter> = FILTERS
        .iter()
        .chain(&["a/b/c/d/e", "a/+/c/d/#", "x"])
        .map(|f| TopicFilter::new(f).unwrap())
        .collect();
    let mut index = SubscriptionIndex::default();
    // A fixed sequence from a small LCG: inserts (new and replacing) and
    // removals (there or not), over three sessions.
    let mut state: u64 = 7;
    for _ in 0..2000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let filter = &filters[(state >> 33) as usize % filters.len()];
        let session = SessionId((state >> 20) % 3);
        if (state >> 40).is_multiple_of(3) {
            index.remove(filter, session);
        } else {
            index.insert(filter, session, QoS::AtMostOnce);
        }
        check_weights(&index.root);
    }
    for filter in &filters {
        for session in 0..3 {
            index.remove(filter, SessionId(session));
        }
    }
    assert!(index.root.is_empty() && index.root.weight == 0);
}

#[test]
fn a_node_with_its_weight_is_96_bytes() {
    // 88 without the weight (see `Subscribers`); what a filter level costs
    // follows from it.
    let size = std::mem::size_of::<Node<SessionId, crate::broker::Granted>>();
    assert_eq!(size, 96);
}

/// Session 1's 2^4 filters that all match `a/b/c/d`: `+` or the literal
/// in each of its four levels.
fn overlapping_filters() -> SubscriptionIndex {
    let mut index = SubscriptionIndex::default();
    for mask in 0..16u32 {
        let levels: Vec<&str> = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, level)| if mask >> i & 1 == 1 { "+" } else { level })
            .collect();
        let filter = TopicFilter::new(&levels.join("/")).unwrap();
        index.insert(&filter, SessionId(1), QoS::AtMostOnce);
    }
    index
}
