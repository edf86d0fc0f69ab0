//! Hand-written plans for the stories: one client, one connection, its
//! actions; each story changes what it needs of the rest.

use std::time::Duration;

use tern_sim::workload::{Action, ClientPlan, ConnectionPlan, End, Login, Wire};

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A clean 3.1.1 client that starts at once, acknowledges at once and ends
/// with DISCONNECT after `actions`.
pub fn client(name: &str, actions: Vec<(Duration, Action)>) -> ClientPlan {
    ClientPlan {
        name: name.into(),
        client_id: name.into(),
        start: Duration::ZERO,
        connections: vec![ConnectionPlan {
            gap: Duration::ZERO,
            clean: true,
            keep_alive: 5,
            will: None,
            receive_maximum: None,
            will_delay: 0,
            ack_delay: Duration::ZERO,
            packet_size_max: None,
            topic_alias_max: 0,
            disconnect_expiry: None,
            actions,
            end: End::Disconnect,
        }],
        observer: false,
        twin: false,
        v5: false,
        session_expiry: 0,
        adversary: false,
        login: Login::default(),
        wire: Wire::Plain,
    }
}
