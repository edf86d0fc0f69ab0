//! `--busy N`: N processes that only keep a CPU busy (`yes` into
//! /dev/null), beside the brokers and the load generator for the whole
//! run, as on a host with other work. A broker that gives its CPU away
//! too freely loses it to them for a scheduler's slice, and nothing else
//! here shows it: tern's yield after each delivery it wrote took the QoS
//! 0 latency scenario's median from 41 µs to 1.5 ms with two of them, and
//! was a win without (2026-12-05, benches/JOURNAL.md).

use std::process::{Child, Command, Stdio};

/// The busy processes, ended when dropped.
pub struct Busy(Vec<Child>);

impl Busy {
    pub fn start(count: usize) -> Busy {
        let spawn = |_| {
            Command::new("yes")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("`yes` (coreutils) for --busy")
        };
        Busy((0..count).map(spawn).collect())
    }

    pub fn count(&self) -> usize {
        self.0.len()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
