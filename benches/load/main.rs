//! `cargo bench --bench load [-- --quick] [-- --sustain SECS] [-- SCENARIO...]`:
//! tern against mosquitto and rumqttd (when installed), scenario by
//! scenario, in alternating rounds, with a table of medians and tern's
//! ratio to each.
//! See README.md, "Benchmark", for what each column means.

mod brokers;
mod busy;
mod client;
mod configs;
mod paired;
mod scenarios;
mod stats;
mod tern_binary;
mod tls;
mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use brokers::{Broker, Kind};
use scenarios::{Scenario, Settings};
use stats::{median, Better, Metric, Outcome};
use transport::Transport;

struct Args {
    settings: Settings,
    rounds: usize,
    /// Substrings of scenario names; empty runs them all.
    filters: Vec<String>,
    /// The other brokers to run beside tern (`--brokers`); all installed
    /// without it. rumqttd's churn at about 900 connects/s would take an
    /// hour a round of `--churn-cycles 1000000`.
    brokers: Option<Vec<String>>,
    /// Print each metric round against round too (`paired.rs`).
    paired: bool,
    /// Busy processes to run beside the brokers (`busy.rs`).
    busy: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        settings: Settings {
            duration: Duration::from_secs(5),
            window: 1000,
            idle_connections: 10_000,
            churn_workers: 50,
            churn_cycles: None,
            sustain: Duration::from_secs(60),
        },
        rounds: 3,
        filters: Vec::new(),
        brokers: None,
        paired: false,
        busy: 0,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--quick" => {
                args.settings.duration = Duration::from_secs(2);
                args.settings.sustain = Duration::from_secs(20);
            }
            "--sustain" => {
                let n = words.next().and_then(|n| n.parse::<u64>().ok());
                args.settings.sustain = Duration::from_secs(n.expect("--sustain takes seconds"));
            }
            "--rounds" => {
                let n = words.next().and_then(|n| n.parse::<usize>().ok());
                // Fewer than three rounds would make a median of noise.
                args.rounds = n.expect("--rounds takes a number").max(3);
            }
            "--broker-cpus" => {
                let cpus = words.next().expect("--broker-cpus takes a list: 0 or 0,1");
                let cpus = cpus.split(',').map(|c| c.parse().expect("a CPU number"));
                brokers::pin_brokers(cpus.collect());
            }
            "--tern-workers" => {
                let n = words.next().and_then(|n| n.parse::<usize>().ok());
                configs::set_tern_workers(n.expect("--tern-workers takes a number"));
            }
            "--brokers" => {
                let names = words
                    .next()
                    .expect("--brokers takes a list: mosquitto,rumqttd");
                args.brokers = Some(names.split(',').map(str::to_owned).collect());
            }
            "--churn-cycles" => {
                let n = words.next().and_then(|n| n.parse::<u64>().ok());
                args.settings.churn_cycles = Some(n.expect("--churn-cycles takes a number"));
            }
            "--connections" => {
                let n = words.next().and_then(|n| n.parse::<usize>().ok());
                args.settings.idle_connections = n.expect("--connections takes a number");
            }
            "--paired" => args.paired = true,
            "--busy" => {
                let n = words.next().and_then(|n| n.parse::<usize>().ok());
                args.busy = n.expect("--busy takes a number of processes");
            }
            "--help" | "-h" | "--list" => {
                print_usage();
                std::process::exit(0);
            }
            // cargo passes --bench to every bench target; other flags are
            // libtest's, which this harness does not have.
            flag if flag.starts_with("--") => {}
            name => args.filters.push(name.to_owned()),
        }
    }
    args
}

fn print_usage() {
    println!(
        "cargo bench --bench load -- [--quick] [--rounds N] [--sustain SECS] [--broker-cpus 0,1] [--churn-cycles N] [--brokers mosquitto,rumqttd] [--tern-workers N] [--paired] [--busy N] \
         [--connections N] [SCENARIO...]\n\
         Runs each scenario whose name contains one of the SCENARIO words (all \
         without one) against tern, mosquitto and rumqttd, those installed, in \
         alternating rounds.\n\nscenarios:"
    );
    for scenario in scenarios::ALL {
        println!("  {}", scenario.name());
    }
}

