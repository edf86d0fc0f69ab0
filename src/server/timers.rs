//! The broker's clocked work: delayed wills and session expiry (MQTT 5.0);
//! connections whose task ended without detaching, left by a drop guard;
//! and the connections' alarms (`alarms.rs`).
//! The broker says when it next has something due; this task sleeps until
//! then, or until a hold sets an earlier timer (`Shared::wake_timers_for`)
//! or a connection is lost. With nothing due it does not wake at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::alarms::RUNG_PER_PASS;
use super::Shared;
use crate::broker::Millis;
use crate::config::planted;

pub(super) async fn run(shared: Arc<Shared>) {
    // The broker's next timer, and whether to look at the broker this pass:
    // at the start, when woken, and when its timer is due. A pass for the
    // connections' alarms alone does not take the routing lock (a review
    // found one hold for each, up to a thousand a second).
    let mut broker_next = None;
    let mut look = true;
    loop {
        if look {
            shared.detach_lost();
            broker_next = shared.with_broker(|state| {
                state.broker.tick();
                let next = state.broker.next_timer();
                // Under the lock: a hold after this one compares its timers
                // with this plan.
                shared
                    .timer_due
                    .store(next.unwrap_or(u64::MAX), Ordering::Relaxed);
                next
            });
        }
        let (alarm, more) = ring_alarms(&shared);
        if more {
            // The rest of a burst, after the other tasks on this thread.
            look = false;
            tokio::task::yield_now().await;
            continue;
        }
        if planted!(shared.config, TimersTaskEnds) {
            return;
        }
        let next = broker_next.into_iter().chain(alarm).min();
        let sleep = async {
            match next {
                Some(due) => {
                    let now = shared.started.elapsed();
                    let wait = Duration::from_millis(due)
                        .saturating_sub(now)
                        .max(Duration::from_millis(1));
                    tokio::time::sleep(wait).await;
                }
                None => std::future::pending().await,
            }
        };
        look = tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = shared.timers_wake.notified() => true,
            () = sleep => broker_next.is_some_and(|due| due <= shared.millis()),
        };
    }
}

/// Rings the alarms due, a pass's worth: when the next is due, and
/// whether more are due now.
fn ring_alarms(shared: &Shared) -> (Option<Millis>, bool) {
    let now = shared.millis();
    let mut rung = Vec::new();
    let next = shared.alarms.take_due(now, &mut rung);
    // Each outbox's lock is taken after the map's is let go.
    for outbox in &rung {
        outbox.ring();
    }
    (
        next,
        rung.len() == RUNG_PER_PASS && next.is_some_and(|due| due <= now),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::ConnId;
    use crate::config::Config;
    use crate::server::outbox::{Outbox, Told};
    use crate::server::Server;

    /// More alarms due at once than a pass rings: all are rung, in passes
    /// that take no routing lock.
    #[tokio::test(start_paused = true)]
    async fn a_burst_of_alarms_is_rung_in_passes_without_the_routing_lock() {
        let server = Server::new(Config::default());
        let shared = server.shared.clone();
        let outboxes: Vec<Arc<Outbox>> = (0..RUNG_PER_PASS + 5)
            .map(|_| Arc::new(Outbox::default()))
            .collect();
        for (conn, outbox) in (0..).zip(&outboxes) {
            shared.set_alarm(ConnId(conn), outbox, 10);
        }
        let holds = || shared.state().holds.count();
        let timers = tokio::spawn(run(shared.clone()));
        // Started, and settled before the alarms are due at 10 ms.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let before = holds();
        assert!(outboxes
            .iter()
            .all(|outbox| matches!(outbox.told(), Told::Nothing)));
        tokio::time::sleep(Duration::from_millis(45)).await;
        for outbox in &outboxes {
            assert!(matches!(outbox.told(), Told::Rung));
        }
        assert_eq!(shared.alarms.len(), 0);
        assert_eq!(holds(), before, "the routing lock taken for alarms");
        shared.cancel.cancel();
        timers.await.expect("the timers task ends");
    }
}
