//! What a receiver counts (loss, duplicates, reordering, latency) and what a
//! run reports: named metrics, folded into medians across rounds.

/// Per publisher, which sequence numbers arrived. A bitset, so that a
/// duplicate is told apart from a late (reordered) first arrival.
#[derive(Default)]
pub struct Tracker {
    publishers: Vec<Seen>,
    pub duplicates: u64,
    pub reordered: u64,
    /// End-to-end latencies in nanoseconds, when asked for.
    pub latencies: Option<Vec<u64>>,
}

#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    distinct: u64,
    highest: Option<u64>,
}

impl Tracker {
    pub fn with_latencies() -> Tracker {
        Tracker {
            latencies: Some(Vec::new()),
            ..Tracker::default()
        }
    }

    pub fn record(&mut self, publisher: u32, seq: u64, sent_nanos: u64, now_nanos: u64) {
        let index = publisher as usize;
        if self.publishers.len() <= index {
            self.publishers.resize_with(index + 1, Seen::default);
        }
        let seen = &mut self.publishers[index];
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if seen.bits.len() <= word {
            seen.bits.resize(word + 1, 0);
        }
        if seen.bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        seen.bits[word] |= 1 << bit;
        seen.distinct += 1;
        if seen.highest.is_some_and(|highest| seq < highest) {
            self.reordered += 1;
        }
        seen.highest = Some(seen.highest.map_or(seq, |h| h.max(seq)));
        if let Some(latencies) = &mut self.latencies {
            latencies.push(now_nanos.saturating_sub(sent_nanos));
        }
    }

    /// Distinct messages received from `publisher`.
    pub fn distinct(&self, publisher: u32) -> u64 {
        self.publishers
            .get(publisher as usize)
            .map_or(0, |seen| seen.distinct)
    }
}

/// The `p`-th percentile (0..=100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [u64], p: f64) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// Whether a larger value of a metric is better; it decides nothing in the
/// numbers, only the note beside the ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    /// A count that should be zero, or a plain fact.
    Neither,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
    pub better: Better,
}

/// What one run of one scenario against one broker measured. Loss,
/// duplicates and reordering are kept apart from the metrics because they
/// are summed over rounds, not taken as a median: one lost message in any
/// round is worth seeing.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub metrics: Vec<Metric>,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// What happened that a number does not say (a connection the broker
    /// closed, a broker that died), printed under the table.
    pub notes: Vec<String>,
}

impl Outcome {
    pub fn push(&mut self, name: &'static str, unit: &'static str, value: f64, better: Better) {
        self.metrics.push(Metric {
            name,
            unit,
            value,
            better,
        });
    }

    /// tern's lock hold times from its shutdown log line (`p50_ns=...`);
    /// a broker without the line gets blanks, so every column has the rows.
    pub fn lock_holds(&mut self, log: &str) {
        let line = log.lines().find(|l| l.contains("broker lock held"));
        let field = |key: &str| {
            let after = line?.split_once(&format!("{key}="))?.1;
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<f64>().ok()
        };
        for (name, key) in [
            ("lock hold p50", "p50_ns"),
            ("lock hold p99", "p99_ns"),
            ("lock hold max", "max_ns"),
        ] {
            let micros = field(key).map_or(f64::NAN, |nanos| nanos / 1000.0);
            self.push(name, "µs", micros, Better::Neither);
        }
    }

    pub fn count(&mut self, tracker: &Tracker) {
        self.duplicates += tracker.duplicates;
        self.reordered += tracker.reordered;
    }
}
