//! Every serving connection's next deadline (`deadlines.rs`), kept in one
//! ordered map and rung by the timers task. A tokio `Sleep` of its own was
//! 112 bytes of every idle connection's task, and with it the task's cell
//! took a block of 768 bytes; without it, one of 640. An alarm here is one
//! entry of the map (its key and an `Arc`).
//!
//! A connection takes its alarm back when its session ends. A task dropped
//! in the middle of one (a panic) cannot, not knowing its key; its alarm
//! then keeps the outbox until it rings, at most `packet_timeout_ms` later,
//! and ringing an outbox nobody waits on does nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::outbox::Outbox;
use crate::broker::{ConnId, Millis};

/// The most alarms the timers task rings in one pass: the map's lock is
/// not held for a burst of 10,000 connections that all fell due at once.
pub(super) const RUNG_PER_PASS: usize = 1024;

#[derive(Default)]
pub(super) struct Alarms {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By when each is due, then by connection, which makes the key unique.
    set: BTreeMap<(Millis, ConnId), Arc<Outbox>>,
    /// When the timers task next looks here by itself; `None` for never.
    /// Kept under this lock, so that an alarm set before the timers task
    /// plans is in its plan, and one set after sees the plan.
    planned: Option<Millis>,
}

impl Alarms {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets `conn`'s alarm for `due`; whether the timers task must be
    /// woken for it (it plans to look later, or not at all).
    pub fn set(&self, conn: ConnId, outbox: &Arc<Outbox>, due: Millis) -> bool {
        let mut state = self.state();
        state.set.insert((due, conn), outbox.clone());
        let sooner = state.planned.is_none_or(|planned| due < planned);
        if sooner {
            state.planned = Some(due);
        }
        sooner
    }

    /// Takes away `conn`'s alarm for `due`, if it has not rung.
    pub fn clear(&self, conn: ConnId, due: Millis) {
        let removed = self.state().set.remove(&(due, conn));
        // Its outbox goes after the lock.
        drop(removed);
    }

    /// Moves up to `RUNG_PER_PASS` alarms due by `now` to `rung`, and plans
    /// the next look: when the next is due, or now if more are.
    pub fn take_due(&self, now: Millis, rung: &mut Vec<Arc<Outbox>>) -> Option<Millis> {
        let mut state = self.state();
        while rung.len() < RUNG_PER_PASS {
            let Some(entry) = state.set.first_entry() else {
                break;
            };
            if entry.key().0 > now {
                break;
            }
            rung.push(entry.remove());
        }
        state.planned = state.set.first_key_value().map(|(&(due, _), _)| due);
        state.planned
    }

    /// How many are set.
    pub fn len(&self) -> usize {
        self.state().set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_is_taken_once_due_and_the_next_is_planned() {
        let alarms = Alarms::default();
        let outbox = Arc::new(Outbox::default());
        assert!(alarms.set(ConnId(1), &outbox, 200), "nothing was planned");
        assert!(alarms.set(ConnId(2), &outbox, 100), "sooner than planned");
        assert!(!alarms.set(ConnId(3), &outbox, 300), "later than planned");
        let mut rung = Vec::new();
        assert_eq!(alarms.take_due(99, &mut rung), Some(100));
        assert!(rung.is_empty());
        assert_eq!(alarms.take_due(200, &mut rung), Some(300));
        assert_eq!(rung.len(), 2);
        alarms.clear(ConnId(3), 300);
        assert_eq!(alarms.len(), 0);
        assert_eq!(alarms.take_due(1000, &mut rung), None);
        assert!(alarms.set(ConnId(4), &outbox, 5000), "nothing was planned");
    }

    #[test]
    fn a_pass_rings_a_bounded_number_and_plans_the_rest_now() {
        let alarms = Alarms::default();
        let outbox = Arc::new(Outbox::default());
        for conn in 0..RUNG_PER_PASS as u64 + 5 {
            alarms.set(ConnId(conn), &outbox, 10);
        }
        let mut rung = Vec::new();
        assert_eq!(alarms.take_due(50, &mut rung), Some(10));
        assert_eq!(rung.len(), RUNG_PER_PASS);
        rung.clear();
        assert_eq!(alarms.take_due(50, &mut rung), None);
        assert_eq!(rung.len(), 5);
    }

    #[test]
    fn a_cleared_alarm_does_not_ring() {
        let alarms = Alarms::default();
        let outbox = Arc::new(Outbox::default());
        alarms.set(ConnId(7), &outbox, 10);
        alarms.clear(ConnId(7), 10);
        let mut rung = Vec::new();
        assert_eq!(alarms.take_due(50, &mut rung), None);
        assert!(rung.is_empty());
        assert_eq!(Arc::strong_count(&outbox), 1, "the map let its outbox go");
    }
}
