//! Fan-in and fan-out: publishers on one topic, subscribers to it, closed
//! loop. A publisher is never more than a window of messages ahead of the
//! slowest subscriber, so what is measured is the broker's delivery rate, not
//! how deep its queues are before they overflow.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tern::codec::{Ack, Packet, ProtocolVersion, QoS};
use tern::topic::TopicName;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{connect_many_over, Settings};
use crate::brokers::{self, Broker};
use crate::client::{self, Conn, Incoming, Reader};
use crate::stats::{Better, Outcome, Tracker};
use crate::transport::Transport;

/// Messages one write carries at most; a publisher also writes less when its
/// window allows less.
const BATCH: u64 = 64;
/// QoS 1 packet identifiers not yet acknowledged, at most; far below 65,535
/// so that an identifier is never reused while in flight.
const UNACKED_MAX: u64 = 30_000;
/// Once publishing stops, the receivers get until they make no progress
/// for this long to catch up...
const DRAIN_STALL: Duration = Duration::from_secs(3);
/// ...and at most this long in all.
const DRAIN: Duration = Duration::from_secs(60);
/// Deliveries queued for all subscribers together, at most: a fan-out
/// publisher's window shrinks as subscribers grow, so that a slow broker
/// drains its backlog in seconds, not minutes.
const BACKLOG_MAX: u64 = 100_000;
/// Messages one publisher sends in one run at most: a bound besides the
/// duration, far above what a run reaches.
const MESSAGES_MAX: u64 = 100_000_000;

const TOPIC: &str = "bench/load";

/// What the publishers and subscribers share.
struct Shared {
    publishers: usize,
    qos: QoS,
    window: u64,
    /// `received[s * publishers + p]`: distinct messages of publisher `p`
    /// that subscriber `s` has.
    received: Vec<AtomicU64>,
    /// Messages each publisher has written.
    sent: Vec<AtomicU64>,
    /// QoS 1 acknowledgements each publisher has read.
    acked: Vec<AtomicU64>,
    /// One per publisher: a subscriber made progress.
    progress: Vec<Notify>,
    /// Deliveries to all subscribers, duplicates included.
    delivered: AtomicU64,
    /// Nanoseconds the publishers spent with their windows closed, all
    /// together: from finding the window full to running again once it
    /// opened (the wait for a turn on the generator's threads included),
    /// each wait cut at `stopped_at`. Not counted: time blocked writing.
    window_closed_nanos: AtomicU64,
    /// When the measured run ended, for `window_closed_nanos`.
    stopped_at: std::sync::OnceLock<Instant>,
    // Tokens, not flags polled on a timer: a timeout around every read
    // costs the load generator a timer entry per read.
    stop_publishing: CancellationToken,
    stop_receiving: CancellationToken,
}

impl Shared {
    /// How far behind publisher `p` its slowest subscriber is.
    fn slowest(&self, p: usize) -> u64 {
        self.received
            .iter()
            .skip(p)
            .step_by(self.publishers)
            .map(|r| r.load(Relaxed))
            .min()
            .unwrap_or(0)
    }
}

/// The broker's resident memory at one moment of a run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since publishing started.
    pub at: Duration,
    /// Deliveries by then.
    pub delivered: u64,
    pub rss_kib: u64,
}

/// How often a run samples the broker's resident memory.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Runs `publishers` publishers against `subscribers` subscribers at `qos`
/// for the settings' duration.
pub fn run(
    rt: &Runtime,
    broker: &Broker,
    settings: &Settings,
    transport: Transport,
    publishers: usize,
    subscribers: usize,
    qos: QoS,
) -> Outcome {
    let (outcome, _) = drive(
        rt,
        broker,
        settings,
        transport,
        publishers,
        subscribers,
        qos,
    );
    outcome
}

/// Fan-in at QoS 1 for `settings.sustain`, sampling resident memory every
/// second: flat memory means nothing grows per message. Growth is taken
/// from the sample at [`WARM_UP`] (buffers, the allocator's arenas and the
/// inflight windows have reached their size) to the last one.
pub fn sustained(rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
    let sustain = Settings {
        duration: settings.sustain,
        ..settings.clone()
    };
    let (mut outcome, samples) =
        drive(rt, broker, &sustain, Transport::Tcp, 8, 1, QoS::AtLeastOnce);
    let warm = samples
        .iter()
        .find(|s| s.at >= WARM_UP)
        .or(samples.first())
        .copied();
    let (Some(warm), Some(last)) = (warm, samples.last().copied()) else {
        return outcome;
    };
    // The curve itself, every 10 s, for a reader who wants to see the shape.
    let curve: Vec<String> = samples
        .iter()
        .filter(|s| s.at.as_secs() % 10 == 0 || s.at == last.at)
        .map(|s| format!("{}s={}", s.at.as_secs(), s.rss_kib))
        .collect();
    eprintln!("  {} rss KiB: {}", broker.kind.name(), curve.join(" "));
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let growth_kib = last.rss_kib as f64 - warm.rss_kib as f64;
    let messages = last.delivered.saturating_sub(warm.delivered).max(1);
    outcome.push("rss at warm-up", "KiB", warm.rss_kib as f64, Better::Lower);
    outcome.push("rss at end", "KiB", last.rss_kib as f64, Better::Lower);
    outcome.push("rss peak", "KiB", peak as f64, Better::Lower);
    outcome.push("rss growth after warm", "KiB", growth_kib, Better::Neither);
    outcome.push(
        "growth per 1M msgs",
        "KiB",
        growth_kib * 1e6 / messages as f64,
        Better::Neither,
    );
    outcome
}

