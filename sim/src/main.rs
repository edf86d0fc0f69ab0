//! The sweep runner: many seeds of a scenario on every core, with a progress
//! bar, printing the replay line of each failing seed. Threads live here,
//! never inside a simulated host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::{Parser, Subcommand};
use tern_sim::seeds::cli_replay_line;
use tern_sim::{run, scenarios};

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
        #[arg(long)]
        scenario: Option<String>,
        /// Threads; defaults to the number of cores.
        #[arg(long)]
        jobs: Option<usize>,
    },
    /// Runs one seed and prints what failed.
    Replay {
        seed: u64,
        #[arg(long, default_value = "churn")]
        scenario: String,
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
        } => sweep(seeds, base, scenario, jobs),
        Command::Replay { seed, scenario } => replay(seed, &scenario),
    }
}

fn scenarios_named(name: Option<&str>) -> Vec<tern_sim::workload::Scenario> {
    match name {
        None => scenarios::all(),
        Some(name) => match scenarios::by_name(name) {
            Some(scenario) => vec![scenario],
            None => {
                let names: Vec<_> = scenarios::all().iter().map(|s| s.name).collect();
                eprintln!(
                    "tern-sim: no scenario {name:?}; there are {}",
                    names.join(", ")
                );
                std::process::exit(2);
            }
        },
    }
}

fn replay(seed: u64, name: &str) -> std::process::ExitCode {
    let scenario = &scenarios_named(Some(name))[0];
    match run::run(scenario, seed) {
        Ok(outcome) => {
            println!(
                "seed {seed} of {name} passed: {} events",
                outcome.history.len()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(failure) => {
            println!("{failure}\n{}", cli_replay_line(name, seed));
            std::process::ExitCode::FAILURE
        }
    }
}

fn sweep(
    seeds: u64,
    base: u64,
    name: Option<String>,
    jobs: Option<usize>,
) -> std::process::ExitCode {
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut failed = 0;
    for scenario in scenarios_named(name.as_deref()) {
        let started = Instant::now();
        let bar = indicatif::ProgressBar::new(seeds).with_message(scenario.name);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>20} [{bar:40}] {pos}/{len} seeds, {per_sec}, eta {eta}",
            )
            .expect("a valid template"),
        );
        let next = AtomicU64::new(base);
        let failures = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= base + seeds {
                        return;
                    }
                    if let Err(failure) = run::run(&scenario, seed) {
                        let replay = cli_replay_line(scenario.name, seed);
                        bar.suspend(|| println!("{failure}\n{replay}"));
                        failures.lock().expect("no panics while held").push(seed);
                    }
                    bar.inc(1);
                });
            }
        });
        bar.finish();
        let failures = failures.into_inner().expect("threads joined");
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}: {} seeds in {seconds:.1}s ({:.2} seeds/s), {} failed",
            scenario.name,
            seeds,
            seeds as f64 / seconds,
            failures.len()
        );
        for seed in &failures {
            println!("{}", cli_replay_line(scenario.name, *seed));
        }
        failed += failures.len();
    }
    if failed == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
