//! The census against the configured bounds: what the most loaded client
//! holds (its session queue's bytes, its connection's QoS 0 bytes, its
//! filters) and what all hold together (retained topics, sessions,
//! connections) stay within the scenario's limits, at every check as the
//! run goes and once every client has gone.

use std::collections::BTreeMap;
use std::time::Duration;

use tern::{Census, Config};

/// Each bound the census is held to: its name in `Config`, the count the
/// census gives, and the limit. A peak the census was taken without is
/// left out.
fn bounds(config: &Config, census: &Census) -> Vec<(&'static str, &'static str, usize, usize)> {
    let mut bounds = vec![
        (
            "retained_messages_max",
            "topics retained",
            census.retained,
            config.retained_messages_max,
        ),
        (
            "sessions_max",
            "sessions",
            census.sessions_connected + census.sessions_offline,
            config.sessions_max,
        ),
        (
            "connections_max",
            "connections",
            census.connections,
            config.connections_max,
        ),
    ];
    if let Some(peaks) = &census.peaks {
        bounds.push((
            "queued_bytes_max",
            "bytes queued in one session",
            peaks.queued_bytes,
            config.queued_bytes_max,
        ));
        bounds.push((
            "subscriptions_per_client_max",
            "filters held by one session",
            peaks.filters,
            config.subscriptions_per_client_max,
        ));
        // 0 is no limit.
        if config.outbound_bytes_max > 0 {
            bounds.push((
                "outbound_bytes_max",
                "QoS 0 bytes waiting for one connection (two or more messages)",
                peaks.outbound_qos0_bytes,
                config.outbound_bytes_max,
            ));
        }
    }
    bounds
}

/// The first time each bound was broken in a run, in the words of a
/// failure: the bound, the count, the time and the seed.
#[derive(Debug, Default)]
pub struct BoundsWatch {
    broken: BTreeMap<&'static str, String>,
}

impl BoundsWatch {
    /// Checks `census`, taken at `at` in the run of `seed`.
    pub fn check(&mut self, config: &Config, census: &Census, at: Duration, seed: u64) {
        for (name, what, count, max) in bounds(config, census) {
            if count > max && !self.broken.contains_key(name) {
                let line = format!(
                    "census bound broken at {at:?} (seed {seed}): {count} {what}, over {name} = {max}"
                );
                self.broken.insert(name, line);
            }
        }
    }

    /// What was broken, one line a bound.
    pub fn problems(self) -> Vec<String> {
        self.broken.into_values().collect()
    }
}
