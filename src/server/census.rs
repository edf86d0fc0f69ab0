//! The broker's census: what is alive and what was dropped, read in one
//! place, the way the author of the Go server tern grew from read its
//! goroutine profile (README, "Where it comes from"). Tests, the
//! simulation, `$SYS` and the shutdown log all read it.

use std::collections::BTreeMap;
use std::ops::Deref;

use super::Shared;
use crate::broker::BrokerStats;

/// The broker's own counts (`census.subscriptions`, `census.dropped`, ...
/// through `Deref`), with what only the runtime knows beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Accepted TCP connections, before or after CONNECT.
    pub connections: usize,
    pub broker: BrokerStats,
    /// Holds of the routing state's lock since the start: a batch whose
    /// work is split between holds takes more of them.
    pub lock_holds: u64,
    /// Live tasks by kind: "acceptor", "sys", "connection".
    pub tasks: BTreeMap<&'static str, usize>,
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

pub(super) fn take(shared: &Shared) -> Census {
    let (connections, broker, lock_holds) = {
        let state = shared.state();
        (state.links.len(), state.broker.stats(), state.holds.count())
    };
    Census {
        connections,
        broker,
        lock_holds,
        tasks: shared.registry.counts(),
    }
}
