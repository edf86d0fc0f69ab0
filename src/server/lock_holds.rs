//! How long the routing state's lock is held, per entry. Every client waits
//! behind the longest hold, so its tail bounds the latency that the rest of
//! the broker can reach. Logged at shutdown (target `tern::lock`), where the
//! load benchmark reads it, and exported as a histogram (`crate::http`).

use std::time::Duration;

use hdrhistogram::Histogram;

pub(super) struct LockHolds {
    /// Nanoseconds, to two significant digits, up to a minute.
    nanos: Histogram<u64>,
    /// Their exact sum, which the histogram does not keep.
    sum_nanos: u64,
    /// With feature `hold-cpu`: the CPU time the holding thread ran
    /// during each hold, and the rest of it (the wall time less that:
    /// waiting for a core, or for a page from disk), to tell a long hold
    /// that did long work from one whose thread was preempted.
    #[cfg(feature = "hold-cpu")]
    cpu: (Histogram<u64>, Histogram<u64>),
}

/// The calling thread's CPU time so far (feature `hold-cpu`): a syscall,
/// about as long as a short hold, so not in the default build.
#[cfg(feature = "hold-cpu")]
pub(super) fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(read, 0, "CLOCK_THREAD_CPUTIME_ID is Linux's");
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    Duration::new(secs, u32::try_from(now.tv_nsec).unwrap_or(0))
}

/// Lock holds by how long they took, in the buckets a reader asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldHistogram {
    /// Holds since the start.
    pub count: u64,
    pub sum_nanos: u64,
    /// Holds in each bucket, not cumulated: `buckets[i]` took at most
    /// `bounds_nanos[i]` and more than the bound before (to the two
    /// digits the histogram keeps: a hold near a bound may be counted
    /// above it). Holds over the last bound are `count` less their sum.
    pub buckets: Vec<u64>,
}

impl LockHolds {
    pub(super) fn new() -> LockHolds {
        LockHolds {
            nanos: new_histogram(),
            sum_nanos: 0,
            #[cfg(feature = "hold-cpu")]
            cpu: (new_histogram(), new_histogram()),
        }
    }

    /// A hold's thread CPU time, beside its wall time `held`.
    #[cfg(feature = "hold-cpu")]
    pub(super) fn record_cpu(&mut self, held: Duration, cpu: Duration) {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.cpu.0.saturating_record(nanos(cpu));
        self.cpu
            .1
            .saturating_record(nanos(held.saturating_sub(cpu)));
    }

    pub(super) fn record(&mut self, held: Duration) {
        let nanos = u64::try_from(held.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.saturating_record(nanos);
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    /// The holds in buckets bounded by `bounds_nanos`, ascending: one pass
    /// over the histogram's recorded values.
    pub(super) fn histogram(&self, bounds_nanos: &[u64]) -> HoldHistogram {
        debug_assert!(bounds_nanos.is_sorted());
        let mut buckets = vec![0; bounds_nanos.len()];
        for recorded in self.nanos.iter_recorded() {
            let value = recorded.value_iterated_to();
            let bucket = bounds_nanos.partition_point(|&bound| bound < value);
            if let Some(count) = buckets.get_mut(bucket) {
                *count += recorded.count_at_value();
            }
        }
        HoldHistogram {
            count: self.nanos.len(),
            sum_nanos: self.sum_nanos,
            buckets,
        }
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
        #[cfg(feature = "hold-cpu")]
        for (histogram, what) in [(&self.cpu.0, "on CPU"), (&self.cpu.1, "off CPU")] {
            tracing::info!(
                target: "tern::lock",
                p50_ns = histogram.value_at_quantile(0.5),
                p99_ns = histogram.value_at_quantile(0.99),
                p999_ns = histogram.value_at_quantile(0.999),
                max_ns = histogram.max(),
                "broker lock held, {what}"
            );
        }
    }
}

/// Nanoseconds, to two significant digits, up to a minute.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("bounds are valid constants")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_fall_in_the_bucket_of_their_length() {
        let mut holds = LockHolds::new();
        for micros in [5, 5, 50, 500, 5_000_000] {
            holds.record(Duration::from_micros(micros));
        }
        let histogram = holds.histogram(&[10_000, 100_000, 1_000_000]);
        assert_eq!(histogram.buckets, vec![2, 1, 1]);
        assert_eq!(histogram.count, 5);
        assert_eq!(histogram.sum_nanos, 5_000_560_000);
    }
}
