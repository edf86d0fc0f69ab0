//! The heavy rows of issue 12 as scenarios: one hostile or careless client
//! at a time, against a broker with the limits an operator would set against
//! it (`brokers::Limits::Attack`, alike for both brokers), while a canary
//! client measures everyone else's round trip and the broker's memory is
//! sampled (watch.rs). An attack that a broker fails is reported as what
//! happened (a closed connection, a count short of the whole), never a
//! panic: the other broker's row is still worth having.

mod floods;
mod slowloris;
mod subscriptions;
mod watch;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tern::codec::{self, Packet, PacketId, QoS, Subscribe, SubscriptionOptions};
use tern::topic::TopicFilter;
use tokio::runtime::Runtime;

use super::Settings;
use crate::brokers::Broker;
use crate::client::{self, Conn, Incoming};
use crate::stats::{Better, Outcome};
use watch::Watch;

/// How long an attacker waits for one reply (a SUBACK, a PUBACK) before it
/// counts the broker as not answering: longer than the client's usual
/// step, as a frozen broker is one of the things being measured.
const ATTACK_STEP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub enum Attack {
    /// Row 1: 10,000 filters of 200 levels from one client.
    WideFilters,
    /// Rows 2 and 3: 200,000 retained topics, a SUBSCRIBE of 400 filters
    /// that match none of them, then a `#` that must get them all.
    Retained,
    /// Row 5: 5.0 PUBLISHes near the packet limit, made of User Properties,
    /// for offline persistent sessions.
    BigProperties,
    /// Row 6: subscribers that stop reading a QoS 0 flood of 256 KB messages.
    StalledReaders,
    /// Row 8: clients dribbling a large packet, idle sockets, keepalive 0.
    Slowloris,
    /// Row 10: 65,536 filters that all match one topic, from one client.
    OverlappingFilters,
    /// 100,000 filters in one SUBSCRIBE, then in one UNSUBSCRIBE: a packet's
    /// worth of work, which tern once did in one hold (455 ms).
    OnePacket,
}

pub const ALL: [Attack; 7] = [
    Attack::WideFilters,
    Attack::Retained,
    Attack::BigProperties,
    Attack::StalledReaders,
    Attack::Slowloris,
    Attack::OverlappingFilters,
    Attack::OnePacket,
];

impl Attack {
    pub fn name(self) -> &'static str {
        match self {
            Attack::WideFilters => "attack-wide-filters",
            Attack::Retained => "attack-retained",
            Attack::BigProperties => "attack-big-properties",
            Attack::StalledReaders => "attack-stalled-readers",
            Attack::Slowloris => "attack-slowloris",
            Attack::OverlappingFilters => "attack-overlap-filters",
            Attack::OnePacket => "attack-one-packet",
        }
    }

    /// The attack with the watch around it: memory and canary rows first,
    /// then what this attack counts.
    pub fn run(self, rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
        let watch = Watch::start(broker);
        let mut counted = Outcome::default();
        let addr = broker.addr;
        match self {
            Attack::WideFilters => subscriptions::wide_filters(rt, addr, &mut counted),
            Attack::Retained => subscriptions::retained(rt, addr, &mut counted),
            Attack::OverlappingFilters => {
                subscriptions::overlapping(rt, addr, settings, &mut counted)
            }
            Attack::BigProperties => floods::big_properties(rt, addr, &mut counted),
            Attack::StalledReaders => floods::stalled_readers(rt, addr, settings, &mut counted),
            Attack::Slowloris => slowloris::run(rt, addr, &mut counted),
            Attack::OnePacket => subscriptions::one_packet(rt, addr, &mut counted),
        }
        let mut outcome = Outcome::default();
        watch.stop().report(&mut outcome);
        outcome.metrics.append(&mut counted.metrics);
        outcome.notes.append(&mut counted.notes);
        outcome
    }
}

/// A unique part for client ids, so that no run meets an earlier one's.
fn run_id() -> u64 {
    client::now_nanos()
}

fn count(outcome: &mut Outcome, name: &'static str, value: u64) {
    outcome.push(name, "count", value as f64, Better::Higher);
}

fn seconds(outcome: &mut Outcome, name: &'static str, since: Instant) {
    outcome.push(name, "s", since.elapsed().as_secs_f64(), Better::Lower);
}

