//! Long-lived clients of every kind, drawn from a generator of their own:
//! the delivery checks hold to account only a session with a connection
//! healthy for a whole delivery window, and churners never stay that long.
//! Without these, loss in a persistent session's offline queue, in its
//! resumption, in retained delivery to a late subscriber, or in a shared
//! group would go unseen.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern::codec::QoS;

use crate::workload::{Action, ClientPlan, ConnectionPlan, End, Scenario, EXPIRY_OUTLIVES_RUN};

/// How many of each a scenario gets, beside its clean observers.
#[derive(Debug, Clone)]
pub struct LongLived {
    /// Persistent sessions that go offline while messages are published,
    /// then come back and stay reading.
    pub returning: usize,
    /// Clean sessions that subscribe halfway through, after retained
    /// messages have settled, and stay.
    pub late: usize,
    /// 5.0 members of shared groups, there from start to end (none where
    /// the scenario has no 5.0 clients).
    pub shared: usize,
}

impl Default for LongLived {
    fn default() -> Self {
        LongLived {
            returning: 2,
            late: 1,
            shared: 2,
        }
    }
}

/// Everyone stays until shortly before the run ends.
fn stay_until(scenario: &Scenario) -> Duration {
    scenario.stay_until()
}

fn qos12(rng: &mut StdRng) -> QoS {
    if rng.random_bool(0.5) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}

pub(crate) fn connection(
    clean: bool,
    actions: Vec<(Duration, Action)>,
    end: End,
) -> ConnectionPlan {
    ConnectionPlan::plain(clean, 10, actions, end)
}

/// An observer's plan: a clean 3.1.1 session, plain TCP, no login.
pub(crate) fn client(
    name: String,
    start: Duration,
    connections: Vec<ConnectionPlan>,
) -> ClientPlan {
    ClientPlan {
        observer: true,
        ..ClientPlan::plain(name.clone(), name, start, connections)
    }
}

pub fn generate(scenario: &Scenario, seed: u64) -> Vec<ClientPlan> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0b5e_7e55_0b5e_7e55);
    let mut clients = Vec::new();
    for i in 0..scenario.long_lived.returning {
        clients.push(returning(scenario, i, &mut rng));
    }
    for i in 0..scenario.long_lived.late {
        clients.push(late(scenario, i, &mut rng));
    }
    if scenario.v5.clients > 0.0 {
        for i in 0..scenario.long_lived.shared {
            clients.push(shared_member(scenario, i, &mut rng));
        }
    }
    clients
}

/// Subscribes, goes away for a few seconds in the busy part of the run (by
/// DISCONNECT or a dropped socket), and resumes its session.
fn returning(scenario: &Scenario, i: usize, rng: &mut StdRng) -> ClientPlan {
    let active_ms = scenario.active.as_millis() as u64;
    let online = Duration::from_millis(rng.random_range(active_ms / 5..active_ms / 2));
    let filters = ["t/#", "u/+", "r/#"];
    let mut first: Vec<(Duration, Action)> = filters
        .iter()
        .map(|f| (Duration::ZERO, Action::Subscribe(f.to_string(), qos12(rng))))
        .collect();
    first.push((online, Action::StopReading(Duration::ZERO)));
    let end = if rng.random_bool(0.5) {
        End::Disconnect
    } else {
        End::Drop
    };
    let offline = Duration::from_millis(rng.random_range(2_000..6_000));
    let back = stay_until(scenario).saturating_sub(online + offline);
    let mut second = connection(
        false,
        vec![(back, Action::StopReading(Duration::ZERO))],
        End::Disconnect,
    );
    second.gap = offline;
    let mut plan = client(
        format!("p{i}"),
        Duration::ZERO,
        vec![connection(false, first, end), second],
    );
    // One in two speaks 5.0, with a session that outlives the run.
    if scenario.v5.clients > 0.0 && i % 2 == 1 {
        plan.v5 = true;
        plan.session_expiry = EXPIRY_OUTLIVES_RUN;
    }
    plan
}

/// Subscribes halfway through: it gets what is retained, then what comes.
fn late(scenario: &Scenario, i: usize, rng: &mut StdRng) -> ClientPlan {
    let start = scenario.active / 2;
    let actions = vec![
        (Duration::ZERO, Action::Subscribe("r/+".into(), qos12(rng))),
        (Duration::ZERO, Action::Subscribe("t/#".into(), qos12(rng))),
        (
            stay_until(scenario) - start,
            Action::StopReading(Duration::ZERO),
        ),
    ];
    client(
        format!("l{i}"),
        start,
        vec![connection(true, actions, End::Disconnect)],
    )
}

/// A 5.0 member of one of the groups churners join, there throughout.
fn shared_member(scenario: &Scenario, i: usize, rng: &mut StdRng) -> ClientPlan {
    let filter = crate::workload::SHARED_FILTERS[i % crate::workload::SHARED_FILTERS.len()];
    let actions = vec![
        (Duration::ZERO, Action::Subscribe(filter.into(), qos12(rng))),
        (stay_until(scenario), Action::StopReading(Duration::ZERO)),
    ];
    let mut plan = client(
        format!("s{i}"),
        Duration::ZERO,
        vec![connection(true, actions, End::Disconnect)],
    );
    plan.v5 = true;
    plan
}