/// When the sustained run's memory is taken as its baseline.
const WARM_UP: Duration = Duration::from_secs(10);

/// Runs the load for `settings.duration`.
fn drive(
    rt: &Runtime,
    broker: &Broker,
    settings: &Settings,
    transport: Transport,
    publishers: usize,
    subscribers: usize,
    qos: QoS,
) -> (Outcome, Vec<Sample>) {
    let duration = settings.duration;
    let addr = match transport {
        Transport::Tcp => broker.addr,
        Transport::Tls => broker.tls_addr,
        Transport::Ws => broker.ws_addr.expect("a broker with WebSocket"),
    };
    rt.block_on(async {
        let shared = Arc::new(Shared {
            publishers,
            qos,
            window: settings.window.min(BACKLOG_MAX / subscribers as u64).max(1),
            received: (0..publishers * subscribers)
                .map(|_| AtomicU64::new(0))
                .collect(),
            sent: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
            progress: (0..publishers).map(|_| Notify::new()).collect(),
            delivered: AtomicU64::new(0),
            window_closed_nanos: AtomicU64::new(0),
            stopped_at: std::sync::OnceLock::new(),
            stop_publishing: CancellationToken::new(),
            stop_receiving: CancellationToken::new(),
        });
        let run_id = client::now_nanos();
        let subs = connect_many_over(transport, addr, subscribers, |i| {
            (format!("sub-{run_id}-{i}"), Some((TOPIC.to_owned(), qos)))
        })
        .await;
        let pubs = connect_many_over(transport, addr, publishers, |i| {
            (format!("pub-{run_id}-{i}"), None)
        })
        .await;

        let (cpu_before, load_cpu_before) = (broker.cpu(), brokers::own_cpu());
        let start = Instant::now();
        let receivers: Vec<_> = subs
            .into_iter()
            .enumerate()
            .map(|(s, conn)| tokio::spawn(subscriber(s, conn, shared.clone())))
            .collect();
        let senders: Vec<_> = pubs
            .into_iter()
            .enumerate()
            .map(|(p, conn)| tokio::spawn(publisher(p, conn, shared.clone())))
            .collect();
        let mut samples = Vec::new();
        let mut next = start;
        while start.elapsed() < duration {
            next += SAMPLE_EVERY;
            let until = (start + duration).min(next);
            tokio::time::sleep_until(until.into()).await;
            samples.push(Sample {
                at: start.elapsed(),
                delivered: shared.delivered.load(Relaxed),
                rss_kib: broker.rss_kib(),
            });
        }
        let delivered = shared.delivered.load(Relaxed);
        let cpu = broker.cpu().saturating_sub(cpu_before);
        let load_cpu = brokers::own_cpu().saturating_sub(load_cpu_before);
        let stopped_at = Instant::now();
        let elapsed = stopped_at - start;
        shared.stopped_at.set(stopped_at).expect("one end");
        shared.stop_publishing.cancel();
        for sender in senders {
            sender.await.expect("publisher task");
        }

        // Let every receiver catch up with what was sent, then count.
        let expected: u64 =
            shared.sent.iter().map(|s| s.load(Relaxed)).sum::<u64>() * subscribers as u64;
        let drain_end = Instant::now() + DRAIN;
        let (mut last, mut last_change) = (received_total(&shared), Instant::now());
        while last < expected && Instant::now() < drain_end && last_change.elapsed() < DRAIN_STALL {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = received_total(&shared);
            if now != last {
                (last, last_change) = (now, Instant::now());
            }
        }
        shared.stop_receiving.cancel();
        let mut outcome = Outcome::default();
        for receiver in receivers {
            let tracker = receiver.await.expect("subscriber task");
            outcome.count(&tracker);
            for p in 0..publishers {
                let sent = shared.sent[p].load(Relaxed);
                outcome.lost += sent.saturating_sub(tracker.distinct(p as u32));
            }
        }
        let rate = delivered as f64 / elapsed.as_secs_f64();
        outcome.push("deliveries", "msg/s", rate, Better::Higher);
        let closed = Duration::from_nanos(shared.window_closed_nanos.load(Relaxed));
        let closed_share = closed.as_secs_f64() / (elapsed.as_secs_f64() * publishers as f64);
        let cpu_per = cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64;
        outcome.push("broker cpu/delivery", "µs", cpu_per, Better::Lower);
        let load_cpu_per = load_cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64;
        outcome.push("load cpu/delivery", "µs", load_cpu_per, Better::Lower);
        outcome.push("window closed", "%", 100.0 * closed_share, Better::Neither);
        (outcome, samples)
    })
}

