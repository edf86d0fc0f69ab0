//! A network that delivers slowly for seconds: every message between any
//! two hosts takes up to a few hundred milliseconds instead of 20, then the
//! network is as before. turmoil keeps a stream's bytes in order, so the
//! connections survive it; the checks' margins (a second for a close, half
//! a second for an expiry) hold for up to 300 ms each way.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::workload::{millis, Fault, Scenario};

/// The network's usual latency (`run::run_plan`'s builder).
pub const USUAL_LATENCY: Duration = Duration::from_millis(20);

/// The spells, drawn from a generator of their own.
pub fn slow_spells(scenario: &Scenario, seed: u64) -> Vec<(Duration, Fault)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x510e_510e_510e_510e);
    let active_ms = scenario.active.as_millis() as u64;
    (0..scenario.slow_spells)
        .map(|_| {
            let at = millis(&mut rng, 0..active_ms);
            let for_ = millis(&mut rng, 2_000..6_000);
            let latency = millis(&mut rng, 100..300);
            (at, Fault::Slow { for_, latency })
        })
        .collect()
}
