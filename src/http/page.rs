//! `/` and `/status.json`: a page for a person, which shows the census and
//! plots the last minutes of connections and message rates. The page is
//! one file with its style and script inline (`status.html`), so that it
//! works with no network beyond the broker; it polls `/status.json`, which
//! carries the census and a short history sampled by the HTTP acceptor.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::server::{Census, Server};

pub(super) const PAGE: &str = include_str!("status.html");

/// How often the history takes a sample.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: ten minutes.
const SAMPLES_MAX: usize = 120;

/// The figures the page plots, at one moment; counters since the start,
/// from which the page takes rates.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Sample {
    uptime_secs: f64,
    connections: usize,
    messages_received: u64,
    messages_sent: u64,
}

/// The last `SAMPLES_MAX` samples, oldest first.
#[derive(Debug, Default)]
pub(super) struct History {
    samples: VecDeque<Sample>,
}

impl History {
    pub(super) fn push(&mut self, sample: Sample) {
        if self.samples.len() == SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub(super) fn samples(&self) -> Vec<Sample> {
        self.samples.iter().copied().collect()
    }
}

impl Sample {
    pub(super) fn now(server: &Server) -> Sample {
        Sample::of(&server.census(), server.uptime())
    }

    fn of(census: &Census, uptime: Duration) -> Sample {
        Sample {
            uptime_secs: uptime.as_secs_f64(),
            connections: census.connections,
            messages_received: census.traffic.messages_received,
            messages_sent: census.traffic.messages_sent,
        }
    }
}

#[derive(Serialize)]
struct Status<'a> {
    version: &'a str,
    uptime_secs: f64,
    census: &'a Census,
    sample_every_secs: u64,
    /// The history, then a sample of now, so that the plot reaches the
    /// present between samples.
    history: Vec<Sample>,
}

/// The body of `/status.json`, with the history's `samples`.
pub(super) fn status_json(server: &Server, mut samples: Vec<Sample>) -> String {
    let census = server.census();
    let uptime = server.uptime();
    samples.push(Sample::of(&census, uptime));
    let status = Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: uptime.as_secs_f64(),
        census: &census,
        sample_every_secs: SAMPLE_EVERY.as_secs(),
        history: samples,
    };
    serde_json::to_string(&status).expect("the status has only strings, numbers and maps")
}
