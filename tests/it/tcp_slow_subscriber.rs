//! A subscriber that never reads, over real TCP: it fills its own outbound
//! queue and loses its own QoS 0 messages (counted in the census), while the
//! publisher and a fast subscriber carry on, and QoS 1 for it stays within
//! the inflight and queue limits.

use bytes::BytesMut;
use rumqttc::QoS;
use tern::codec::{self, Packet, ProtocolVersion, QoS as TernQoS};
use tern::Config;
use tokio::net::{TcpListener, TcpSocket};

use crate::common::client::Client;
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

const OUTBOUND_MAX: usize = 16;
const INFLIGHT_MAX: usize = 5;
const QUEUED_MAX: usize = 20;

/// The flood is sent in batches of this many 1 KB messages, one write each.
const FLOOD_BATCH: usize = 100;
/// A bound on the flood: 20 MB, far more than the socket buffers between
/// the broker and a client that does not read.
const FLOOD_BATCHES_MAX: usize = 200;

fn limits() -> Config {
    Config {
        outbound_packets_max: OUTBOUND_MAX,
        inflight_messages_max: INFLIGHT_MAX,
        queued_messages_max: QUEUED_MAX,
        ..config()
    }
}

/// Connects a subscriber to `s/#` (QoS 0) and `q/#` (QoS 1) that will not
/// read another byte.
async fn slow_subscriber(broker: &TestBroker) -> Raw {
    let mut slow = Raw::open_small_window(broker.addr).await;
    slow.send(&Packet::Connect(raw::connect_packet("slow").into()))
        .await;
    slow.recv_connack().await;
    slow.send(&raw::subscribe(1, "s/#", TernQoS::AtMostOnce))
        .await;
    slow.send(&raw::subscribe(2, "q/#", TernQoS::AtLeastOnce))
        .await;
    for _ in 0..2 {
        assert!(matches!(slow.recv().await, Packet::SubAck(_)));
    }
    slow
}

/// A batch of QoS 0 messages to `s/flood`, encoded for one write.
fn flood_batch() -> BytesMut {
    let message = raw::publish("s/flood", TernQoS::AtMostOnce, 0, &[b'x'; 1024]);
    let mut batch = BytesMut::new();
    for _ in 0..FLOOD_BATCH {
        codec::encode(&message, ProtocolVersion::V311, &mut batch);
    }
    batch
}

/// A listener whose connections keep a small send buffer: accepted sockets
/// inherit it, so the kernel's share of a stuck subscriber's backlog stays
/// small whatever this machine's TCP autotuning allows.
fn listener_with_small_send_buffer() -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_send_buffer_size(16 * 1024)
        .expect("SO_SNDBUF can be set");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind 127.0.0.1:0");
    socket.listen(64).expect("listen")
}

/// Floods until a whole batch is dropped for the slow subscriber: then its
/// socket is full and its writes are stuck, not merely behind a burst.
/// Each batch ends with a QoS 1 message to no one, whose PUBACK says the
/// batch was routed. Returns the drops so far.
async fn flood_until_stuck(broker: &TestBroker, publisher: &mut Raw) -> u64 {
    let batch = flood_batch();
    let mut dropped = 0;
    for id in 1..=FLOOD_BATCHES_MAX as u16 {
        publisher.send_bytes(&batch).await;
        publisher
            .send(&raw::publish("nobody", TernQoS::AtLeastOnce, id, b"routed"))
            .await;
        assert_eq!(publisher.recv().await, raw::puback(id));
        let now = broker.census().dropped.outbound_full;
        if now - dropped == FLOOD_BATCH as u64 {
            return now;
        }
        dropped = now;
    }
    panic!(
        "the slow subscriber never got stuck: {:#?}",
        broker.census()
    );
}

