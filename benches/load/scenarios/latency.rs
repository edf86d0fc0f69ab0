//! Latency: one publisher at a fixed 2000 messages/s to one subscriber.
//! After the handshake (on the tokio runtime) the sockets move to plain
//! threads with blocking I/O: tokio's timer has millisecond resolution, which
//! would send the messages in pairs rather than every 500 µs, and a blocked
//! read wakes as soon as the bytes land.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tern::codec::{self, Ack, DecodeOptions, Packet, ProtocolVersion, QoS};
use tern::topic::TopicName;
use tokio::runtime::Runtime;

use super::{connect_many, Settings};
use crate::brokers::Broker;
use crate::client;
use crate::stats::{percentile, Better, Outcome, Tracker};

const RATE_PER_SECOND: u64 = 2000;
const TOPIC: &str = "bench/latency";
/// How long the receiver waits for stragglers after the last send.
const DRAIN: Duration = Duration::from_secs(5);

pub fn run(rt: &Runtime, broker: &Broker, settings: &Settings, qos: QoS) -> Outcome {
    let run_id = client::now_nanos();
    let mut conns = rt.block_on(async {
        let mut subs = connect_many(broker.addr, 1, |_| {
            (format!("lat-sub-{run_id}"), Some((TOPIC.to_owned(), qos)))
        })
        .await;
        let mut pubs = connect_many(broker.addr, 1, |_| (format!("lat-pub-{run_id}"), None)).await;
        vec![subs.remove(0), pubs.remove(0)]
    });
    let publisher = conns.pop().expect("publisher").into_std().expect("std");
    let subscriber = conns.pop().expect("subscriber").into_std().expect("std");
    // A broker that stops reading fails the run instead of hanging it.
    for stream in [&publisher, &subscriber] {
        stream
            .set_write_timeout(Some(client::STEP_TIMEOUT))
            .expect("write timeout");
    }
    let count = RATE_PER_SECOND * settings.duration.as_secs().max(1);

    // Send times by packet identifier, for the PUBACK times; fewer messages
    // than identifiers are sent, so none is reused.
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..=65_535).map(|_| AtomicU64::new(0)).collect());
    let ack_reader = (qos != QoS::AtMostOnce).then(|| {
        let stream = publisher.try_clone().expect("clone publisher socket");
        let sent_at = sent_at.clone();
        std::thread::spawn(move || read_acks(stream, count, &sent_at))
    });
    let receiver = std::thread::spawn(move || receive(subscriber, count));
    publish(publisher, count, qos, &sent_at);

    let tracker = receiver.join().expect("receiver thread");
    let mut outcome = Outcome {
        lost: count.saturating_sub(tracker.distinct(0)),
        ..Outcome::default()
    };
    outcome.count(&tracker);
    let mut latencies = tracker.latencies.unwrap_or_default();
    push_percentiles(&mut outcome, "end-to-end", &mut latencies);
    if let Some(ack_reader) = ack_reader {
        let mut ack_times = ack_reader.join().expect("ack thread");
        push_percentiles(&mut outcome, "puback", &mut ack_times);
    }
    outcome
}

fn push_percentiles(outcome: &mut Outcome, what: &'static str, samples: &mut [u64]) {
    let names: [(&str, f64); 3] = match what {
        "puback" => [
            ("puback p50", 50.0),
            ("puback p99", 99.0),
            ("puback p99.9", 99.9),
        ],
        _ => [("e2e p50", 50.0), ("e2e p99", 99.0), ("e2e p99.9", 99.9)],
    };
    for (name, p) in names {
        let micros = percentile(samples, p) as f64 / 1000.0;
        outcome.push(name, "µs", micros, Better::Lower);
    }
}

/// Sends `count` messages, the i-th at start + i / rate, sleeping between.
fn publish(mut stream: TcpStream, count: u64, qos: QoS, sent_at: &[AtomicU64]) {
    let topic = TopicName::new(TOPIC).expect("topic");
    let interval = Duration::from_nanos(1_000_000_000 / RATE_PER_SECOND);
    let start = Instant::now();
    let mut buf = BytesMut::new();
    for seq in 0..count {
        let due = start + interval * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if qos != QoS::AtMostOnce {
            let id = client::packet_id_of(seq).get();
            sent_at[usize::from(id)].store(client::now_nanos(), Relaxed);
        }
        client::put_publish(&mut buf, &topic, qos, 0, seq);
        stream.write_all(&buf).expect("publish");
        buf.clear();
    }
}

/// Reads until `count` messages arrived or the drain time ran out, stamping
/// each with its arrival time; acknowledges QoS 1 at once.
fn receive(mut stream: TcpStream, count: u64) -> Tracker {
    let mut tracker = Tracker::with_latencies();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut acks = BytesMut::new();
    let (mut received, mut last_progress) = (0u64, Instant::now());
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    while received < count && last_progress.elapsed() < DRAIN {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("latency subscriber: {e}"),
        };
        let now = client::now_nanos();
        last_progress = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        while let Some(packet) = codec::decode(&mut buf, &DecodeOptions::default()).expect("decode")
        {
            if let Packet::Publish(publish) = packet {
                received += 1;
                if let Some((p, seq, sent)) = client::unstamp(&publish.payload) {
                    tracker.record(p, seq, sent, now);
                }
                if let Some(id) = publish.packet_id {
                    codec::encode(
                        &Packet::PubAck(Ack::success(id)),
                        ProtocolVersion::V311,
                        &mut acks,
                    );
                }
            }
        }
        if !acks.is_empty() {
            stream.write_all(&acks).expect("puback");
            acks.clear();
        }
    }
    tracker
}

/// The publisher's PUBACKs: time from our send to the ack's arrival.
fn read_acks(mut stream: TcpStream, count: u64, sent_at: &[AtomicU64]) -> Vec<u64> {
    let mut times = Vec::with_capacity(count as usize);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut last_progress = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    while (times.len() as u64) < count && last_progress.elapsed() < DRAIN {
        let n = match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("latency publisher: {e}"),
        };
        let now = client::now_nanos();
        last_progress = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        while let Some(packet) = codec::decode(&mut buf, &DecodeOptions::default()).expect("decode")
        {
            if let Packet::PubAck(ack) = packet {
                let sent = sent_at[usize::from(ack.packet_id.get())].load(Relaxed);
                times.push(now.saturating_sub(sent));
            }
        }
    }
    times
}
