//! The sweep runner: many seeds of a scenario on every core, with a progress
//! bar, printing the replay line of each failing seed. Threads live here,
//! never inside a simulated host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tern::config::PlantedBug;
use tern_sim::run::Failure;
use tern_sim::seeds::cli_replay_line;
use tern_sim::workload::Scenario;
use tern_sim::{durable, run, scenarios};

#[derive(Parser)]
#[command(about = "Runs tern's simulation scenarios over many seeds")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs `--seeds` seeds from `--base` of a scenario (default: all).
    Sweep {
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        base: u64,
        /// One scenario; default: every one.
        #[arg(long, value_parser = scenario_names())]
        scenario: Option<String>,
        /// Threads; defaults to the number of cores.
        #[arg(long)]
        jobs: Option<usize>,
        /// Stop starting seeds after this many seconds: for a sweep left
        /// to run unattended (`--seeds 100000 --until-secs 28800`).
        #[arg(long)]
        until_secs: Option<u64>,
        /// Also append each failure and its replay line to this file.
        #[arg(long, value_name = "FILE")]
        log: Option<std::path::PathBuf>,
        /// Plants this bug in the broker: how often a sweep of fresh seeds
        /// catches it is the harness's catch rate.
        #[arg(long, value_parser = bug_names())]
        plant: Option<String>,
    },
    /// Runs one seed and prints what failed.
    Replay {
        seed: u64,
        #[arg(long, default_value = "churn", value_parser = scenario_names())]
        scenario: String,
        #[arg(long, value_parser = bug_names())]
        plant: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    tern_sim::seeds::init_logging();
    match Args::parse().command {
        Command::Sweep {
            seeds,
            base,
            scenario,
            jobs,
            until_secs,
            log,
            plant,
        } => {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let sweep = Sweep {
                seeds,
                base,
                jobs,
                deadline: until_secs.map(|s| Instant::now() + std::time::Duration::from_secs(s)),
                log,
            };
            sweep.run(targets(scenario.as_deref(), plant))
        }
        Command::Replay {
            seed,
            scenario,
            plant,
        } => {
            let target = targets(Some(&scenario), plant).remove(0);
            replay(seed, &target)
        }
    }
}

/// What a sweep or a replay runs: a scenario of clients and faults
/// (`run::run`), or the store's under crashes, which has a harness of its
/// own (`tern_sim::durable`).
enum Target {
    Workload(Box<Scenario>),
    Durable(Option<PlantedBug>),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Workload(scenario) => scenario.name,
            Target::Durable(_) => durable::NAME,
        }
    }

    fn planted(&self) -> Option<PlantedBug> {
        match self {
            Target::Workload(scenario) => scenario.config.planted_bug,
            Target::Durable(planted) => *planted,
        }
    }

    /// Runs `seed`; says what the run did, or why it failed.
    fn run(&self, seed: u64) -> Result<String, Failure> {
        match self {
            Target::Workload(scenario) => {
                run::run(scenario, seed).map(|outcome| format!("{} events", outcome.history.len()))
            }
            Target::Durable(planted) => durable::run(seed, *planted).map(|report| {
                format!(
                    "{} crashes, {} acknowledged",
                    report.crashes, report.acknowledged
                )
            }),
        }
    }

    fn replay_line(&self, seed: u64) -> String {
        cli_replay_line(self.name(), self.planted(), seed)
    }
}

/// The scenario named, or every one, with the bug named `plant` planted,
/// if any.
fn targets(name: Option<&str>, plant: Option<String>) -> Vec<Target> {
    let bug = plant.map(|name| PlantedBug::by_name(&name).expect("clap checked the name"));
    let workload = |mut scenario: Scenario| {
        scenario.config.planted_bug = bug;
        Target::Workload(Box::new(scenario))
    };
    match name {
        None => {
            let mut all: Vec<Target> = scenarios::all().into_iter().map(workload).collect();
            all.push(Target::Durable(bug));
            all
        }
        Some(durable::NAME) => vec![Target::Durable(bug)],
        // clap checked the name.
        Some(name) => vec![workload(scenarios::by_name(name).expect("a scenario"))],
    }
}

/// The planted bugs' names, which `--help` lists and `--plant` takes.
fn bug_names() -> clap::builder::PossibleValuesParser {
    // Leaked once, for the life of the process: clap wants static names.
    clap::builder::PossibleValuesParser::new(PlantedBug::ALL.map(|bug| &*bug.name().leak()))
}