#[tokio::test]
async fn slow_subscriber_loses_only_its_own_messages() {
    let broker = TestBroker::start_on(limits(), listener_with_small_send_buffer()).await;
    let _slow = slow_subscriber(&broker).await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    let dropped = flood_until_stuck(&broker, &mut publisher).await;

    // The flood goes on, and a fast subscriber gets each of its own
    // messages, sent after a batch, while the slow one keeps dropping. The
    // kernel may yet take a little of the slow one's backlog, so the drops
    // are watched until they grow rather than counted per message.
    let mut fast = Client::connect(broker.addr, "fast").await;
    fast.subscribe("s/fast", QoS::AtMostOnce).await;
    let batch = flood_batch();
    let mut round = 0;
    while round < 10 || broker.census().dropped.outbound_full == dropped {
        assert!(round < FLOOD_BATCHES_MAX, "{:#?}", broker.census());
        publisher.send_bytes(&batch).await;
        let payload = format!("fast {round}");
        let message = raw::publish("s/fast", TernQoS::AtMostOnce, 0, payload.as_bytes());
        publisher.send(&message).await;
        assert_eq!(fast.recv().await.payload, payload.as_bytes());
        round += 1;
    }

    // QoS 1 for the slow subscriber fills its inflight window, then its
    // queue, then is dropped; the publisher is acknowledged throughout.
    for id in 1..=50 {
        let message = raw::publish("q/x", TernQoS::AtLeastOnce, id, b"q");
        publisher.send(&message).await;
        assert_eq!(publisher.recv().await, raw::puback(id));
    }
    let census = broker.census();
    assert_eq!(census.inflight, INFLIGHT_MAX, "{census:#?}");
    assert_eq!(census.queued, QUEUED_MAX, "{census:#?}");
    assert_eq!(
        census.dropped.queue_full,
        (50 - INFLIGHT_MAX - QUEUED_MAX) as u64
    );
    broker.stop().await;
}

/// A takeover must end the old connection even when its writes are stuck
/// behind a client that does not read; otherwise its task and socket live on
/// with no session: the leak (README, "Where it comes from"). Reading the old socket
/// would unstick it, so only the census can show this.
#[tokio::test]
async fn takeover_ends_a_connection_whose_writes_are_stuck() {
    let broker = TestBroker::start_on(limits(), listener_with_small_send_buffer()).await;
    let _slow = slow_subscriber(&broker).await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    flood_until_stuck(&broker, &mut publisher).await;
    let mut twin = Raw::connected(broker.addr, "slow").await;
    let census = broker.wait_connections(2).await;
    assert_eq!(census.sessions_connected, 2, "{census:#?}");
    twin.send(&Packet::PingReq).await;
    assert_eq!(twin.recv().await, Packet::PingResp);
    broker.stop().await;
}

/// The outbound queue is bounded in bytes as well as in packets (issue 12,
/// row 6): large QoS 0 messages for a subscriber that does not read are
/// shed once `outbound_bytes_max` of them wait, long before the packet
/// limit is reached.
#[tokio::test]
async fn a_slow_subscribers_queue_is_bounded_in_bytes_too() {
    let config = Config {
        outbound_packets_max: 1000,
        outbound_bytes_max: 256 * 1024,
        ..limits()
    };
    let broker = TestBroker::start_on(config, listener_with_small_send_buffer()).await;
    let _slow = slow_subscriber(&broker).await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    let message = raw::publish("s/big", TernQoS::AtMostOnce, 0, &[b'x'; 64 * 1024]);
    // 6.4 MB: far more than 256 KB queued, a write buffer of as much, and
    // the small socket buffers between the broker and the subscriber.
    for _ in 0..100 {
        publisher.send(&message).await;
    }
    publisher
        .send(&raw::publish("nobody", TernQoS::AtLeastOnce, 1, b"routed"))
        .await;
    assert_eq!(publisher.recv().await, raw::puback(1));
    let census = broker.census();
    assert!(
        census.dropped.outbound_full >= 80,
        "only {} of 100 dropped: {census:#?}",
        census.dropped.outbound_full
    );
    broker.stop().await;
}
