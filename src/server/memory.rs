//! The broker's memory limit: the heap in use, as the allocator counts it,
//! against `memory_max_bytes`. The binary installs a counting allocator and
//! hands its gauge to the server (`Server::limit_memory`); a server without
//! a gauge (the simulation, tests in one process with many brokers) has no
//! global limit, only its per-queue ones.

/// Reads the bytes allocated now.
pub type MemoryGauge = fn() -> usize;

pub(super) struct MemoryLimit {
    pub gauge: MemoryGauge,
    pub max: usize,
}

impl MemoryLimit {
    /// Whether memory is to be taken as full, given whether it was: once
    /// over the limit, until under nine tenths of it. Without the gap the
    /// broker would let the next message in as soon as the one it refused
    /// was freed, and flap between the two at every message.
    pub fn is_full(&self, was_full: bool) -> bool {
        let heap = (self.gauge)();
        if was_full {
            heap > self.max / 10 * 9
        } else {
            heap > self.max
        }
    }
}

/// The default limit: half of what the machine, or the cgroup the broker
/// runs in, has. The other half is for what the allocator keeps besides
/// (fragmentation, caches) and the rest of the host; mosquitto's
/// `memory_limit` has no default (unlimited), EMQX's limits are per zone.
pub(super) fn default_max() -> Option<usize> {
    let total = machine_bytes()?;
    let total = cgroup_max().map_or(total, |cgroup| cgroup.min(total));
    Some(total / 2)
}

fn machine_bytes() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// cgroup v2's `memory.max` for the broker's own group; "max" is none.
fn cgroup_max() -> Option<usize> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok()?;
    max.trim().parse().ok()
}
