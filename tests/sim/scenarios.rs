//! The simulation scenarios `cargo test` runs, each over a fixed set of seeds
//! plus every seed that once failed it. `SIM_SEED=N` replays one seed;
//! `SIM_SEEDS=N SIM_SEED_BASE=B` runs a batch.

use tern_sim::scenarios;
use tern_sim::seeds::{check_seeds, seeds_for};
use tern_sim::workload::Scenario;

fn run(scenario: Scenario, fixed: std::ops::Range<u64>) {
    let seeds = seeds_for(scenario.name, fixed);
    check_seeds(&scenario, &seeds, &format!("scenarios::{}", scenario.name));
}

#[test]
fn churn() {
    run(scenarios::churn(), 0..2);
}

#[test]
fn silent_death() {
    run(scenarios::silent_death(), 0..3);
}

#[test]
fn slow_subscriber() {
    run(scenarios::slow_subscriber(), 0..3);
}

#[test]
fn takeover() {
    run(scenarios::takeover(), 0..3);
}

#[test]
fn broker_bounce() {
    run(scenarios::broker_bounce(), 0..3);
}

#[test]
fn retained_and_wills() {
    run(scenarios::retained_and_wills(), 0..3);
}

#[test]
fn mqtt5() {
    run(scenarios::mqtt5(), 0..3);
}

#[test]
fn adversary() {
    run(scenarios::adversary(), 0..3);
}

#[test]
fn secured() {
    run(scenarios::secured(), 0..3);
}

#[test]
fn clock_jump() {
    run(scenarios::clock_jump(), 0..3);
}

#[test]
fn partition_heal() {
    run(scenarios::partition_heal(), 0..3);
}

#[test]
fn contended() {
    run(scenarios::contended(), 0..3);
}
