//! Attacks by subscribing: filters that cost memory by their depth (row 1),
//! filters that scan a large retained store (rows 2 and 3), and filters
//! that all match one topic, so that every publish to it walks them all
//! (row 10).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tern::codec::{self, Packet, PacketId, ProtocolVersion, Publish, QoS, Unsubscribe};
use tern::topic::{TopicFilter, TopicName};
use tokio::runtime::Runtime;

use super::{attacker, count, count_publishes, seconds, subscribe_all, subscribe_one, ATTACK_STEP};
use crate::client::{self, Conn};
use crate::scenarios::Settings;
use crate::stats::{percentile, Better, Outcome};

/// Row 1: this many filters, each `{i:x}/l/l/...` on a path of its own.
const WIDE_FILTERS: usize = 10_000;
/// Levels in each: the most either broker allows.
const WIDE_LEVELS: usize = 200;
/// Filters in one SUBSCRIBE (40 KB of filters).
const WIDE_PER_SUBSCRIBE: usize = 100;
/// How long an attacker keeps what it made, for the canary to go on.
const HOLD: Duration = Duration::from_secs(1);

/// Filters in the one SUBSCRIBE and UNSUBSCRIBE: the most tern lets one
/// client hold (`subscriptions_per_client_max`).
const ONE_PACKET_FILTERS: usize = 100_000;

/// Rows 2 and 3: retained topics `r/{i}`, 16-byte payloads.
const RETAINED_TOPICS: u64 = 200_000;
/// Filters like `+/nomatchN` in one SUBSCRIBE; none matches a retained topic.
const NOMATCH_FILTERS: usize = 400;
/// How long the `#` subscriber waits for one more retained message.
const RETAINED_SILENCE: Duration = Duration::from_secs(3);

/// Row 10: levels that are a letter or `+`, so 2^16 = 65,536 filters all
/// match the topic of letters.
const OVERLAP_LEVELS: u32 = 16;
const OVERLAP_PER_SUBSCRIBE: usize = 1024;
/// How long the subscriber waits for more copies after the last publish.
const OVERLAP_SILENCE: Duration = Duration::from_secs(2);

pub fn wide_filters(rt: &Runtime, addr: SocketAddr, outcome: &mut Outcome) {
    let filters: Vec<String> = (0..WIDE_FILTERS)
        .map(|i| format!("{i:x}{}", "/l".repeat(WIDE_LEVELS - 1)))
        .collect();
    rt.block_on(async {
        let Some(mut conn) = attacker(addr, "wide", outcome).await else {
            return;
        };
        let started = Instant::now();
        let granted = subscribe_all(&mut conn, &filters, WIDE_PER_SUBSCRIBE, outcome).await;
        seconds(outcome, "subscribe time", started);
        count(outcome, "filters granted", granted);
        tokio::time::sleep(HOLD).await;
    });
}

/// `ONE_PACKET_FILTERS` filters `{i:x}/x` in one SUBSCRIBE (about 1 MB),
/// then all of them in one UNSUBSCRIBE.
pub fn one_packet(rt: &Runtime, addr: SocketAddr, outcome: &mut Outcome) {
    let filters: Vec<String> = (0..ONE_PACKET_FILTERS)
        .map(|i| format!("{i:x}/x"))
        .collect();
    rt.block_on(async {
        let Some(mut conn) = attacker(addr, "one-packet", outcome).await else {
            return;
        };
        let started = Instant::now();
        let granted = subscribe_all(&mut conn, &filters, filters.len(), outcome).await;
        seconds(outcome, "suback time", started);
        count(outcome, "filters granted", granted);
        let unsubscribe = Packet::Unsubscribe(Unsubscribe {
            packet_id: PacketId::new(2).expect("nonzero"),
            filters: (filters.iter())
                .map(|f| TopicFilter::new(f).expect("filter"))
                .collect(),
            properties: Default::default(),
        });
        let started = Instant::now();
        let answered = async {
            conn.send(&unsubscribe).await?;
            loop {
                if let Packet::UnsubAck(ack) = conn.reader.packet().await? {
                    return Ok::<_, std::io::Error>(ack.codes.len());
                }
            }
        };
        match tokio::time::timeout(ATTACK_STEP, answered).await {
            Ok(Ok(_)) => seconds(outcome, "unsuback time", started),
            Ok(Err(e)) => outcome.notes.push(format!("UNSUBSCRIBE: {e}")),
            Err(_) => outcome
                .notes
                .push(format!("no UNSUBACK for {ATTACK_STEP:?}")),
        }
        tokio::time::sleep(HOLD).await;
    });
}

pub fn retained(rt: &Runtime, addr: SocketAddr, outcome: &mut Outcome) {
    rt.block_on(async {
        let Some(mut loader) = attacker(addr, "loader", outcome).await else {
            return;
        };
        let started = Instant::now();
        if let Err(why) = load_retained(&mut loader).await {
            outcome
                .notes
                .push(format!("loading retained messages: {why}"));
            return;
        }
        seconds(outcome, "retained load time", started);

        let Some(mut nomatch) = attacker(addr, "nomatch", outcome).await else {
            return;
        };
        let filters: Vec<String> = (0..NOMATCH_FILTERS)
            .map(|i| format!("+/nomatch{i}"))
            .collect();
        let started = Instant::now();
        subscribe_all(&mut nomatch, &filters, NOMATCH_FILTERS, outcome).await;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        outcome.push("nomatch suback", "ms", millis, Better::Lower);

        let Some(mut everything) = attacker(addr, "everything", outcome).await else {
            return;
        };
        let started = Instant::now();
        if let Err(e) = everything.send(&subscribe_one("#")).await {
            outcome.notes.push(format!("`#` subscriber: {e}"));
            return;
        }
        // Unstamped payloads are the retained ones; the canary's are stamped.
        let done = AtomicBool::new(true);
        let (got, ended) = count_publishes(
            &mut everything,
            RETAINED_TOPICS,
            &done,
            RETAINED_SILENCE,
            |s| s.is_none(),
        )
        .await;
        seconds(outcome, "retained to `#` time", started);
        count(outcome, "retained to `#`", got);
        if let Some(why) = ended {
            outcome
                .notes
                .push(format!("`#` subscriber ended after {got}: {why}"));
        }
    });
}

