//! Micro-benchmark of topic matching in `SubscriptionIndex`: one topic against
//! 10k, 100k and 1M subscriptions, a tenth of them with wildcards. The trie
//! should make a match cost what the topic's depth and its matches cost, not
//! what the number of subscriptions that do not match costs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use tern::broker::{SessionId, SubscriptionIndex, WalkCursor};
use tern::codec::QoS;
use tern::topic::{TopicFilter, TopicName};

/// Subscription `i`: ten per (site, device), over 1000 sites and as many
/// devices as the size needs; eight exact, one `+`, one `#`, so a match walks
/// literal and wildcard branches and finds the same ten at every size.
fn filter(i: usize) -> String {
    let (site, device) = ((i / 10) % 1000, i / 10_000);
    match i % 10 {
        8 => format!("site/{site}/+/{device}/temp"),
        9 => format!("site/{site}/dev/{device}/#"),
        _ => format!("site/{site}/dev/{device}/temp"),
    }
}

fn index_of(size: usize) -> SubscriptionIndex {
    let mut index = SubscriptionIndex::default();
    for i in 0..size {
        let filter = TopicFilter::new(&filter(i)).unwrap();
        index.insert(&filter, SessionId(i as u64), QoS::AtLeastOnce);
    }
    // Wildcards that match everything under a site: each matching topic
    // pays for these, whatever the index's size.
    for (n, filter) in ["site/+/dev/+/temp", "site/#", "#"].iter().enumerate() {
        let filter = TopicFilter::new(filter).unwrap();
        index.insert(&filter, SessionId((size + n) as u64), QoS::AtMostOnce);
    }
    index
}

fn matching_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    // Subscriptions 70 to 79 match it (and the three catch-alls), at every
    // size; a miss pays only for the catch-all `#`.
    let hit = TopicName::new("site/7/dev/0/temp").unwrap();
    let miss = TopicName::new("elsewhere/7/dev/0/temp").unwrap();
    for size in [10_000, 100_000, 1_000_000] {
        let index = index_of(size);
        let mut out = Vec::new();
        for (name, topic) in [("hit", &hit), ("miss", &miss)] {
            out.clear();
            index.matches(topic, &mut out);
            eprintln!("{size} subscriptions, {name}: {} matches", out.len());
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    out.clear();
                    index.matches(black_box(topic), &mut out);
                    black_box(out.len())
                })
            });
            let sliced = format!("{name}-sliced");
            group.bench_with_input(BenchmarkId::new(sliced, size), &size, |b, _| {
                b.iter(|| black_box(sliced_walk(&index, black_box(topic), &mut out)))
            });
        }
    }
    group.finish();
}

/// One session's 2^16 filters, each level `+` or its literal, that one
/// 16-level topic matches all of (issue 12, row 10): the cost of a match
/// when nothing is shared between the matches' paths but the trie's.
fn overlap_benches(c: &mut Criterion) {
    const LEVELS: usize = 16;
    let mut index = SubscriptionIndex::default();
    for mask in 0..1usize << LEVELS {
        let levels: Vec<String> = (0..LEVELS)
            .map(|i| match mask >> i & 1 {
                1 => "+".to_owned(),
                _ => format!("l{i}"),
            })
            .collect();
        let filter = TopicFilter::new(&levels.join("/")).unwrap();
        index.insert(&filter, SessionId(1), QoS::AtLeastOnce);
    }
    let topic: Vec<String> = (0..LEVELS).map(|i| format!("l{i}")).collect();
    let topic = TopicName::new(&topic.join("/")).unwrap();
    let mut out = Vec::new();
    c.bench_function("overlap/65536", |b| {
        b.iter(|| {
            out.clear();
            index.matches(black_box(&topic), &mut out);
            black_box(out.len())
        })
    });
    c.bench_function("overlap/65536-sliced", |b| {
        b.iter(|| black_box(sliced_walk(&index, black_box(&topic), &mut out)))
    });
}

/// The walk as the broker does it, in slices of the work it allows a hold
/// (`broker::WALK_WORK_PER_SLICE`); returns how many slices it took.
fn sliced_walk(
    index: &SubscriptionIndex,
    topic: &TopicName,
    out: &mut Vec<(SessionId, QoS)>,
) -> usize {
    out.clear();
    let mut cursor = WalkCursor::default();
    let mut slices = 0;
    while !cursor.is_done() {
        index.matches_from(topic, &mut cursor, 16_384, out);
        slices += 1;
    }
    slices
}

criterion_group!(benches, matching_benches, overlap_benches);
criterion_main!(benches);