fn received_total(shared: &Shared) -> u64 {
    shared.received.iter().map(|r| r.load(Relaxed)).sum()
}

async fn publisher(p: usize, conn: Conn, shared: Arc<Shared>) {
    let Conn { reader, mut writer } = conn;
    // QoS 1 acknowledgements are read in their own task, so that a full
    // window never stops us from seeing the acks that would open it.
    let acks =
        (shared.qos != QoS::AtMostOnce).then(|| tokio::spawn(read_acks(p, reader, shared.clone())));
    let topic = TopicName::new(TOPIC).expect("topic");
    let mut buf = BytesMut::new();
    let mut seq = 0u64;
    while !shared.stop_publishing.is_cancelled() && seq < MESSAGES_MAX {
        let mut allowance = shared.window.saturating_sub(seq - shared.slowest(p));
        if shared.qos != QoS::AtMostOnce {
            let unacked = seq - shared.acked[p].load(Relaxed);
            allowance = allowance.min(UNACKED_MAX.saturating_sub(unacked));
        }
        if allowance == 0 {
            let closed_at = Instant::now();
            tokio::select! {
                () = shared.progress[p].notified() => {}
                () = shared.stop_publishing.cancelled() => {}
            }
            let woke = Instant::now();
            let until = shared.stopped_at.get().map_or(woke, |&end| end.min(woke));
            let closed = until.saturating_duration_since(closed_at).as_nanos();
            let closed = u64::try_from(closed).unwrap_or(u64::MAX);
            shared.window_closed_nanos.fetch_add(closed, Relaxed);
            continue;
        }
        for _ in 0..allowance.min(BATCH) {
            client::put_publish(&mut buf, &topic, shared.qos, p as u32, seq);
            seq += 1;
        }
        if let Err(error) = client::timed(writer.write_all(&buf)).await {
            panic!("publisher {p}: write failed: {error}");
        }
        buf.clear();
        shared.sent[p].store(seq, Relaxed);
    }
    if let Some(acks) = acks {
        // Every message must be acknowledged before the run ends.
        let deadline = Instant::now() + DRAIN;
        while shared.acked[p].load(Relaxed) < seq && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acks.abort();
    }
}

async fn read_acks(p: usize, mut reader: Reader, shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.stop_receiving.cancelled() => return,
            read = reader.fill() => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
        }
        let mut acked = 0;
        while let Ok(Some(packet)) = reader.buffered() {
            if let Packet::PubAck(_) = packet {
                acked += 1;
            }
        }
        shared.acked[p].fetch_add(acked, Relaxed);
        // The window may have been closed by acks, not by subscribers.
        shared.progress[p].notify_one();
    }
}

async fn subscriber(s: usize, conn: Conn, shared: Arc<Shared>) -> Tracker {
    let Conn {
        mut reader,
        mut writer,
    } = conn;
    let mut tracker = Tracker::default();
    let mut acks = BytesMut::new();
    let publishers = shared.publishers;
    loop {
        tokio::select! {
            () = shared.stop_receiving.cancelled() => break,
            read = reader.fill() => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
        let mut count = 0;
        loop {
            match reader.buffered_fast() {
                Ok(Some(Incoming::Publish { packet_id, stamp })) => {
                    count += 1;
                    if let Some((p, seq, sent)) = stamp {
                        tracker.record(p, seq, sent, 0);
                    }
                    if let Some(packet_id) = packet_id {
                        let ack = Packet::PubAck(Ack::success(packet_id));
                        tern::codec::encode(&ack, ProtocolVersion::V311, &mut acks);
                    }
                }
                Ok(Some(Incoming::Other)) => {}
                Ok(None) => break,
                Err(error) => panic!("subscriber {s}: {error}"),
            }
        }
        // Acknowledge the whole read in one write, as a real client would.
        if !acks.is_empty() {
            if client::timed(writer.write_all(&acks)).await.is_err() {
                break;
            }
            acks.clear();
        }
        shared.delivered.fetch_add(count, Relaxed);
        for p in 0..publishers {
            let distinct = tracker.distinct(p as u32);
            shared.received[s * publishers + p].store(distinct, Relaxed);
            shared.progress[p].notify_one();
        }
    }
    tracker
}
