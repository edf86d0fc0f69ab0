//! The broker's census: what is alive and what was dropped, read in one
//! place, the way the author of the Go server tern grew from read its
//! goroutine profile (README, "Where it comes from"). Tests, the
//! simulation, `$SYS` and the shutdown log all read it.

use std::collections::BTreeMap;
use std::ops::Deref;

use super::{Shared, StoreCounts, TrafficCounts};
use crate::broker::{BrokerStats, Peaks};

/// The broker's own counts (`census.subscriptions`, `census.dropped`, ...
/// through `Deref`), with what only the runtime knows beside them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    /// Accepted TCP connections, before or after CONNECT.
    pub connections: usize,
    /// Connections' alarms set (`alarms.rs`): one for each serving
    /// connection, none once they have gone.
    pub alarms: usize,
    /// Connections taken on since the start.
    pub connections_accepted: u64,
    /// Connections closed as soon as accepted, over `connections_max`,
    /// since the start.
    pub connections_refused_max: u64,
    /// Connections closed as soon as accepted, over their listener's own
    /// `connections_max` (`[[listener]]`), since the start.
    pub connections_refused_listener_max: u64,
    #[serde(flatten)]
    pub broker: BrokerStats,
    /// Messages and bytes in and out since the start.
    #[serde(flatten)]
    pub traffic: TrafficCounts,
    /// CONNECTs refused for their credentials (`password_file`,
    /// `allow_anonymous`) since the start.
    pub connects_refused_auth: u64,
    /// Heap bytes allocated, where the binary counts them
    /// (`Server::limit_memory`).
    pub heap_bytes: Option<usize>,
    /// Holds of the routing state's lock since the start: a batch whose
    /// work is split between holds takes more of them.
    pub lock_holds: u64,
    /// The data store's commits, when the broker keeps one.
    pub store: Option<StoreCounts>,
    /// Live tasks by kind (`TASK_KINDS`).
    pub tasks: BTreeMap<&'static str, usize>,
    /// The most one client holds of what the per-client limits bound:
    /// taken only by `Server::census_with_peaks`, which walks every
    /// session, queued message and connection under the lock.
    pub peaks: Option<Peaks>,
}

impl Deref for Census {
    type Target = BrokerStats;

    fn deref(&self) -> &BrokerStats {
        &self.broker
    }
}

impl Census {
    pub fn tasks_of(&self, kind: &str) -> usize {
        self.tasks.get(kind).copied().unwrap_or(0)
    }
}

/// The census; with `peaks`, the walk for them too.
pub(super) fn take(shared: &Shared, peaks: bool) -> Census {
    let (connections, accepted, refused, broker, peaks, lock_holds) = {
        let state = shared.state();
        let peaks = peaks.then(|| Peaks {
            outbound_qos0_bytes: state
                .links
                .values()
                .map(|outbox| outbox.shed_bytes_of_two_or_more())
                .max()
                .unwrap_or(0),
            ..state.broker.peaks()
        });
        (
            state.links.len(),
            state.connections_accepted,
            state.connections_refused,
            state.broker.stats(),
            peaks,
            state.holds.count(),
        )
    };
    Census {
        connections,
        alarms: shared.alarms.len(),
        connections_accepted: accepted,
        connections_refused_max: refused,
        connections_refused_listener_max: shared
            .connections_refused_listener
            .load(std::sync::atomic::Ordering::Relaxed),
        broker,
        traffic: shared.traffic.counts(),
        connects_refused_auth: shared.auth.refused(),
        heap_bytes: shared.memory.get().map(|memory| (memory.gauge)()),
        lock_holds,
        store: shared.persist.get().map(|persist| persist.counts()),
        tasks: shared.registry.counts(),
        peaks,
    }
}