/// Sends `filters` in SUBSCRIBEs of `per_packet`, all written before any
/// SUBACK is awaited (an attacker does not wait), and returns how many were
/// granted; a closed connection or a silent broker ends the count, noted.
async fn subscribe_all(
    conn: &mut Conn,
    filters: &[String],
    per_packet: usize,
    outcome: &mut Outcome,
) -> u64 {
    let packets = filters.chunks(per_packet).count();
    let Conn { reader, writer } = conn;
    let version = reader.version();
    let write = async {
        let mut buf = BytesMut::new();
        for (i, chunk) in filters.chunks(per_packet).enumerate() {
            let subscribe = Packet::Subscribe(Subscribe {
                packet_id: PacketId::new(i as u16 % u16::MAX + 1).expect("nonzero"),
                filters: chunk
                    .iter()
                    .map(|f| {
                        (
                            TopicFilter::new(f).expect("filter"),
                            SubscriptionOptions::qos(QoS::AtMostOnce),
                        )
                    })
                    .collect(),
                properties: Default::default(),
            });
            buf.clear();
            codec::encode(&subscribe, version, &mut buf);
            writer.write_all(&buf).await?;
        }
        Ok::<_, io::Error>(())
    };
    let read = async {
        let (mut acks, mut granted) = (0, 0);
        while acks < packets {
            match tokio::time::timeout(ATTACK_STEP, reader.packet()).await {
                Ok(Ok(Packet::SubAck(ack))) => {
                    acks += 1;
                    granted += ack.codes.iter().filter(|c| !c.is_error()).count() as u64;
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return (granted, Some(error.to_string())),
                Err(_) => return (granted, Some(format!("no SUBACK for {ATTACK_STEP:?}"))),
            }
        }
        (granted, None)
    };
    let (written, (granted, ended)) = tokio::join!(write, read);
    if let Some(why) = ended.or(written.err().map(|e| e.to_string())) {
        outcome.notes.push(format!(
            "subscriber stopped after {granted} filters granted: {why}"
        ));
    }
    granted
}

/// Counts PUBLISHes read until `want` are counted, the connection ends, or
/// nothing came for `silence` once `done` is set. `counts` says which to
/// count by their stamp (`None`: a payload the load client did not stamp).
/// QoS 1 deliveries are acknowledged.
async fn count_publishes(
    conn: &mut Conn,
    want: u64,
    done: &AtomicBool,
    silence: Duration,
    counts: impl Fn(Option<(u32, u64, u64)>) -> bool,
) -> (u64, Option<String>) {
    let (mut counted, mut last) = (0, Instant::now());
    loop {
        loop {
            match conn.reader.buffered_fast() {
                Ok(Some(Incoming::Publish { packet_id, stamp })) => {
                    counted += u64::from(counts(stamp));
                    if let Some(id) = packet_id {
                        if let Err(e) = conn.send(&Packet::PubAck(codec::Ack::success(id))).await {
                            return (counted, Some(e.to_string()));
                        }
                    }
                }
                Ok(Some(Incoming::Other)) => {}
                Ok(None) => break,
                Err(e) => return (counted, Some(e.to_string())),
            }
        }
        if counted >= want {
            return (counted, None);
        }
        if done.load(Relaxed) && last.elapsed() >= silence {
            return (counted, None);
        }
        match tokio::time::timeout(Duration::from_millis(50), conn.reader.fill()).await {
            Ok(Ok(0)) => return (counted, Some("closed by the broker".into())),
            Ok(Ok(_)) => last = Instant::now(),
            Ok(Err(e)) => return (counted, Some(e.to_string())),
            Err(_) => {}
        }
    }
}

/// A connected 3.1.1 client, or a note saying why there is none.
async fn attacker(addr: SocketAddr, role: &str, outcome: &mut Outcome) -> Option<Conn> {
    match client::connect(addr, &format!("{role}-{}", run_id())).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            outcome.notes.push(format!("{role} could not connect: {e}"));
            None
        }
    }
}

/// A SUBSCRIBE to one filter at QoS 0, for a reader that does not wait
/// for the SUBACK before what follows it.
fn subscribe_one(filter: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).expect("nonzero"),
        filters: vec![(
            TopicFilter::new(filter).expect("filter"),
            SubscriptionOptions::qos(QoS::AtMostOnce),
        )],
        properties: Default::default(),
    })
}

/// Bytes of an MQTT variable byte integer.
fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `n` as an MQTT variable byte integer.
fn put_varint(buf: &mut BytesMut, mut n: usize) {
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        buf.put_u8(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            return;
        }
    }
}
