//! The broker's clocked work: delayed wills and session expiry (MQTT 5.0);
//! and connections whose task ended without detaching, left by a drop guard.
//! The broker says when it next has something due; this task sleeps until
//! then, or for at most `TICK_MAX`, since a new timer may be set meanwhile
//! by any connection.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// The longest a due will or expiry can wait past its time.
const TICK_MAX: Duration = Duration::from_millis(250);

pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        shared.detach_lost();
        let next = shared.with_broker(|state| {
            state.broker.tick();
            state.broker.next_timer()
        });
        let now = shared.started.elapsed();
        let wait = next.map_or(TICK_MAX, |due| {
            Duration::from_millis(due)
                .saturating_sub(now)
                .clamp(Duration::from_millis(1), TICK_MAX)
        });
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = shared.lost_notify.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
