//! The retained store against the reference matcher (`TopicFilter::matches`),
//! and the cost of its walks.

use super::*;
use crate::topic::TopicFilter;

fn store(topics: &[&str]) -> RetainedStore {
    let mut store = RetainedStore::default();
    for topic in topics {
        let outcome = store.set(
            &TopicName::new(topic).unwrap(),
            Retained::new(Bytes::from(topic.to_string()), QoS::AtMostOnce),
            usize::MAX,
        );
        assert_eq!(outcome, RetainOutcome::Stored);
    }
    store
}

/// Every match of `filter`, walked in slices of `visits` nodes.
fn matching_in_slices(store: &mut RetainedStore, filter: &str, visits: usize) -> Vec<String> {
    let filter = TopicFilter::new(filter).unwrap();
    let mut cursor = Cursor::Start;
    let mut out = Vec::new();
    let mut slices = 0;
    while cursor != Cursor::Done {
        store.walk(
            &filter,
            &mut cursor,
            visits,
            |_, _| Decision::Take,
            &mut out,
        );
        slices += 1;
        assert!(slices < 10_000, "the walk makes progress");
    }
    out.into_iter().map(|(t, _)| t.to_string()).collect()
}

fn matching(store: &mut RetainedStore, filter: &str) -> Vec<String> {
    matching_in_slices(store, filter, usize::MAX)
}

const TOPICS: [&str; 14] = [
    "a", "a/b", "a/b/c", "ab", "a-b", "b/b", "$SYS/x", "$SYS", "/", "/a", "a//c", "x/b/c/d",
    "$other/b", "b",
];
const FILTERS: [&str; 17] = [
    "#",
    "+",
    "a/#",
    "a/+",
    "+/b",
    "+/+",
    "$SYS/#",
    "$SYS",
    "+/#",
    "/",
    "/+",
    "a/+/c",
    "+/b/#",
    "x/+/c/#",
    "$other/+",
    "ab",
    "nothing/+",
];

/// Level order: the order of the levels compared one by one.
fn level_sorted(mut topics: Vec<&str>) -> Vec<String> {
    topics.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    topics.into_iter().map(str::to_owned).collect()
}

#[test]
fn agrees_with_the_reference_matcher_in_level_order() {
    let mut store = store(&TOPICS);
    for filter in FILTERS {
        let parsed = TopicFilter::new(filter).unwrap();
        let expected = level_sorted(
            TOPICS
                .iter()
                .copied()
                .filter(|t| parsed.matches(&TopicName::new(t).unwrap()))
                .collect(),
        );
        assert_eq!(matching(&mut store, filter), expected, "filter {filter}");
        for visits in [1, 2, 3, 5] {
            assert_eq!(
                matching_in_slices(&mut store, filter, visits),
                expected,
                "filter {filter} in slices of {visits}"
            );
        }
    }
}

#[test]
fn wildcards_first_skip_dollar_topics_and_hash_matches_the_parent() {
    let mut store = store(&TOPICS);
    assert!(!matching(&mut store, "#").iter().any(|t| t.starts_with('$')));
    assert!(!matching(&mut store, "+/b")
        .iter()
        .any(|t| t.starts_with('$')));
    assert_eq!(matching(&mut store, "$SYS/#"), ["$SYS", "$SYS/x"]);
    assert_eq!(matching(&mut store, "a/#"), ["a", "a//c", "a/b", "a/b/c"]);
    assert_eq!(matching(&mut store, "+"), ["a", "a-b", "ab", "b"]);
    assert_eq!(matching(&mut store, "+/+"), ["/", "/a", "a/b", "b/b"]);
}

#[test]
fn a_filter_costs_what_it_can_match_not_the_store() {
    let topics: Vec<String> = (0..20_000).map(|i| format!("a/{i}")).collect();
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let mut store = store(&refs);
    let mut cursor = Cursor::Start;
    let visited = store.walk(
        &TopicFilter::new("+/nomatch").unwrap(),
        &mut cursor,
        usize::MAX,
        |_, _| Decision::Take,
        &mut Vec::new(),
    );
    assert_eq!((visited, cursor), (2, Cursor::Done), "the root and `a`");
    let mut cursor = Cursor::Start;
    let visited = store.walk(
        &TopicFilter::new("a/17").unwrap(),
        &mut cursor,
        usize::MAX,
        |_, _| Decision::Take,
        &mut Vec::new(),
    );
    assert_eq!(visited, 3, "one node per level");
}

#[test]
fn a_walk_resumes_past_topics_stored_and_cleared_meanwhile() {
    let mut store = store(&["t/1", "t/2", "t/3", "t/4"]);
    let filter = TopicFilter::new("t/+").unwrap();
    let mut cursor = Cursor::Start;
    let mut out = Vec::new();
    // The root, `t`, `t/1`: stopped before `t/2`.
    store.walk(&filter, &mut cursor, 3, |_, _| Decision::Take, &mut out);
    assert_eq!(cursor, Cursor::At(vec!["t".into(), "2".into()]));
    assert!(cursor.is_before(&TopicName::new("t/2").unwrap()));
    assert!(!cursor.is_before(&TopicName::new("t/1").unwrap()));
    store.remove(&TopicName::new("t/2").unwrap());
    store.set(
        &TopicName::new("t/0").unwrap(),
        Retained::new(Bytes::from("late"), QoS::AtMostOnce),
        usize::MAX,
    );
    // `Stop` leaves the message for the next slice.
    let mut first = true;
    store.walk(
        &filter,
        &mut cursor,
        usize::MAX,
        |_, _| {
            if std::mem::take(&mut first) {
                Decision::Stop
            } else {
                Decision::Take
            }
        },
        &mut out,
    );
    assert_eq!(cursor, Cursor::At(vec!["t".into(), "3".into()]));
    store.walk(
        &filter,
        &mut cursor,
        usize::MAX,
        |_, _| Decision::Take,
        &mut out,
    );
    assert_eq!(cursor, Cursor::Done);
    let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, ["t/1", "t/3", "t/4"]);
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

#[test]
fn removal_prunes_levels_that_led_only_to_it() {
    let mut store = store(&["a/b/c/d", "a/b", "a/x/y"]);
    store.remove(&TopicName::new("a/b/c/d").unwrap());
    store.remove(&TopicName::new("a/b/c/d").unwrap());
    assert_eq!(store.len(), 2);
    let b = &store.root.children["a"].children["b"];
    assert!(b.children.is_empty(), "c and d are gone");
    assert!(b.message.is_some(), "a/b stays");
    store.remove(&TopicName::new("a/x/y").unwrap());
    store.remove(&TopicName::new("a/b").unwrap());
    assert!(store.root.is_empty(), "every level is pruned");
    assert_eq!((store.len(), store.bytes()), (0, 0));
}
