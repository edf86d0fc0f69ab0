//! Which seeds a scenario runs, and what a failure prints: one line that
//! replays it. Seeds that ever failed are kept in `sim/failed-seeds.txt` and
//! run every time after.

use std::path::PathBuf;

use crate::run::{self, Failure};
use crate::workload::Scenario;

const FAILED_SEEDS_FILE: &str = "failed-seeds.txt";

fn failed_seeds_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FAILED_SEEDS_FILE)
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a u64")),
    )
}

/// `SIM_SEED` alone; else `SIM_SEEDS` from `SIM_SEED_BASE`; else the
/// scenario's fixed seeds and every seed that once failed it.
pub fn seeds_for(scenario: &str, fixed: std::ops::Range<u64>) -> Vec<u64> {
    if let Some(seed) = env_u64("SIM_SEED") {
        return vec![seed];
    }
    if let Some(count) = env_u64("SIM_SEEDS") {
        let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
        return (base..base + count).collect();
    }
    let mut seeds: Vec<u64> = fixed.collect();
    for seed in failed_seeds(scenario) {
        if !seeds.contains(&seed) {
            seeds.push(seed);
        }
    }
    seeds
}

/// Seeds listed for `scenario` in the failed-seeds file: lines of
/// `scenario seed`, with `#` comments.
pub fn failed_seeds(scenario: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(failed_seeds_path()).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let (name, seed) = line.split_once(char::is_whitespace)?;
            (name == scenario)
                .then(|| seed.trim().parse().ok())
                .flatten()
        })
        .collect()
}

fn remember(failure: &Failure) {
    if failed_seeds(failure.scenario).contains(&failure.seed) {
        return;
    }
    let line = format!("{} {}\n", failure.scenario, failure.seed);
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(failed_seeds_path())
        .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
    if let Err(error) = appended {
        eprintln!("could not record the failed seed: {error}");
    }
}

/// The build the seed replays on: the same seed gives the same run only for
/// the same commit, lock file and toolchain.
pub fn revision() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

pub fn replay_line(scenario: &str, seed: u64) -> String {
    format!(
        "replay: SIM_SEED={seed} cargo test -p tern-sim --test scenarios {scenario}   # at git {}",
        revision()
    )
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "scenario {} seed {} failed:", self.scenario, self.seed)?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        write!(f, "{}", replay_line(self.scenario, self.seed))
    }
}

/// Runs `scenario` for each seed; panics listing every failure, each with
/// its replay line, after recording the seeds.
pub fn check_seeds(scenario: &Scenario, seeds: &[u64]) {
    init_logging();
    let failures: Vec<Failure> = seeds
        .iter()
        .filter_map(|&seed| run::run(scenario, seed).err())
        .collect();
    if failures.is_empty() {
        return;
    }
    for failure in &failures {
        remember(failure);
        eprintln!("{failure}");
    }
    panic!(
        "{} of {} seeds failed; the replay lines are above",
        failures.len(),
        seeds.len()
    );
}

/// `RUST_LOG=tern=debug` shows the broker's log, stamped with simulated time.
pub fn init_logging() {
    struct SimTime;
    impl tracing_subscriber::fmt::time::FormatTime for SimTime {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            let at = turmoil::sim_elapsed().unwrap_or_default();
            write!(w, "{:>9.3}s", at.as_secs_f64())
        }
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(SimTime)
            .with_test_writer()
            .try_init();
    }
}
