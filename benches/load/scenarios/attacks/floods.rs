//! Attacks by sending or by not reading: PUBLISHes made of many small User
//! Properties for offline sessions (row 5), and subscribers that stop
//! reading a flood of large messages (row 6).

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tern::codec::{self, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode};
use tern::topic::TopicName;
use tokio::runtime::Runtime;

use super::{attacker, count, count_publishes, put_varint, run_id, varint_len, ATTACK_STEP};
use crate::brokers::ATTACK_PACKET_BYTES;
use crate::client::{self, Conn, Hello};
use crate::scenarios::Settings;
use crate::stats::{Better, Outcome};

/// Row 5: offline persistent sessions subscribed to the big messages.
const OFFLINE_SESSIONS: usize = 3;
/// Big PUBLISHes sent, one at a time.
const BIG_PUBLISHES: u64 = 2;
/// Bytes of User Properties in each: the packet limit less room for the rest.
const PROPERTY_BYTES: usize = ATTACK_PACKET_BYTES as usize - 4096;
/// One User Property ("k", "v") on the wire: identifier, two short strings.
const USER_PROPERTY: [u8; 7] = [0x26, 0, 1, b'k', 0, 1, b'v'];
const BIG_TOPIC: &str = "big/t";
/// How long a resumed session waits for one more of what it was kept.
const RESUME_SILENCE: Duration = Duration::from_secs(2);

/// Row 6: subscribers that stop reading, and what they are sent.
const STALLED: usize = 6;
const STALL_PAYLOAD_BYTES: usize = 256 * 1024;
/// 100 MB/s into the broker, 700 MB/s out of it if every copy were sent.
const STALL_RATE_PER_SECOND: u32 = 400;
const STALL_TOPIC: &str = "stall/t";

pub fn big_properties(rt: &Runtime, addr: SocketAddr, outcome: &mut Outcome) {
    let v5 = |clean| Hello {
        version: ProtocolVersion::V5,
        clean,
        session_expiry_secs: Some(3600),
        ..Hello::default()
    };
    let ids: Vec<String> = (0..OFFLINE_SESSIONS)
        .map(|k| format!("big-sub-{}-{k}", run_id()))
        .collect();
    rt.block_on(async {
        for id in &ids {
            let session = async {
                let mut conn = client::connect_as(addr, id, v5(true)).await?;
                conn.subscribe(BIG_TOPIC, QoS::AtLeastOnce).await?;
                let bye = Disconnect {
                    reason: ReasonCode::SUCCESS,
                    properties: Default::default(),
                };
                conn.send(&Packet::Disconnect(bye)).await
            };
            if let Err(e) = session.await {
                outcome.notes.push(format!("offline session {id}: {e}"));
            }
        }
        let mut publisher = match client::connect_as(addr, "big-pub", v5(true)).await {
            Ok(conn) => conn,
            Err(e) => {
                return outcome
                    .notes
                    .push(format!("publisher could not connect: {e}"))
            }
        };
        let accepted = publish_big(&mut publisher, outcome).await;
        count(outcome, "publishes accepted", accepted);
        // What the broker keeps once the PUBLISHes are read: the rss at end.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut delivered = 0;
        for id in &ids {
            let Ok(mut conn) = client::connect_as(addr, id, v5(false)).await else {
                outcome.notes.push(format!("session {id} could not resume"));
                continue;
            };
            let done = AtomicBool::new(true);
            let (got, ended) =
                count_publishes(&mut conn, BIG_PUBLISHES, &done, RESUME_SILENCE, |_| true).await;
            delivered += got;
            if let Some(why) = ended {
                outcome
                    .notes
                    .push(format!("session {id} ended after {got}: {why}"));
            }
        }
        count(outcome, "resumed deliveries", delivered);
    });
}

/// Sends the big PUBLISHes one at a time, each after the last one's PUBACK,
/// and returns how many were accepted (PUBACK below 0x80).
async fn publish_big(publisher: &mut Conn, outcome: &mut Outcome) -> u64 {
    let mut accepted = 0;
    for id in 1..=BIG_PUBLISHES as u16 {
        if let Err(e) = publisher.writer.write_all(&big_publish(id)).await {
            outcome.notes.push(format!("publisher, PUBLISH {id}: {e}"));
            break;
        }
        match tokio::time::timeout(ATTACK_STEP, publisher.reader.packet()).await {
            Ok(Ok(Packet::PubAck(ack))) if !ack.reason.is_error() => accepted += 1,
            Ok(Ok(other)) => outcome
                .notes
                .push(format!("PUBLISH {id} answered by {other:?}")),
            Ok(Err(e)) => {
                outcome.notes.push(format!("publisher, PUBLISH {id}: {e}"));
                break;
            }
            Err(_) => outcome.notes.push(format!("PUBLISH {id}: no PUBACK")),
        }
    }
    accepted
}

