//! One seed, one run: the same seed twice gives the same history, event for
//! event; and a summary of one fixed seed's history is kept as a snapshot, so
//! that a change in behaviour shows in review.

use std::collections::BTreeMap;

use tern_sim::history::{Ending, Event};
use tern_sim::run;
use tern_sim::scenarios;

#[test]
fn same_seed_same_history() {
    let scenario = scenarios::retained_and_wills();
    let first = run::run(&scenario, 7)
        .expect("seed 7 passes")
        .history
        .entries();
    let second = run::run(&scenario, 7)
        .expect("seed 7 passes")
        .history
        .entries();
    assert!(
        first.len() > 1000,
        "a run worth comparing: {} events",
        first.len()
    );
    if let Some(i) = (0..first.len().min(second.len())).find(|&i| first[i] != second[i]) {
        panic!(
            "runs diverge at event {i}:\n  {}\n  {}",
            first[i], second[i]
        );
    }
    assert_eq!(first.len(), second.len());
    let other = run::run(&scenario, 8)
        .expect("seed 8 passes")
        .history
        .entries();
    assert_ne!(first, other, "another seed, another run");
}

#[test]
fn fixed_seed_summary() {
    let outcome = run::run(&scenarios::takeover(), 3).expect("seed 3 passes");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for entry in outcome.history.entries() {
        let kind = match &entry.event {
            Event::Ended { how, .. } => format!("Ended {how:?}"),
            Event::Received { qos, retain, .. } => format!("Received {qos:?} retain={retain}"),
            other => format!("{other:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_owned(),
        };
        *counts.entry(kind).or_default() += 1;
    }
    let ended_by_broker = counts
        .get(&format!("Ended {:?}", Ending::ClosedByBroker))
        .copied()
        .unwrap_or(0);
    assert!(
        ended_by_broker > 0,
        "takeovers and keepalive close connections"
    );
    let summary = format!(
        "events by kind: {counts:#?}\nidle census: {:#?}\nsteps: {}",
        outcome.idle, outcome.steps
    );
    insta::assert_snapshot!(summary);
}
