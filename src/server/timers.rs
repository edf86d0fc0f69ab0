//! The broker's clocked work: delayed wills and session expiry (MQTT 5.0);
//! and connections whose task ended without detaching, left by a drop guard.
//! The broker says when it next has something due; this task sleeps until
//! then, or until a hold sets an earlier timer (`Shared::wake_timers_for`)
//! or a connection is lost. With nothing due it does not wake at all.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::Shared;

pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        shared.detach_lost();
        let next = shared.with_broker(|state| {
            state.broker.tick();
            let next = state.broker.next_timer();
            // Under the lock: a hold after this one compares its timers
            // with this plan.
            shared
                .timer_due
                .store(next.unwrap_or(u64::MAX), Ordering::Relaxed);
            next
        });
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
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = shared.timers_wake.notified() => {}
            () = sleep => {}
        }
    }
}
