//! A client that ends the connection itself, with a FIN after its last
//! packets or with DISCONNECT, still reads the replies to what it sent
//! before, as mosquitto's clients do: a half-closed socket can still read.
//! Until 2026-12-03 tern routed such a client's last QoS 1 PUBLISH but
//! dropped its PUBACK, and its own copy, with the connection.

use bytes::BytesMut;
use tern::codec::{self, Packet, QoS};

use crate::common::binary::Binary;
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};
use crate::tcp_overlap;

/// The kinds of what the broker sends until it closes, with the packet
/// ids of PUBACKs and PUBLISHes; panics on a reset.
async fn kinds_to_close(client: Raw) -> Vec<(&'static str, u16)> {
    let (packets, closed) = client.read_to_close().await;
    closed.expect("an orderly close, not a reset");
    let id = |packet: &Packet| match packet {
        Packet::PubAck(ack) => ack.packet_id.get(),
        Packet::Publish(publish) => publish.packet_id.map_or(0, |id| id.get()),
        _ => 0,
    };
    packets.iter().map(|p| (p.kind(), id(p))).collect()
}

/// A client subscribed to its own topic publishes to it at QoS 1 and
/// half-closes at once, as a script piping into a socket does.
#[tokio::test]
async fn a_client_that_half_closes_gets_the_puback_of_its_last_publish() {
    let broker = TestBroker::start(config()).await;
    let mut client = Raw::connected(broker.addr, "half-closed").await;
    client
        .send(&raw::subscribe(1, "own/t", QoS::AtLeastOnce))
        .await;
    assert!(matches!(client.recv().await, Packet::SubAck(_)));
    client
        .send(&raw::publish("own/t", QoS::AtLeastOnce, 7, b"last"))
        .await;
    client.half_close().await;
    let kinds = kinds_to_close(client).await;
    assert!(kinds.contains(&("PUBACK", 7)), "got {kinds:?}");
    assert!(
        kinds.iter().any(|(kind, _)| *kind == "PUBLISH"),
        "its own copy: got {kinds:?}"
    );
    broker.stop().await;
}

/// QoS 1 PUBLISHes and DISCONNECT in one write: every PUBLISH before the
/// DISCONNECT is answered.
#[tokio::test]
async fn publishes_before_a_disconnect_are_acknowledged() {
    let broker = TestBroker::start(config()).await;
    let mut client = Raw::connected(broker.addr, "leaving").await;
    let mut burst = BytesMut::new();
    for id in 1..=3 {
        let publish = raw::publish("leaving/t", QoS::AtLeastOnce, id, b"x");
        codec::encode(&publish, codec::ProtocolVersion::V311, &mut burst);
    }
    codec::encode(&raw::disconnect(), codec::ProtocolVersion::V311, &mut burst);
    client.send_bytes(&burst).await;
    let kinds = kinds_to_close(client).await;
    assert_eq!(kinds, [("PUBACK", 1), ("PUBACK", 2), ("PUBACK", 3)]);
    broker.stop().await;
}

/// Two QoS 1 PUBLISHes to a topic that 2^14 of one subscriber's filters
/// match, and a FIN, in one write: each PUBLISH's walk takes several
/// holds of the lock, with a turn of the connection between them, and the
/// FIN is read in one of those turns. Until 2026-12-04 that end dropped the
/// first's PUBACK (its route went on without it) and the second PUBLISH
/// (it waited behind the route). Three publishers, as the FIN was not read
/// mid-route in every turn.
#[tokio::test]
async fn a_half_close_read_mid_fan_out_leaves_the_fan_out_and_what_followed_answered() {
    let broker = TestBroker::start(config()).await;
    let mut wild = Raw::connected(broker.addr, "wild").await;
    tcp_overlap::subscribe_all(&mut wild, tcp_overlap::overlapping()).await;
    let topic = tcp_overlap::topic();
    for round in 0..3 {
        let mut publisher = Raw::connected(broker.addr, &format!("p{round}")).await;
        let mut burst = BytesMut::new();
        for id in 1..=2 {
            let publish = raw::publish(&topic, QoS::AtLeastOnce, id, b"x");
            codec::encode(&publish, codec::ProtocolVersion::V311, &mut burst);
        }
        publisher.send_bytes(&burst).await;
        publisher.half_close().await;
        let kinds = kinds_to_close(publisher).await;
        assert_eq!(kinds, [("PUBACK", 1), ("PUBACK", 2)], "round {round}");
        for _ in 1..=2 {
            assert_eq!(wild.recv_publish().await.topic.as_str(), topic);
        }
    }
    wild.expect_silence().await;
    broker.stop().await;
}

/// With a data store and `durability = "sync"` (the default) a PUBACK waits
/// for the commit of the message it acknowledges, here queued for an
/// offline session. Until 2026-12-04 the end's one try to write came
/// before that commit, and the half-closed client got no PUBACK.
#[tokio::test]
async fn with_sync_durability_a_client_that_half_closes_gets_its_puback() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = format!("data_dir = {:?}\n", dir.path().display().to_string());
    let tern = Binary::start(&config).await;
    Raw::subscribe_then_leave(tern.addr, "keeper", "k/#").await;
    for id in 1..=3 {
        let mut publisher = Raw::connected(tern.addr, "publisher").await;
        let payload = id.to_string();
        publisher
            .send(&raw::publish(
                "k/n",
                QoS::AtLeastOnce,
                id,
                payload.as_bytes(),
            ))
            .await;
        publisher.half_close().await;
        let kinds = kinds_to_close(publisher).await;
        assert_eq!(kinds, [("PUBACK", id)]);
    }
    let kept = Raw::numbers_kept_for(tern.addr, "keeper").await;
    assert_eq!(kept, [1, 2, 3].into());
}
