//! The process's table of file descriptors, grown once at start for the
//! connections to come.
//!
//! The kernel grows the table by doubling as descriptors are opened, and in
//! a process of several threads each growth waits for an RCU grace period
//! (`expand_fdtable` calls `synchronize_rcu` when the table is shared):
//! 8 to 32 ms here, during which the worker in `accept4` is asleep and
//! accepts nothing. A fresh broker taking 10,000 connections (a table of
//! 64 entries grown to 16,384) slept so 18 times in 3 rounds, about 70 ms
//! of each round's 0.37 s; mosquitto, one thread, never waits. Grown before the runtime's threads exist, the table costs no
//! wait, only its memory in the kernel: 8 bytes a descriptor (about 1 MB
//! for the default `connections_max` of 100,000, 256 KB under a limit of
//! 20,000 open files). The limit on open files bounds it, and the kernel's
//! `fs.nr_open` (1,048,576 by default) bounds that: at most 8 MB, which
//! that many connections would have grown it to anyway.

use std::os::fd::AsRawFd;

/// Descriptors besides the connections': listeners, the store's files,
/// the HTTP listener's connections, the runtime's own.
const HEADROOM: usize = 1024;

/// Grows the table to hold `connections` and the headroom, within the
/// soft limit on open files. Best effort: where it cannot, the kernel grows
/// the table as before.
pub fn reserve(connections: usize) {
    let Some(limit) = open_files_limit() else {
        return;
    };
    let wanted = connections.saturating_add(HEADROOM) as u64;
    let highest = wanted.min(limit).saturating_sub(1);
    let Ok(highest) = libc::c_int::try_from(highest) else {
        return;
    };
    let stderr = std::io::stderr().as_raw_fd();
    if highest <= stderr {
        return;
    }
    // A descriptor at the top makes the kernel size the table for it; it
    // is closed at once, and the table stays. `F_DUPFD` takes the lowest
    // free number from `highest` on, so no open descriptor is replaced.
    // SAFETY: fcntl on an open descriptor, and close of the one it made.
    unsafe {
        let made = libc::fcntl(stderr, libc::F_DUPFD_CLOEXEC, highest);
        if made >= 0 {
            libc::close(made);
        }
    }
}

/// The soft limit on open files.
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct into the place it is given.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (got == 0).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    /// The table's size, from the kernel's own account.
    fn table_size() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
        let line = status.lines().find(|l| l.starts_with("FDSize:"));
        let size = line.and_then(|l| l.split_whitespace().nth(1));
        size.and_then(|s| s.parse().ok()).expect("an FDSize line")
    }

    #[test]
    fn the_table_holds_the_connections_within_the_limit() {
        let limit = super::open_files_limit().expect("RLIMIT_NOFILE");
        let connections = 3000;
        let wanted = (connections + super::HEADROOM) as u64;
        super::reserve(connections);
        assert!(table_size() >= wanted.min(limit), "FDSize {}", table_size());
    }
}
