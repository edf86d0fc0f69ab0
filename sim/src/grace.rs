//! Clients that only ping, and holds of their links that end just inside
//! their keepalive's grace: the broker hears nothing from them for between
//! one and one and a half times their keepalive, and must keep them
//! [MQTT-3.1.2-24 of 3.1.1, MQTT-3.1.2-22 of 5.0]. A broker that closes at
//! the keepalive itself closes them; the random holds of the other
//! clients, long and short, rarely land in that band. Drawn from a
//! generator of their own, so that every other plan is what it was.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::observers::connection;
use crate::workload::{millis, Action, ClientPlan, End, Fault, Scenario};

/// A keepalive long enough that a hold of it, less the checks' margin for
/// a close (1 s), leaves most of the grace's half again to catch.
const KEEP_ALIVE: u16 = 8;

/// How long the link is held: a packet's worth short of the keepalive,
/// less the margin `check::timing` allows a close; the broker then heard
/// nothing for the hold and up to half a keepalive before it (the pings
/// go every half), in all less than 1.5 keepalives.
const HOLD_MS: std::ops::Range<u64> = 5_800..6_900;

/// Whether `client` is a probe: it has a host of its own, so that only
/// its holds hold it.
pub fn is_probe(client: &str) -> bool {
    client
        .strip_prefix(PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

const PREFIX: &str = "g";

pub fn generate(scenario: &Scenario, seed: u64) -> (Vec<ClientPlan>, Vec<(Duration, Fault)>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6A6A_6A6A_6A6A_6A6A);
    let mut clients = Vec::new();
    let mut faults = Vec::new();
    for i in 0..scenario.grace_probes {
        let name = format!("{PREFIX}{i}");
        let stay = vec![(scenario.stay_until(), Action::StopReading(Duration::ZERO))];
        let mut only = connection(true, stay, End::Disconnect);
        only.keep_alive = KEEP_ALIVE;
        clients.push(ClientPlan {
            name: name.clone(),
            client_id: name.clone(),
            start: Duration::ZERO,
            connections: vec![only],
            observer: false,
            twin: false,
            v5: i % 2 == 1 && scenario.v5.clients > 0.0,
            session_expiry: 0,
            adversary: false,
            login: Default::default(),
            wire: Default::default(),
        });
        // Holds one after another through the busy part of the run, each
        // after a few pings have gone through.
        let mut at = millis(&mut rng, 1_000..5_000);
        while at < scenario.active {
            let for_ = millis(&mut rng, HOLD_MS);
            let host = name.clone();
            faults.push((at, Fault::Hold { host, for_ }));
            at += for_ + millis(&mut rng, 2_000..6_000);
        }
    }
    (clients, faults)
}
