//! Giving way to a client our write woke (`Arrivals::give_way`), while
//! that costs microseconds.
//!
//! The kernel often wakes a client blocked on a socket we write to on
//! this CPU, expecting the writer to sleep next (a socket's wake is a
//! "sync" one). The broker does not: in the QoS 1 latency scenario its
//! PUBACK to the publisher came next, and traced (2026-12-05), 43% of the
//! subscribers waited about 17 µs for it and the rest of the broker's
//! turn, which put the median level with mosquitto's. A yield lets them
//! run first.
//!
//! But a yield lets any thread runnable here go first, for as long as the
//! scheduler gives it: with two busy processes beside the benchmark, every
//! turn's yield gave one of them its slice, and the QoS 0 latency
//! scenario's median went from 41 µs to 1.5 ms. So a yield that took
//! longer than a woken client's turn (`LONG`) is taken as another
//! process's, and this thread gives no way for a while (`BACK_OFF_MIN`,
//! doubled after each such yield up to `BACK_OFF_MAX`).

use std::cell::Cell;
use std::time::Duration;

use tokio::time::Instant;

/// Longer than a woken client's turn, shorter than a scheduler's slice
/// (0.75 ms and more).
const LONG: Duration = Duration::from_micros(200);

const BACK_OFF_MIN: Duration = Duration::from_secs(1);
const BACK_OFF_MAX: Duration = Duration::from_secs(64);

thread_local! {
    /// When this thread may give way again, and how long it waits after
    /// its next long yield.
    static HELD: Cell<(Option<Instant>, Duration)> = const { Cell::new((None, BACK_OFF_MIN)) };
}

pub(super) fn give_way() {
    let (until, back_off) = HELD.get();
    let before = Instant::now();
    if until.is_some_and(|until| before < until) {
        return;
    }
    std::thread::yield_now();
    HELD.set(after_yield(before, before.elapsed(), back_off));
}

/// When the thread may give way again after a yield begun at `before`
/// that took `took`, and the back-off after its next long one.
fn after_yield(before: Instant, took: Duration, back_off: Duration) -> (Option<Instant>, Duration) {
    match took > LONG {
        true => (Some(before + back_off), (back_off * 2).min(BACK_OFF_MAX)),
        false => (None, BACK_OFF_MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_yield_holds_the_thread_back_longer_each_time_and_a_short_one_ends_that() {
        let at = Instant::now();
        let short = Duration::from_micros(10);
        let long = Duration::from_millis(2);
        assert_eq!(after_yield(at, short, BACK_OFF_MIN), (None, BACK_OFF_MIN));
        let mut back_off = BACK_OFF_MIN;
        let mut holds = Vec::new();
        for _ in 0..8 {
            let (until, next) = after_yield(at, long, back_off);
            holds.push(until.expect("held back") - at);
            back_off = next;
        }
        let secs: Vec<u64> = holds.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 64]);
        assert_eq!(after_yield(at, short, back_off), (None, BACK_OFF_MIN));
    }
}
