//! Hand-written plans for the stories: one client, one connection, its
//! actions; each story changes what it needs of the rest.

use std::time::Duration;

use tern_sim::history::{Entry, Event};
use tern_sim::workload::{Action, ClientPlan, ConnectionPlan, End, Scenario};

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A clean 3.1.1 client that starts at once, acknowledges at once and ends
/// with DISCONNECT after `actions`.
pub fn client(name: &str, actions: Vec<(Duration, Action)>) -> ClientPlan {
    let connection = ConnectionPlan::plain(true, 5, actions, End::Disconnect);
    ClientPlan::plain(name.into(), name.into(), Duration::ZERO, vec![connection])
}

/// A story of hand-written clients alone: no drawn clients, no observers,
/// 15 s of actions and 5 quiet.
pub fn story(name: &'static str) -> Scenario {
    let mut scenario = Scenario::base(name, 0, secs(15.0));
    scenario.quiet = secs(5.0);
    scenario.observers = 0;
    scenario
}

/// The SUBSCRIBEs that went out before the first SUBACK came back.
pub fn subscribes_before_first_suback(entries: &[Entry]) -> usize {
    entries
        .iter()
        .take_while(|e| !matches!(e.event, Event::Subscribed { .. }))
        .filter(|e| matches!(e.event, Event::SubscribeSent { .. }))
        .count()
}