fn main() {
    let args = parse_args();
    let fd_limit = brokers::raise_fd_limit();
    let needed = args.settings.idle_connections as u64 + 1000;
    if fd_limit < needed {
        eprintln!(
            "open-file limit is {fd_limit}; {needed} are needed for the connections scenario \
             (raise it with `ulimit -n {needed}` or lower --connections)"
        );
    }
    let scenarios: Vec<Scenario> = scenarios::ALL
        .into_iter()
        .filter(|s| args.filters.is_empty() || args.filters.iter().any(|f| s.name().contains(f)))
        .collect();
    if scenarios.is_empty() {
        let names: Vec<String> = scenarios::ALL.iter().map(|s| s.name()).collect();
        panic!(
            "no scenario matches {:?}; names: {}",
            args.filters,
            names.join(", ")
        );
    }
    let mut kinds = brokers::available();
    if let Some(names) = &args.brokers {
        kinds.retain(|&kind| kind == Kind::Tern || names.iter().any(|n| n == kind.name()));
    }
    let dir = scratch_dir();
    tls::files(&dir);
    // The load generator's own runtime, two workers for the two cores it
    // shares with the broker under test.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let busy = busy::Busy::start(args.busy);
    let started = Instant::now();
    let mut results: Vec<(Scenario, BTreeMap<&str, Vec<Outcome>>)> = Vec::new();
    for &scenario in &scenarios {
        let mut by_kind: BTreeMap<&str, Vec<Outcome>> = BTreeMap::new();
        let runs_it = |kind: Kind| match scenario.transport() {
            Transport::Ws => brokers::websockets(kind, &dir),
            Transport::Tcp | Transport::Tls => Ok(()),
        };
        let mut runners = Vec::new();
        for &kind in &kinds {
            match runs_it(kind) {
                Ok(()) => runners.push(kind),
                Err(why) => eprintln!("{:<22} {:<9} skipped: {why}", scenario.name(), kind.name()),
            }
        }
        if let Some(&kind) = runners.first().filter(|_| scenario.warms_up_generator()) {
            let broker = Broker::start(kind, &dir, scenario.limits(), scenario.transport());
            let outcome = scenario.run(&runtime, &broker, &args.settings);
            broker.stop();
            eprintln!(
                "{:<22} warm-up   {:<9} {} (not counted)",
                scenario.name(),
                kind.name(),
                summary(&outcome)
            );
        }
        for round in 1..=args.rounds {
            // A B A B: each broker runs while the machine is in about the
            // state the other one saw.
            for &kind in &runners {
                let broker = Broker::start(kind, &dir, scenario.limits(), scenario.transport());
                let mut outcome = scenario.run(&runtime, &broker, &args.settings);
                let (log, ended) = broker.stop();
                outcome.lock_holds(&log);
                if let Some(status) = ended {
                    let last = log.lines().last().unwrap_or("(empty)");
                    outcome.notes.push(format!(
                        "{} ended before the run did: {status}; its log's last line: {last}",
                        kind.name()
                    ));
                }
                eprintln!(
                    "{:<22} round {round} {:<9} {}",
                    scenario.name(),
                    kind.name(),
                    summary(&outcome)
                );
                by_kind.entry(kind.name()).or_default().push(outcome);
            }
        }
        results.push((scenario, by_kind));
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    print_table(&results, &kinds, args.rounds);
    if args.paired {
        let others: Vec<&str> = kinds[1..].iter().map(|k| k.name()).collect();
        paired::print(&results, Kind::Tern.name(), &others);
    }
    println!(
        "({} rounds, {:?} per run ({:?} sustained), window {}, {} idle connections, tern's workers {}, {} busy processes beside; {:.0} s in all)",
        args.rounds,
        args.settings.duration,
        args.settings.sustain,
        args.settings.window,
        args.settings.idle_connections,
        configs::tern_workers(),
        busy.count(),
        started.elapsed().as_secs_f64()
    );
}

/// Config files and broker logs, one directory per bench process.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tern-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// One line of progress per run, on stderr.
fn summary(outcome: &Outcome) -> String {
    let mut parts: Vec<String> = outcome
        .metrics
        .iter()
        .take(3)
        .map(|m| format!("{}={:.2}{}", m.name, m.value, m.unit))
        .collect();
    parts.push(format!(
        "lost/dup/reord={}/{}/{}",
        outcome.lost, outcome.duplicates, outcome.reordered
    ));
    parts.extend(outcome.notes.iter().map(|note| format!("[{note}]")));
    parts.join(" ")
}

fn print_table(
    results: &[(Scenario, BTreeMap<&str, Vec<Outcome>>)],
    kinds: &[Kind],
    rounds: usize,
) {
    let tern = Kind::Tern.name();
    // Every other broker gets a column of values and one of tern's ratio
    // to it; a broker that sat a scenario out shows "-" in both.
    let others: Vec<&str> = kinds[1..].iter().map(|k| k.name()).collect();
    println!();
    println!("medians of {rounds} rounds; lost/dup/reord are sums over all rounds");
    print!(
        "{:<22} {:<22} {:>7} {:>14}",
        "scenario", "metric", "unit", tern
    );
    for other in &others {
        print!(" {other:>14}");
    }
    for other in &others {
        print!(" {:>12}", format!("tern/{}", &other[..4]));
    }
    println!();
    for (scenario, by_kind) in results {
        // A run that failed part of a scenario (an attack a broker did not
        // let connect) has fewer metrics: rows are every metric any run
        // has, tern's first, and a median is over the runs that have it.
        let mut rows: Vec<&Metric> = Vec::new();
        for kind in kinds {
            for outcome in by_kind.get(kind.name()).into_iter().flatten() {
                for metric in &outcome.metrics {
                    if !rows.iter().any(|row| row.name == metric.name) {
                        rows.push(metric);
                    }
                }
            }
        }
        for metric in rows {
            let value = |kind: &str| {
                let values: Vec<f64> = by_kind
                    .get(kind)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.metrics.iter().find(|m| m.name == metric.name))
                    .map(|m| m.value)
                    .collect();
                median(&values)
            };
            let t = value(tern);
            print!(
                "{:<22} {:<22} {:>7} {:>14}",
                scenario.name(),
                metric.name,
                metric.unit,
                number(t)
            );
            for other in &others {
                print!(" {:>14}", number(value(other)));
            }
            for other in &others {
                let m = value(other);
                let ratio = match metric.better {
                    Better::Neither => String::new(),
                    _ if m == 0.0 || !m.is_finite() => "-".into(),
                    _ => format!("{:.2}", t / m),
                };
                print!(" {ratio:>12}");
            }
            println!();
        }
        let integrity = |kind: &str| {
            let Some(outcomes) = by_kind.get(kind) else {
                return "-".to_owned();
            };
            let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
            format!(
                "{}/{}/{}",
                sum(|o| o.lost),
                sum(|o| o.duplicates),
                sum(|o| o.reordered)
            )
        };
        print!(
            "{:<22} {:<22} {:>7} {:>14}",
            scenario.name(),
            "lost/dup/reord",
            "msgs",
            integrity(tern)
        );
        for other in &others {
            print!(" {:>14}", integrity(other));
        }
        println!();
    }
    print_notes(results);
}

/// What the numbers do not say, per scenario, broker and round.
fn print_notes(results: &[(Scenario, BTreeMap<&str, Vec<Outcome>>)]) {
    let mut header = false;
    for (scenario, by_kind) in results {
        for (kind, outcomes) in by_kind {
            for (round, outcome) in outcomes.iter().enumerate() {
                for note in &outcome.notes {
                    if !std::mem::replace(&mut header, true) {
                        println!("\nnotes:");
                    }
                    let name = scenario.name();
                    println!("{name:<22} {kind:<9} round {}: {note}", round + 1);
                }
            }
        }
    }
}

/// Large numbers without decimals, small ones with enough to read.
fn number(value: f64) -> String {
    if !value.is_finite() {
        "-".into()
    } else if value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
