//! Connections: many idle clients (what one costs the broker in memory, how
//! fast it accepts them), and churn (clients that connect, subscribe, publish
//! and vanish without DISCONNECT: does the broker give everything back?).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern::codec::QoS;
use tern::topic::TopicName;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

use super::{connect_many, Settings};
use crate::brokers::Broker;
use crate::client;
use crate::stats::{Better, Outcome};

/// How long the broker gets to settle (free buffers, close sockets) before
/// its memory and descriptors are read.
const SETTLE: Duration = Duration::from_secs(1);
/// Clients one churn worker makes at most, a bound besides the duration.
const CLIENTS_PER_WORKER_MAX: u64 = 10_000_000;
/// How long churn waits for the descriptors to come back to the baseline.
const RECOVER_MAX: Duration = Duration::from_secs(5);

pub fn idle(rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
    let count = settings.idle_connections;
    let rss_before = broker.rss_kib();
    let run_id = client::now_nanos();
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
    let fds_before = broker.fds();
    let rss_before = broker.rss_kib();
    let connects = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + settings.duration;
    let run_id = client::now_nanos();
    rt.block_on(async {
        let workers: Vec<_> = (0..settings.churn_workers)
            .map(|w| {
                let connects = connects.clone();
                let addr = broker.addr;
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < deadline && i < CLIENTS_PER_WORKER_MAX {
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
    let elapsed = start.elapsed();

    // Give the broker time to notice every close; stop early once the
    // descriptors are back.
    let recover_end = Instant::now() + RECOVER_MAX;
    while broker.fds() > fds_before && Instant::now() < recover_end {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(SETTLE);
    let fds_after = broker.fds();
    let rss_after = broker.rss_kib();
    let total = connects.load(Relaxed);
    let mut outcome = Outcome::default();
    outcome.push(
        "connects (+sub+pub)",
        "conn/s",
        total as f64 / elapsed.as_secs_f64(),
        Better::Higher,
    );
    outcome.push(
        "fds after - before",
        "fds",
        fds_after as f64 - fds_before as f64,
        Better::Neither,
    );
    outcome.push("rss before", "KiB", rss_before as f64, Better::Lower);
    outcome.push("rss after", "KiB", rss_after as f64, Better::Lower);
    let growth = (rss_after as f64 - rss_before as f64) * 100.0 / rss_before.max(1) as f64;
    outcome.push("rss growth", "%", growth, Better::Lower);
    outcome
}
