//! Round against round (`--paired`): the brokers take turns, so tern's
//! round i ran next to each other broker's round i, on the machine as it
//! was then. A ratio of medians hides how often tern was ahead; on a
//! shared machine whose state drifts between rounds, counting the rounds
//! it was ahead in, and the median of each pair's ratio, says whether a
//! difference of a percent is one.

use std::collections::BTreeMap;

use crate::scenarios::Scenario;
use crate::stats::{median, Better, Outcome};

pub fn print(results: &[(Scenario, BTreeMap<&str, Vec<Outcome>>)], tern: &str, others: &[&str]) {
    println!();
    println!("paired rounds: tern's round i against each broker's round i");
    for (scenario, by_kind) in results {
        let Some(terns) = by_kind.get(tern) else {
            continue;
        };
        let names = terns.iter().flat_map(|o| &o.metrics);
        let mut seen: Vec<&str> = Vec::new();
        for metric in names {
            if metric.better == Better::Neither || seen.contains(&metric.name) {
                continue;
            }
            seen.push(metric.name);
            for other in others {
                let Some(theirs) = by_kind.get(other) else {
                    continue;
                };
                let value = |o: &Outcome| {
                    o.metrics
                        .iter()
                        .find(|m| m.name == metric.name)
                        .map(|m| m.value)
                };
                let pairs: Vec<(f64, f64)> = terns
                    .iter()
                    .zip(theirs)
                    .filter_map(|(t, o)| Some((value(t)?, value(o)?)))
                    .filter(|&(_, o)| o > 0.0)
                    .collect();
                if pairs.is_empty() {
                    continue;
                }
                let ahead = pairs
                    .iter()
                    .filter(|&&(t, o)| match metric.better {
                        Better::Higher => t > o,
                        _ => t < o,
                    })
                    .count();
                let ratios: Vec<f64> = pairs.iter().map(|&(t, o)| t / o).collect();
                println!(
                    "{:<22} {:<22} tern ahead of {other} in {ahead} of {} rounds, median of the rounds' ratios {:.3}",
                    scenario.name(),
                    metric.name,
                    pairs.len(),
                    median(&ratios)
                );
            }
        }
    }
}
