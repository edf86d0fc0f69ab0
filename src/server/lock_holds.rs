//! How long the routing state's lock is held, per entry. Every client waits
//! behind the longest hold, so its tail bounds the latency that the rest of
//! the broker can reach. Logged at shutdown (target `tern::lock`), where the
//! load benchmark reads it.

use std::time::Duration;

use hdrhistogram::Histogram;

pub(super) struct LockHolds {
    /// Nanoseconds, to two significant digits, up to a minute.
    nanos: Histogram<u64>,
}

impl LockHolds {
    pub(super) fn new() -> LockHolds {
        LockHolds {
            nanos: Histogram::new_with_bounds(1, 60_000_000_000, 2)
                .expect("bounds are valid constants"),
        }
    }

    pub(super) fn record(&mut self, held: Duration) {
        let nanos = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.saturating_record(nanos);
    }

    /// Holds since the start.
    pub(super) fn count(&self) -> u64 {
        self.nanos.len()
    }

    pub(super) fn log(&self) {
        let nanos = &self.nanos;
        if nanos.is_empty() {
            return;
        }
        tracing::info!(
            target: "tern::lock",
            holds = nanos.len(),
            p50_ns = nanos.value_at_quantile(0.5),
            p99_ns = nanos.value_at_quantile(0.99),
            p999_ns = nanos.value_at_quantile(0.999),
            max_ns = nanos.max(),
            "broker lock held"
        );
    }
}
