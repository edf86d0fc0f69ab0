//! Which seeds a scenario runs, and what a failure prints: one line that
//! replays it on the same build. Seeds kept in `sim/failed-seeds.txt` run
//! every time; a new failure is noted in the untracked `sim/failed-seeds.new`
//! for a person to keep.

use std::path::PathBuf;

use crate::run::{self, Failure};
use crate::workload::Scenario;
use tern::config::PlantedBug;

const FAILED_SEEDS_FILE: &str = "failed-seeds.txt";
/// Where a failing run notes its seed: untracked (`.gitignore`).
const NEW_FAILED_SEEDS_FILE: &str = "failed-seeds.new";

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

/// Appends a failure to the untracked list of new failed seeds: a failing
/// `cargo test` changes no tracked file; a person moves the line over to
/// `sim/failed-seeds.txt`, with why it failed, to keep it.
fn remember(failure: &Failure) {
    let line = format!("{} {}\n", failure.scenario, failure.seed);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(NEW_FAILED_SEEDS_FILE);
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, line.as_bytes()));
    if let Err(error) = appended {
        eprintln!(
            "could not record the failed seed in {}: {error}",
            path.display()
        );
    }
}

/// The build the seed replays on: the same seed gives the same run only for
/// the same commit, lock file and toolchain (`rust-toolchain.toml`). The
/// commit this binary was built from (`build.rs`).
pub fn revision() -> String {
    env!("TERN_SIM_REVISION").to_owned()
}

/// The line that reruns `seed` of the test named `test` (its path in the
/// `sim` test binary, e.g. `scenarios::churn`): `cargo test` at the root
/// builds that binary, so this command runs the very build that failed.
pub fn test_replay_line(test: &str, seed: u64) -> String {
    format!(
        "replay: SIM_SEED={seed} cargo test --test sim -- --exact {test}   # at git {}",
        revision()
    )
}

/// The line that reruns `seed` of the scenario `name`, with `planted`,
/// with the command-line runner, on the build its sweep used.
pub fn cli_replay_line(name: &str, planted: Option<PlantedBug>, seed: u64) -> String {
    let plant = planted.map_or_else(String::new, |bug| format!(" --plant {}", bug.name()));
    format!(
        "replay: cargo run -p tern-sim --release -- replay {seed} --scenario {name}{plant}   # at git {}",
        revision()
    )
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "scenario {} seed {} failed:", self.scenario, self.seed)?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Runs `scenario` for each seed; panics listing every failure, each with
/// the replay line of `test`, after noting the seeds in the untracked file.
pub fn check_seeds(scenario: &Scenario, seeds: &[u64], test: &str) {
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
        eprintln!("{failure}\n{}", test_replay_line(test, failure.seed));
    }
    panic!(
        "{} of {} seeds failed; the replay lines are above, and the seeds in sim/{NEW_FAILED_SEEDS_FILE}",
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

/// Runs `run` over the seeds of `test` (from 0 below `max_seeds`, or
/// `SIM_SEED` alone) until one fails saying `needle`; prints it with its
/// replay line and returns its text. Panics, naming `bug`, if none does:
/// the planted-bug tests' search, for any scenario runner.
pub fn find_failure(
    test: &str,
    bug: &str,
    max_seeds: u64,
    needle: &str,
    run: impl Fn(u64) -> Result<(), Failure>,
) -> String {
    for seed in seeds_for(test, 0..max_seeds) {
        if let Err(failure) = run(seed) {
            let text = failure.to_string();
            if !text.contains(needle) {
                continue;
            }
            eprintln!(
                "{bug} found by seed {seed}:\n{text}\n{}",
                test_replay_line(test, seed)
            );
            return text;
        }
    }
    panic!("{bug} was not found in {max_seeds} seeds");
}
