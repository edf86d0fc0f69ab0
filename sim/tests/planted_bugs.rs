//! The harness has teeth: each bug planted in the broker is found within a
//! bounded number of seeds, and the failure prints its replay line.

use std::time::Duration;

use tern::config::PlantedBug;
use tern_sim::run;
use tern_sim::scenarios;
use tern_sim::workload::Scenario;

/// Runs seeds from 0 until one fails; returns the failure's text.
fn find(bug: PlantedBug, mut scenario: Scenario, max_seeds: u64) -> String {
    scenario.config.planted_bug = Some(bug);
    for seed in 0..max_seeds {
        if let Err(failure) = run::run(&scenario, seed) {
            let text = failure.to_string();
            eprintln!("{bug:?} found by seed {seed}:\n{text}");
            assert!(
                text.contains(&format!("replay: SIM_SEED={seed} cargo test")),
                "{text}"
            );
            return text;
        }
    }
    panic!(
        "{bug:?} was not found in {max_seeds} seeds of {}",
        scenario.name
    );
}

/// A short mix of everything, so that each search is quick.
fn short(name: &'static str) -> Scenario {
    let mut scenario = scenarios::churn();
    scenario.name = name;
    scenario.clients = 40;
    scenario.active = Duration::from_secs(20);
    scenario
}

#[test]
fn leak_on_abrupt_drop() {
    let text = find(PlantedBug::LeakOnAbruptDrop, short("leak"), 5);
    assert!(text.contains("connection tasks"), "{text}");
}

#[test]
fn no_will_on_crash() {
    let text = find(
        PlantedBug::NoWillOnCrash,
        scenarios::retained_and_wills(),
        5,
    );
    assert!(text.contains("will never reached"), "{text}");
}

#[test]
fn lose_when_window_full() {
    let text = find(PlantedBug::LoseWhenWindowFull, short("window"), 10);
    assert!(text.contains("never reached"), "{text}");
}

#[test]
fn reorder_redelivery() {
    let mut scenario = short("reorder");
    scenario.persistent_chance = 1.0;
    let text = find(PlantedBug::ReorderRedelivery, scenario, 20);
    assert!(text.contains(" after "), "{text}");
}

#[test]
fn task_leak_on_keepalive() {
    let text = find(
        PlantedBug::TaskLeakOnKeepAlive,
        scenarios::silent_death(),
        5,
    );
    assert!(
        text.contains("connection tasks") || text.contains("did not end on shutdown"),
        "{text}"
    );
}
