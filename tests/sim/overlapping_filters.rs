//! A subscriber whose two filters match one topic is owed one copy of each
//! message (the broker sends one, at the highest QoS granted); when its
//! queue is full, the one copy is dropped and counted once. The delivery
//! check weighs each loss once too: it counted one a filter, and a seed of
//! `slow_subscriber` whose client held `t/#` and `t/+` failed with drops
//! that were all counted. A loss the broker does not count still fails.

use std::time::Duration;

use tern::codec::QoS;
use tern::config::PlantedBug;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, Plan, Scenario};

use crate::plans::{client, secs};

/// Messages published; the subscriber's window and queue take 4 of them.
const PUBLISHES: usize = 10;

/// `s` holds `t/#` and `t/+` and acknowledges 2 s late, so that its window
/// and queue are full while `p` publishes to `t/a`.
fn plan() -> Plan {
    let subscribe = |filter: &str| {
        (
            secs(0.1),
            Action::Subscribe(filter.into(), QoS::AtLeastOnce),
        )
    };
    let publish = || Action::Publish {
        topic: "t/a".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        empty: false,
        expiry: None,
        heavy: None,
    };
    let mut published = vec![(secs(1.0), publish())];
    published.extend((1..PUBLISHES).map(|_| (secs(0.01), publish())));
    published.push((secs(12.0), Action::StopReading(Duration::ZERO)));
    let subscriber = vec![
        subscribe("t/#"),
        subscribe("t/+"),
        (secs(14.0), Action::StopReading(Duration::ZERO)),
    ];
    let mut late = client("s", subscriber);
    late.connections[0].ack_delay = secs(2.0);
    Plan {
        clients: vec![late, client("p", published)],
        faults: Vec::new(),
    }
}

fn scenario() -> Scenario {
    let mut scenario = Scenario::base("overlapping_filters", 0, secs(15.0));
    scenario.quiet = secs(5.0);
    scenario.observers = 0;
    scenario.config.inflight_messages_max = 2;
    scenario.config.queued_messages_max = 2;
    scenario
}

/// The run's problems, and the drops the broker counted for `s`.
fn run(scenario: &Scenario) -> (Result<(), String>, u64) {
    match run_plan(scenario, 1, plan(), &mut |_, _| {}) {
        Ok(outcome) => (Ok(()), outcome.dropped_by_client["s"]),
        Err(failure) => (Err(failure.to_string()), 0),
    }
}

#[test]
fn one_loss_a_message_however_many_filters_match() {
    let (result, drops) = run(&scenario());
    result.unwrap();
    assert_eq!(drops, PUBLISHES as u64 - 4, "window 2, queue 2");
}

#[test]
fn a_loss_not_counted_still_fails() {
    let mut scenario = scenario();
    scenario.config.planted_bug = Some(PlantedBug::LoseWhenWindowFull);
    let (result, _) = run(&scenario);
    let failure = result.unwrap_err();
    assert!(
        failure.contains("missing, only 0 drops counted"),
        "{failure}"
    );
}
