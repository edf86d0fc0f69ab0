//! Connections: many idle clients (what one costs the broker in memory, how
//! fast it accepts them), and churn (clients that connect, subscribe, publish
//! and vanish without DISCONNECT: does the broker give everything back?).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern::codec::QoS;
use tern::topic::TopicName;
use tokio::runtime::Runtime;

use super::{connect_many, Settings};
use crate::brokers::{self, Broker};
use crate::client;
use crate::stats::{Better, Outcome};

/// How long the broker gets to settle (free buffers, close sockets) before
/// its memory and descriptors are read.
const SETTLE: Duration = Duration::from_secs(1);
/// Clients one churn worker makes at most, a bound besides the duration.
const CLIENTS_PER_WORKER_MAX: u64 = 10_000_000;
/// A run of `--churn-cycles` ends at its count, or at this if it is slower.
const CYCLES_DURATION_MAX: Duration = Duration::from_secs(1800);
/// How long churn waits for the descriptors to come back to the baseline.
const RECOVER_MAX: Duration = Duration::from_secs(5);
/// How long churn runs before its baseline is taken.
const WARM_UP: Duration = Duration::from_secs(1);

pub fn idle(rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
    let count = settings.idle_connections;
    let rss_before = broker.rss_kib();
    let run_id = client::now_nanos();
    let cpu = Cpu::start(broker);
    let start = Instant::now();
    let conns = rt.block_on(connect_many(broker.addr, count, |i| {
        (
            format!("idle-{run_id}-{i}"),
            Some((format!("idle/{run_id}/{i}"), QoS::AtLeastOnce)),
        )
    }));
    let elapsed = start.elapsed();
    std::thread::sleep(SETTLE);
    let rss_after = broker.rss_kib();
    let mut outcome = Outcome::default();
    outcome.push(
        "connects (+subscribe)",
        "conn/s",
        count as f64 / elapsed.as_secs_f64(),
        Better::Higher,
    );
    cpu.push_per_connect(broker, count as u64, &mut outcome);
    let per_conn = rss_after.saturating_sub(rss_before) as f64 * 1024.0 / count as f64;
    outcome.push("rss per idle conn", "bytes", per_conn, Better::Lower);
    outcome.push("rss before", "KiB", rss_before as f64, Better::Lower);
    outcome.push("rss with conns", "KiB", rss_after as f64, Better::Lower);
    // Close them on the runtime their sockets are registered with.
    rt.block_on(async move { drop(conns) });
    outcome
}

pub fn churn(rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
    std::thread::sleep(SETTLE);
    let (fds_cold, rss_cold) = (broker.fds(), broker.rss_kib());
    // One short churn first, so that the baseline holds what serving any
    // client pages in once (the code that does it, the allocator's caches):
    // what churn must give back is what grows with the clients churned.
    let workers = settings.churn_workers;
    churn_for(rt, broker, workers, WARM_UP, CLIENTS_PER_WORKER_MAX, "warm");
    recover(broker, fds_cold);
    let fds_before = broker.fds();
    let rss_before = broker.rss_kib();
    let cpu = Cpu::start(broker);
    let start = Instant::now();
    let (duration, per_worker) = match settings.churn_cycles {
        Some(cycles) => (CYCLES_DURATION_MAX, cycles.div_ceil(workers as u64)),
        None => (settings.duration, CLIENTS_PER_WORKER_MAX),
    };
    let total = churn_for(rt, broker, workers, duration, per_worker, "churn");
    let elapsed = start.elapsed();
    // What the broker spends noticing the clients gone and freeing their
    // sessions is part of each one's cost: counted up to the settled state.
    recover(broker, fds_before);
    let fds_after = broker.fds();
    let rss_after = broker.rss_kib();
    let mut outcome = Outcome::default();
    outcome.push(
        "connects (+sub+pub)",
        "conn/s",
        total as f64 / elapsed.as_secs_f64(),
        Better::Higher,
    );
    cpu.push_per_connect(broker, total, &mut outcome);
    outcome.push(
        "fds after - before",
        "fds",
        fds_after as f64 - fds_before as f64,
        Better::Neither,
    );
    outcome.push("rss cold", "KiB", rss_cold as f64, Better::Lower);
    outcome.push("rss before", "KiB", rss_before as f64, Better::Lower);
    outcome.push("rss after", "KiB", rss_after as f64, Better::Lower);
    let growth = |from: u64| (rss_after as f64 - from as f64) * 100.0 / from.max(1) as f64;
    outcome.push("rss growth", "%", growth(rss_before), Better::Lower);
    outcome.push("rss growth from cold", "%", growth(rss_cold), Better::Lower);
    outcome
}

/// CPU time of the broker and of the load generator from a start.
struct Cpu {
    broker: Duration,
    load: Duration,
}

impl Cpu {
    fn start(broker: &Broker) -> Cpu {
        Cpu {
            broker: broker.cpu(),
            load: brokers::own_cpu(),
        }
    }

    /// Each side's CPU since the start per client, as the throughput
    /// scenarios give it per delivery.
    fn push_per_connect(&self, broker: &Broker, clients: u64, outcome: &mut Outcome) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / clients.max(1) as f64;
        let broker_cpu = broker.cpu().saturating_sub(self.broker);
        let load_cpu = brokers::own_cpu().saturating_sub(self.load);
        outcome.push("broker cpu/connect", "µs", per(broker_cpu), Better::Lower);
        outcome.push("load cpu/connect", "µs", per(load_cpu), Better::Lower);
    }
}

/// Waits until the broker has noticed every close (its descriptors are
/// down to `fds`, or `RECOVER_MAX` has passed), then lets it settle.
fn recover(broker: &Broker, fds: usize) {
    let recover_end = Instant::now() + RECOVER_MAX;
    while broker.fds() > fds && Instant::now() < recover_end {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLE);
}

/// Clients that connect, subscribe, publish and vanish, from `workers`
/// workers for `duration` or until each has made `per_worker`; returns how
/// many there were.
fn churn_for(
    rt: &Runtime,
    broker: &Broker,
    workers: usize,
    duration: Duration,
    per_worker: u64,
    tag: &str,
) -> u64 {
    let connects = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let run_id = format!("{tag}-{}", client::now_nanos());
    rt.block_on(async {
        let workers: Vec<_> = (0..workers)
            .map(|w| {
                let connects = connects.clone();
                let run_id = run_id.clone();
                let addr = broker.addr;
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < deadline && i < per_worker {
                        let id = format!("churn-{run_id}-{w}-{i}");
                        let topic = format!("churn/{w}/{i}");
                        let mut conn = match client::connect(addr, &id).await {
                            Ok(conn) => conn,
                            Err(error) => panic!("churn client {id}: {error}"),
                        };
                        conn.subscribe(&topic, QoS::AtLeastOnce)
                            .await
                            .unwrap_or_else(|e| panic!("churn client {id}: {e}"));
                        // A message to itself, so the broker has something in
                        // flight to this client when it vanishes.
                        let mut buf = bytes::BytesMut::new();
                        let name = TopicName::new(&topic).expect("topic");
                        client::put_publish(&mut buf, &name, QoS::AtLeastOnce, w as u32, i);
                        let _ = client::timed(conn.writer.write_all(&buf)).await;
                        connects.fetch_add(1, Relaxed);
                        // Half vanish with a RST, half with a FIN; none says
                        // DISCONNECT.
                        conn.abort(i.is_multiple_of(2));
                        i += 1;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("churn worker");
        }
    });
    connects.load(Relaxed)
}
