//! The story of the leak (README, "Where it comes from") under simulation: two subscribers, one
//! killed abruptly; the census falls from two subscribers' worth to one, and
//! after the second goes, to the idle baseline. With the leak planted, the
//! same story fails.

use std::time::Duration;

use tern::codec::QoS;
use tern::config::PlantedBug;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, ClientPlan, End, Fault, Plan, Scenario};

use crate::plans::secs;

fn client(name: &str, start: f64, actions: Vec<(Duration, Action)>, end: End) -> ClientPlan {
    let mut plan = crate::plans::client(name, actions);
    plan.start = secs(start);
    plan.connections[0].end = end;
    plan
}

fn story() -> Plan {
    let subscribe = || {
        (
            Duration::ZERO,
            Action::Subscribe("a/#".into(), QoS::AtLeastOnce),
        )
    };
    let stay = |s: f64| (secs(s), Action::StopReading(Duration::ZERO));
    let publish = Action::Publish {
        topic: "a/b".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        empty: false,
        expiry: None,
        heavy: None,
    };
    Plan {
        clients: vec![
            client("s1", 0.0, vec![subscribe(), stay(100.0)], End::Hang),
            client("s2", 0.0, vec![subscribe(), stay(13.0)], End::Drop),
            client(
                "p",
                6.0,
                vec![(secs(0.1), publish), stay(0.4)],
                End::Disconnect,
            ),
        ],
        faults: vec![(
            secs(5.0),
            Fault::Crash {
                host: "s1".into(),
                silent: false,
            },
        )],
    }
}

/// (connections, subscriptions, connection tasks) at one moment.
type Counts = (usize, usize, usize);

/// The counts at 4 s, 5.5 s and 14 s, and how the run ended.
fn census_over_time(scenario: &Scenario) -> (Vec<Counts>, Result<(), String>) {
    let marks = [secs(4.0), secs(5.5), secs(14.0)];
    let mut seen = Vec::new();
    let mut probe = |now: Duration, server: &tern::Server| {
        if seen.len() < marks.len() && now >= marks[seen.len()] {
            let c = server.census();
            seen.push((c.connections, c.subscriptions, c.tasks_of("connection")));
        }
    };
    let result = run_plan(scenario, 1, story(), &mut probe)
        .map(|_| ())
        .map_err(|f| f.to_string());
    (seen, result)
}

fn scenario() -> Scenario {
    let mut scenario = Scenario::base("seed_story", 0, secs(15.0));
    scenario.quiet = secs(5.0);
    scenario.observers = 0;
    scenario
}

#[test]
fn census_falls_two_one_zero() {
    let (seen, result) = census_over_time(&scenario());
    assert_eq!(seen, vec![(2, 2, 2), (1, 1, 1), (0, 0, 0)]);
    result.unwrap();
}

#[test]
fn the_planted_leak_is_caught() {
    let mut scenario = scenario();
    scenario.config.planted_bug = Some(PlantedBug::LeakOnAbruptDrop);
    let (seen, result) = census_over_time(&scenario);
    // As in the blog post: one subscriber gone, still two of everything.
    assert_eq!(seen[1], (2, 2, 2));
    let failure = result.unwrap_err();
    assert!(failure.contains("connection tasks"), "{failure}");
    assert!(failure.contains("seed_story seed 1 failed"), "{failure}");
}
