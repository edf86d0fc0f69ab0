//! What an attack is measured by: a canary client doing QoS 1 round trips
//! through the broker every 10 ms, and the broker's resident memory read
//! every 100 ms. Both run on a thread and runtime of their own, so that an
//! attack keeping the load generator's runtime busy does not delay them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tern::codec::{Ack, Packet, QoS};
use tern::topic::TopicName;

use crate::brokers::{self, Broker};
use crate::client::{self, Conn, Incoming};
use crate::stats::{percentile, Better, Outcome};

/// One canary round trip is started this long after the last one started,
/// or at once when it took longer.
const CANARY_INTERVAL: Duration = Duration::from_millis(10);
/// How often the broker's VmRSS is read.
const RSS_INTERVAL: Duration = Duration::from_millis(100);
/// How often a waiting canary looks whether the run has ended.
const POLL: Duration = Duration::from_millis(50);
/// How long the canary waits before connecting again after a failure.
const RETRY: Duration = Duration::from_millis(100);
/// The canary's publisher number in its stamped payloads.
const CANARY: u32 = 7;

/// The canary and the memory sampler, running until [`Watch::stop`].
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Seen>,
}

/// What the watch saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Canary round trips in nanoseconds, from sending the PUBLISH to
    /// reading it back. One still waiting when the run ended is in with
    /// the time it had waited, so a broker frozen to the end shows.
    pub round_trips: Vec<u64>,
    /// Round trips lost with their connection, and connects that failed.
    pub lost: u64,
    pub rss_peak_kib: u64,
    pub rss_end_kib: u64,
    /// Whether the broker process was gone at some sample.
    pub broker_gone: bool,
}

impl Watch {
    /// Starts the canary and the sampler, and gives the canary a moment to
    /// connect before the attack begins.
    pub fn start(broker: &Broker) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, pid) = (broker.addr, broker.pid());
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("watch runtime");
                runtime.block_on(async {
                    let mut seen = Seen::default();
                    let (canary, ()) =
                        tokio::join!(canary(addr, &stop), sample(pid, &stop, &mut seen));
                    (seen.round_trips, seen.lost) = canary;
                    seen
                })
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Watch { stop, thread }
    }

    pub fn stop(self) -> Seen {
        self.stop.store(true, Relaxed);
        self.thread.join().expect("watch thread")
    }
}

impl Seen {
    /// The rows every attack has: memory first, then the canary.
    pub fn report(mut self, outcome: &mut Outcome) {
        let mib = |kib: u64| kib as f64 / 1024.0;
        outcome.push("rss peak", "MiB", mib(self.rss_peak_kib), Better::Lower);
        for (name, p) in [
            ("canary p50", 50.0),
            ("canary p99", 99.0),
            ("canary max", 100.0),
        ] {
            let ms = percentile(&mut self.round_trips, p) as f64 / 1e6;
            outcome.push(name, "ms", ms, Better::Lower);
        }
        let count = self.round_trips.len() as f64;
        outcome.push("canary round trips", "count", count, Better::Higher);
        outcome.push("rss at end", "MiB", mib(self.rss_end_kib), Better::Lower);
        outcome.lost += self.lost;
        if self.broker_gone {
            outcome
                .notes
                .push("the broker process ended during the attack".into());
        }
    }
}

/// Samples the broker's VmRSS until told to stop.
async fn sample(pid: u32, stop: &AtomicBool, seen: &mut Seen) {
    let mut tick = tokio::time::interval(RSS_INTERVAL);
    while !stop.load(Relaxed) {
        tick.tick().await;
        match brokers::rss_kib_of(pid) {
            Some(kib) => {
                seen.rss_peak_kib = seen.rss_peak_kib.max(kib);
                seen.rss_end_kib = kib;
            }
            None => seen.broker_gone = true,
        }
    }
}

/// Round trips until told to stop, connecting again whenever the broker
/// drops the canary; returns the round trips and how many were lost.
async fn canary(addr: SocketAddr, stop: &AtomicBool) -> (Vec<u64>, u64) {
    let topic = format!("canary/{}", client::now_nanos());
    let name = TopicName::new(&topic).expect("canary topic");
    let (mut round_trips, mut lost, mut seq) = (Vec::new(), 0, 0);
    while !stop.load(Relaxed) {
        let mut conn = match canary_connect(addr, &topic).await {
            Ok(conn) => conn,
            Err(_) => {
                lost += 1;
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        while !stop.load(Relaxed) {
            seq += 1;
            let sent = Instant::now();
            let mut buf = BytesMut::new();
            client::put_publish(&mut buf, &name, QoS::AtLeastOnce, CANARY, seq);
            let trip = async {
                conn.writer.write_all(&buf).await?;
                await_own(&mut conn, seq, stop).await
            };
            match trip.await {
                Ok(_) => round_trips.push(sent.elapsed().as_nanos() as u64),
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
            tokio::time::sleep_until((sent + CANARY_INTERVAL).into()).await;
        }
    }
    (round_trips, lost)
}

async fn canary_connect(addr: SocketAddr, topic: &str) -> io::Result<Conn> {
    let mut conn = client::connect(addr, &format!("canary-{}", client::now_nanos())).await?;
    conn.subscribe(topic, QoS::AtLeastOnce).await?;
    Ok(conn)
}

/// Reads until the canary's message `seq` comes back, acknowledging every
/// QoS 1 delivery; `Ok(false)` when told to stop first.
async fn await_own(conn: &mut Conn, seq: u64, stop: &AtomicBool) -> io::Result<bool> {
    loop {
        while let Some(incoming) = conn.reader.buffered_fast()? {
            let Incoming::Publish { packet_id, stamp } = incoming else {
                continue;
            };
            if let Some(id) = packet_id {
                conn.send(&Packet::PubAck(Ack::success(id))).await?;
            }
            if stamp.is_some_and(|(publisher, s, _)| publisher == CANARY && s == seq) {
                return Ok(true);
            }
        }
        if stop.load(Relaxed) {
            return Ok(false);
        }
        if let Ok(read) = tokio::time::timeout(POLL, conn.reader.fill()).await {
            if read? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
