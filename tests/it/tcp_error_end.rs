//! A connection that the broker ends on the client's error (issue 12, row
//! 12): the client reads everything that was answered before the error,
//! then the DISCONNECT saying why, then an orderly close, never a reset
//! that would throw away what it had not read yet.

use bytes::BytesMut;
use tern::codec::{self, Packet, ProtocolVersion, QoS, ReasonCode};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

#[tokio::test]
async fn replies_before_an_error_reach_the_client_before_its_disconnect() {
    let broker = TestBroker::start(Config {
        receive_maximum: 10,
        ..config()
    })
    .await;
    let (mut client, _) = Raw::connected_v5(broker.addr, "eager", vec![]).await;
    // Twelve QoS 2 PUBLISHes in one write, so that they come in one read:
    // ten are answered, the eleventh is over the Receive Maximum, and the
    // twelfth is never read.
    let mut burst = BytesMut::new();
    for id in 1..=12 {
        let publish = raw::publish("q/2", QoS::ExactlyOnce, id, b"x");
        codec::encode(&publish, ProtocolVersion::V5, &mut burst);
    }
    client.send_bytes(&burst).await;
    let (packets, closed) = client.read_to_close().await;
    let kinds: Vec<&str> = packets.iter().map(Packet::kind).collect();
    let mut expected = vec!["PUBREC"; 10];
    expected.push("DISCONNECT");
    assert_eq!(kinds, expected);
    match packets.last() {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED),
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    closed.expect("an orderly close, not a reset");
    broker.stop().await;
}
