//! A publisher whose socket has Nagle's algorithm on (no TCP_NODELAY, as
//! many client libraries leave it) holds each small write back until what
//! it wrote before is acknowledged. The broker asks its publishers'
//! sockets to leave the ACK of what it reads to it, and sends it once the
//! turn's deliveries are written (`net/acks.rs`). A turn that left it
//! unsent would leave it to the kernel's delayed ACK, 40 ms or more later,
//! and each second message of such a publisher would wait that long.

use std::time::{Duration, Instant};

use tern::codec::{Packet, QoS};

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Pairs sent; the median of their waits is judged.
const PAIRS: usize = 21;

/// A wait the broker's own turn never takes, and the kernel's delayed ACK
/// (40 ms at the least) always does.
const STALLED: Duration = Duration::from_millis(20);

/// A subscriber to `t`, its SUBACK read.
async fn subscribed(broker: &TestBroker) -> Raw {
    let mut subscriber = Raw::connected(broker.addr, "sub").await;
    subscriber
        .send(&raw::subscribe(1, "t", QoS::AtMostOnce))
        .await;
    assert!(matches!(subscriber.recv().await, Packet::SubAck(_)));
    subscriber
}

/// A message to nobody, then one to `t`: how long until the subscriber
/// has the second, which Nagle holds back until the first is ACKed.
async fn pair(publisher: &mut Raw, subscriber: &mut Raw) -> Duration {
    let sent = Instant::now();
    publisher
        .send(&raw::publish("nobody", QoS::AtMostOnce, 0, b"a"))
        .await;
    publisher
        .send(&raw::publish("t", QoS::AtMostOnce, 0, b"b"))
        .await;
    let delivered = subscriber.recv_publish().await;
    let waited = sent.elapsed();
    assert_eq!(&delivered.payload[..], b"b");
    waited
}

#[tokio::test]
async fn a_publisher_with_nagle_on_is_not_held_back_by_our_acks() {
    let broker = TestBroker::start(config()).await;
    let mut subscriber = subscribed(&broker).await;
    // Nagle's algorithm on: `Raw` leaves TCP_NODELAY unset.
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    let mut waits = Vec::new();
    for _ in 0..PAIRS {
        // The first of each pair goes to nobody, so its turn routes
        // nothing: the ACK owed for it must go all the same. The second,
        // held back until it does, goes to the subscriber. (The first
        // pair's second is what asks for delayed ACKs.)
        waits.push(pair(&mut publisher, &mut subscriber).await);
        // Both idle again before the next pair.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    waits.sort();
    let median = waits[PAIRS / 2];
    assert!(
        median < STALLED,
        "the second of a pair waited {median:?} (median), sorted: {waits:?}"
    );
    broker.stop().await;
}

/// The kernel puts off the ACKs of a socket that has just answered what
/// it read, as ours has after its CONNACK: a client with Nagle on whose
/// first message after that got no answer waited 40 ms for its ACK
/// before its next could go (`NextAcks::Kernels`). Three fresh clients,
/// the quickest judged: a busy host may hold one back, but the kernel's
/// timer held back every one. (With `tcp_pingpong_thresh` 1, the default
/// since Linux 6.3; before, three quick replies were needed, and there
/// this passes without the call.)
#[tokio::test]
async fn a_nagle_clients_first_unanswered_message_is_acknowledged_at_once() {
    let broker = TestBroker::start(config()).await;
    let mut subscriber = subscribed(&broker).await;
    let mut waits = Vec::new();
    for i in 0..3 {
        let mut publisher = Raw::connected(broker.addr, &format!("pub{i}")).await;
        waits.push(pair(&mut publisher, &mut subscriber).await);
    }
    let quickest = *waits.iter().min().unwrap();
    assert!(
        quickest < STALLED,
        "the second message waited {quickest:?} at the least: {waits:?}"
    );
    broker.stop().await;
}
