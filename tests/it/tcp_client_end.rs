//! A client that ends the connection itself, with a FIN after its last
//! packets or with DISCONNECT, still reads the replies to what it sent
//! before, as mosquitto's clients do: a half-closed socket can still read.
//! Until 2026-12-03 tern routed such a client's last QoS 1 PUBLISH but
//! dropped its PUBACK, and its own copy, with the connection.

use bytes::BytesMut;
use tern::codec::{self, Packet, QoS};

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

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
