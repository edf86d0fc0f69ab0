//! The broker's census: what is alive and what was dropped, read in one
//! place, the way the author of shared/docs/SEED.md read the goroutine
//! profile. Tests, the simulation, `$SYS` and the shutdown log all read it.

use std::collections::BTreeMap;

use super::Shared;
use crate::broker::{BrokerStats, Dropped};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Accepted TCP connections, before or after CONNECT.
    pub connections: usize,
    pub sessions_connected: usize,
    pub sessions_offline: usize,
    pub subscriptions: usize,
    pub retained: usize,
    pub queued: usize,
    pub inflight: usize,
    pub dropped: Dropped,
    /// Live tasks by kind: "acceptor", "sys", "connection".
    pub tasks: BTreeMap<&'static str, usize>,
}

impl Census {
    pub fn tasks_of(&self, kind: &str) -> usize {
        self.tasks.get(kind).copied().unwrap_or(0)
    }
}

pub(super) fn take(shared: &Shared) -> Census {
    let (connections, stats) = {
        let state = shared.state();
        (state.links.len(), state.broker.stats())
    };
    let BrokerStats {
        sessions_connected,
        sessions_offline,
        subscriptions,
        retained,
        queued,
        inflight,
        dropped,
    } = stats;
    Census {
        connections,
        sessions_connected,
        sessions_offline,
        subscriptions,
        retained,
        queued,
        inflight,
        dropped,
        tasks: shared.registry.counts(),
    }
}
