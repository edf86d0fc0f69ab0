//! The longest single CONNECT and SUBSCRIBE in the broker's state as it
//! grows to 10,000, 100,000, a million and 1.1 million sessions (past the
//! end of the maps' growth that starts at 917,504 and ends at 1,032,192),
//! with no runtime or sockets: each call is what one client's packet costs
//! under the routing lock, while every other client waits. The mean is
//! what a connect costs; the slowest are what a map that grows all at once
//! costs, which grows with what is already there.
//!
//! `cargo bench --bench holds [-- SIZES...]`; sizes default to the four.

use std::time::{Duration, Instant};

use tern::broker::{Broker, ConnId};
use tern::codec::{Connect, PacketId, ProtocolVersion, QoS, Subscribe, SubscriptionOptions};
use tern::topic::TopicFilter;
use tern::Config;

/// The binary's allocator, counted as the binary counts it (`src/main.rs`,
/// with no limit): what a grown map's new table costs to get is part of
/// the hold.
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

/// The slowest calls of one kind, and all calls' sum.
#[derive(Default)]
struct Worst {
    calls: u64,
    sum: Duration,
    /// The slowest few, slowest first, with the sessions there were.
    slowest: Vec<(Duration, usize)>,
}

const SLOWEST_KEPT: usize = 3;

impl Worst {
    fn note(&mut self, took: Duration, sessions: usize) {
        self.calls += 1;
        self.sum += took;
        if self.slowest.len() < SLOWEST_KEPT || took > self.slowest[SLOWEST_KEPT - 1].0 {
            self.slowest.push((took, sessions));
            self.slowest
                .sort_by_key(|&(took, _)| std::cmp::Reverse(took));
            self.slowest.truncate(SLOWEST_KEPT);
        }
    }

    fn line(&self, what: &str, size: usize) -> String {
        let mean = self.sum.as_nanos() as f64 / self.calls.max(1) as f64 / 1000.0;
        let slowest: Vec<String> = self
            .slowest
            .iter()
            .map(|(took, at)| format!("{:.1} µs at {at}", took.as_nanos() as f64 / 1000.0))
            .collect();
        format!(
            "{size:>9} sessions  {what:<9}  mean {mean:.2} µs  slowest {}",
            slowest.join(", ")
        )
    }
}

fn connect_packet(i: usize) -> Connect {
    Connect {
        version: ProtocolVersion::V311,
        clean_session: false,
        keep_alive: 60,
        client_id: format!("holds-{i}"),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

/// A filter of its own per client, as in the load benchmark's connections.
fn subscribe_packet(i: usize) -> Subscribe {
    let filter = TopicFilter::new(&format!("holds/{}/{i}", i % 1000)).expect("filter");
    let options = SubscriptionOptions::qos(QoS::AtLeastOnce);
    Subscribe {
        packet_id: PacketId::new(1).expect("non-zero"),
        filters: vec![(filter, options)],
        properties: Default::default(),
    }
}

fn grow(size: usize) -> (Worst, Worst) {
    let config = Config {
        sessions_max: size,
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    let (mut connects, mut subscribes) = (Worst::default(), Worst::default());
    for i in 0..size {
        let conn = ConnId(i as u64);
        let packet = connect_packet(i);
        let start = Instant::now();
        let accepted = broker.connect(conn, packet);
        broker.drain_effects().for_each(drop);
        connects.note(start.elapsed(), i);
        assert!(accepted.is_some(), "connect {i} refused");
        let packet = subscribe_packet(i);
        let start = Instant::now();
        broker.subscribe(conn, packet).expect("subscribe");
        broker.drain_effects().for_each(drop);
        subscribes.note(start.elapsed(), i);
    }
    (connects, subscribes)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .map(|arg| arg.parse().expect("a size is a number of sessions"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000, 1_000_000, 1_100_000]
    } else {
        sizes
    };
    for size in sizes {
        let (connects, subscribes) = grow(size);
        println!("{}", connects.line("connect", size));
        println!("{}", subscribes.line("subscribe", size));
    }
}
