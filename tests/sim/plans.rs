//! Hand-written plans for the stories: one client, one connection, its
//! actions; each story changes what it needs of the rest.

use std::time::Duration;

use tern_sim::workload::{Action, ClientPlan, ConnectionPlan, End};

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A clean 3.1.1 client that starts at once, acknowledges at once and ends
/// with DISCONNECT after `actions`.
pub fn client(name: &str, actions: Vec<(Duration, Action)>) -> ClientPlan {
    let connection = ConnectionPlan::plain(true, 5, actions, End::Disconnect);
    ClientPlan::plain(name.into(), name.into(), Duration::ZERO, vec![connection])
}