fn replay(seed: u64, target: &Target) -> std::process::ExitCode {
    match target.run(seed) {
        Ok(summary) => {
            println!("seed {seed} of {} passed: {summary}", target.name());
            std::process::ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{failure}\n{}", target.replay_line(seed));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The scenarios' names, which `--help` lists and `--scenario` takes.
fn scenario_names() -> clap::builder::PossibleValuesParser {
    let mut names: Vec<&'static str> = scenarios::all().iter().map(|s| s.name).collect();
    names.push(durable::NAME);
    clap::builder::PossibleValuesParser::new(names)
}

/// Seeds a second one thread ran, measured on a 2-core machine with both
/// busy (README, "The simulation"): for an estimate, not a promise.
fn seeds_per_second_per_thread(scenario: &str) -> f64 {
    let both_cores = match scenario {
        "churn" => 3.9,
        "adversary" => 9.0,
        "silent_death" => 18.0,
        "slow_subscriber" => 11.0,
        "takeover" => 19.0,
        "broker_bounce" => 19.0,
        "retained_and_wills" => 16.0,
        "clock_jump" | "partition_heal" => 5.0,
        "durable" => 28.0,
        _ => 27.0,
    };
    both_cores / 2.0
}

/// How a sweep runs: which seeds, on how many threads, for how long, and
/// where failures are kept besides the terminal.
struct Sweep {
    seeds: u64,
    base: u64,
    jobs: usize,
    deadline: Option<Instant>,
    log: Option<std::path::PathBuf>,
}

impl Sweep {
    fn run(&self, chosen: Vec<Target>) -> std::process::ExitCode {
        let estimate: f64 = chosen
            .iter()
            .map(|t| self.seeds as f64 / (seeds_per_second_per_thread(t.name()) * self.jobs as f64))
            .sum();
        println!(
            "{} scenario(s), {} seeds each, {} threads: about {:.0} s on a machine like the one measured",
            chosen.len(),
            self.seeds,
            self.jobs,
            estimate.ceil()
        );
        let mut failed = 0;
        for target in chosen {
            failed += self.scenario(&target);
        }
        if failed == 0 {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }

    /// One scenario's seeds on every thread; returns how many failed.
    fn scenario(&self, target: &Target) -> usize {
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new(self.seeds).with_message(target.name());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>20} [{bar:40}] {pos}/{len} seeds, {per_sec}, eta {eta}",
            )
            .expect("a valid template"),
        );
        let next = AtomicU64::new(self.base);
        let ran = AtomicU64::new(0);
        let failures = Mutex::new(Vec::new());
        // The minute of the last progress line, for a sweep whose bar is
        // hidden (stderr not a terminal): its log said nothing until the
        // scenario ended, and nothing at all if it was stopped before.
        let lines = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.jobs {
                scope.spawn(|| loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    let late = self.deadline.is_some_and(|at| Instant::now() >= at);
                    if seed >= self.base + self.seeds || late {
                        return;
                    }
                    if let Err(failure) = target.run(seed) {
                        let text = format!("{failure}\n{}", target.replay_line(seed));
                        bar.suspend(|| println!("{text}"));
                        self.keep(&text);
                        failures.lock().expect("no panics while held").push(seed);
                    }
                    let done = ran.fetch_add(1, Ordering::Relaxed) + 1;
                    bar.inc(1);
                    let minute = started.elapsed().as_secs() / 60;
                    if bar.is_hidden() && lines.fetch_max(minute, Ordering::Relaxed) < minute {
                        let failed = failures.lock().expect("no panics while held").len();
                        println!(
                            "{}: {done} of {} seeds run, {failed} failed, {} s",
                            target.name(),
                            self.seeds,
                            started.elapsed().as_secs()
                        );
                    }
                });
            }
        });
        bar.finish();
        let failures = failures.into_inner().expect("threads joined");
        let ran = ran.into_inner();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}: {ran} seeds in {seconds:.1}s ({:.2} seeds/s), {} failed",
            target.name(),
            ran as f64 / seconds,
            failures.len()
        );
        for seed in &failures {
            println!("{}", target.replay_line(*seed));
        }
        failures.len()
    }

    /// Appends a failure to the log file, if there is one.
    fn keep(&self, text: &str) {
        let Some(path) = &self.log else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
            });
        if let Err(error) = written {
            eprintln!("tern-sim: cannot write {}: {error}", path.display());
        }
    }
}