/// Every retained message in one write, then a QoS 1 PUBLISH whose PUBACK
/// says the broker has read them all.
async fn load_retained(loader: &mut Conn) -> Result<(), String> {
    let mut buf = BytesMut::new();
    for i in 0..RETAINED_TOPICS {
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: TopicName::new(&format!("r/{i}")).expect("topic"),
            packet_id: None,
            payload: vec![b'x'; 16].into(),
            properties: Default::default(),
        });
        codec::encode(&publish, ProtocolVersion::V311, &mut buf);
    }
    let marker = TopicName::new("marker").expect("topic");
    client::put_publish(&mut buf, &marker, QoS::AtLeastOnce, 0, 0);
    loader
        .writer
        .write_all(&buf)
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(ATTACK_STEP, loader.reader.packet()).await {
        Ok(Ok(Packet::PubAck(_))) => Ok(()),
        Ok(Ok(other)) => Err(format!("answered by {other:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no PUBACK for {ATTACK_STEP:?}")),
    }
}

pub fn overlapping(rt: &Runtime, addr: SocketAddr, settings: &Settings, outcome: &mut Outcome) {
    let letters: Vec<String> = (0..OVERLAP_LEVELS)
        .map(|i| char::from(b'a' + i as u8).to_string())
        .collect();
    let topic = TopicName::new(&format!("ov/{}", letters.join("/"))).expect("topic");
    let filters: Vec<String> = (0..1u32 << OVERLAP_LEVELS)
        .map(|mask| {
            let levels = letters.iter().enumerate().map(|(i, letter)| {
                if mask & (1 << i) != 0 {
                    "+"
                } else {
                    letter.as_str()
                }
            });
            format!("ov/{}", levels.collect::<Vec<_>>().join("/"))
        })
        .collect();
    rt.block_on(async {
        let Some(mut subscriber) = attacker(addr, "overlap", outcome).await else {
            return;
        };
        let started = Instant::now();
        let granted =
            subscribe_all(&mut subscriber, &filters, OVERLAP_PER_SUBSCRIBE, outcome).await;
        seconds(outcome, "subscribe time", started);
        count(outcome, "filters granted", granted);
        let Some(mut publisher) = attacker(addr, "overlap-pub", outcome).await else {
            return;
        };
        let done = AtomicBool::new(false);
        let publish = async {
            let acks = publish_for(&mut publisher, &topic, settings.duration).await;
            done.store(true, Relaxed);
            acks
        };
        let receive = count_publishes(&mut subscriber, u64::MAX, &done, OVERLAP_SILENCE, |s| {
            s.is_some_and(|(publisher, _, _)| publisher == OVERLAP_PUBLISHER)
        });
        let ((mut acks, why), (copies, ended)) = tokio::join!(publish, receive);
        let published = acks.len() as u64;
        let rate = published as f64 / settings.duration.as_secs_f64();
        outcome.push("publishes acked", "msg/s", rate, Better::Higher);
        let puback = percentile(&mut acks, 50.0) as f64 / 1e6;
        outcome.push("puback p50", "ms", puback, Better::Lower);
        outcome.push(
            "copies per publish",
            "msgs",
            copies as f64 / published.max(1) as f64,
            Better::Neither,
        );
        for (who, why) in [("publisher", why), ("subscriber", ended)] {
            if let Some(why) = why {
                outcome.notes.push(format!("{who}: {why}"));
            }
        }
    });
}

const OVERLAP_PUBLISHER: u32 = 3;

/// QoS 1 PUBLISHes one at a time for `duration`: each PUBACK's wait in
/// nanoseconds, and why it stopped early if it did.
async fn publish_for(
    conn: &mut Conn,
    topic: &TopicName,
    duration: Duration,
) -> (Vec<u64>, Option<String>) {
    let (end, mut acks) = (Instant::now() + duration, Vec::new());
    let mut buf = BytesMut::new();
    for seq in 0.. {
        if Instant::now() >= end {
            break;
        }
        buf.clear();
        client::put_publish(&mut buf, topic, QoS::AtLeastOnce, OVERLAP_PUBLISHER, seq);
        let sent = Instant::now();
        if let Err(e) = conn.writer.write_all(&buf).await {
            return (acks, Some(e.to_string()));
        }
        loop {
            match tokio::time::timeout(ATTACK_STEP, conn.reader.packet()).await {
                Ok(Ok(Packet::PubAck(_))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return (acks, Some(e.to_string())),
                Err(_) => return (acks, Some(format!("no PUBACK for {ATTACK_STEP:?}"))),
            }
        }
        acks.push(sent.elapsed().as_nanos() as u64);
    }
    (acks, None)
}