/// A 5.0 QoS 1 PUBLISH of a short payload and [`PROPERTY_BYTES`] of User
/// Properties, written by hand: tern's `Properties` would hold two million
/// of them in the load generator's memory too.
fn big_publish(packet_id: u16) -> BytesMut {
    let properties = PROPERTY_BYTES / USER_PROPERTY.len() * USER_PROPERTY.len();
    let payload = b"big properties";
    let body = 2 + BIG_TOPIC.len() + 2 + varint_len(properties) + properties + payload.len();
    let mut buf = BytesMut::with_capacity(body + 5);
    buf.put_u8(0x32);
    put_varint(&mut buf, body);
    buf.put_u16(BIG_TOPIC.len() as u16);
    buf.put_slice(BIG_TOPIC.as_bytes());
    buf.put_u16(packet_id);
    put_varint(&mut buf, properties);
    for _ in 0..properties / USER_PROPERTY.len() {
        buf.put_slice(&USER_PROPERTY);
    }
    buf.put_slice(payload);
    buf
}

pub fn stalled_readers(rt: &Runtime, addr: SocketAddr, settings: &Settings, outcome: &mut Outcome) {
    rt.block_on(async {
        let mut stalled = Vec::new();
        for k in 0..STALLED {
            let Some(mut conn) = attacker(addr, &format!("stalled-{k}"), outcome).await else {
                return;
            };
            if let Err(e) = conn.subscribe(STALL_TOPIC, QoS::AtMostOnce).await {
                return outcome.notes.push(format!("stalled reader {k}: {e}"));
            }
            // Kept, and never read again.
            stalled.push(conn);
        }
        let (Some(mut reader), Some(mut publisher)) = (
            attacker(addr, "stall-reader", outcome).await,
            attacker(addr, "stall-pub", outcome).await,
        ) else {
            return;
        };
        if let Err(e) = reader.subscribe(STALL_TOPIC, QoS::AtMostOnce).await {
            return outcome.notes.push(format!("reading subscriber: {e}"));
        }
        let done = AtomicBool::new(false);
        let publish = async {
            let sent = flood(&mut publisher, settings.duration).await;
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            sent
        };
        let receive = count_publishes(&mut reader, u64::MAX, &done, Duration::from_secs(2), |_| {
            true
        });
        let ((sent, why), (got, ended)) = tokio::join!(publish, receive);
        count(outcome, "published", sent);
        let share = got as f64 * 100.0 / sent.max(1) as f64;
        outcome.push("reading subscriber got", "%", share, Better::Higher);
        for (who, why) in [("publisher", why), ("reading subscriber", ended)] {
            if let Some(why) = why {
                outcome.notes.push(format!("{who}: {why}"));
            }
        }
        drop(stalled);
    });
}

/// QoS 0 PUBLISHes of [`STALL_PAYLOAD_BYTES`] at [`STALL_RATE_PER_SECOND`]
/// for `duration`, as many as the broker reads in that time.
async fn flood(publisher: &mut Conn, duration: Duration) -> (u64, Option<String>) {
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: TopicName::new(STALL_TOPIC).expect("topic"),
        packet_id: None,
        payload: vec![0x5a; STALL_PAYLOAD_BYTES].into(),
        properties: Default::default(),
    });
    let mut frame = BytesMut::new();
    codec::encode(&publish, ProtocolVersion::V311, &mut frame);
    let (start, interval) = (
        Instant::now(),
        Duration::from_secs(1) / STALL_RATE_PER_SECOND,
    );
    let end = tokio::time::Instant::from(start + duration);
    let mut sent = 0;
    while start.elapsed() < duration {
        tokio::time::sleep_until((start + interval * sent as u32).into()).await;
        match tokio::time::timeout_at(end, publisher.writer.write_all(&frame)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => return (sent, Some(e.to_string())),
            Err(_) => break,
        }
    }
    (sent, None)
}
