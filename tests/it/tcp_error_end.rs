//! A connection that the broker ends on the client's error (issue 12, row
//! 12): the client reads everything that was answered before the error,
//! then the DISCONNECT saying why, then an orderly close, never a reset
//! that would throw away what it had not read yet.

use bytes::BytesMut;
use tern::codec::{self, DecodeOptions, Packet, ProtocolVersion, QoS, ReasonCode};
use tern::Config;
use tokio::io::AsyncReadExt;

use crate::common::raw::{self, Raw};
use crate::common::{config, within, TestBroker};

/// Everything the broker sends until it closes, and how it closed: `Ok`
/// for an orderly close (EOF), the error for a reset.
async fn read_to_close(raw: Raw) -> (Vec<Packet>, std::io::Result<()>) {
    let (mut stream, mut buf) = raw.into_parts();
    let options = DecodeOptions {
        version: ProtocolVersion::V5,
        ..DecodeOptions::default()
    };
    let mut packets = Vec::new();
    let closed = loop {
        while let Some(packet) = codec::decode(&mut buf, &options).expect("well-formed") {
            packets.push(packet);
        }
        let mut chunk = BytesMut::with_capacity(4096);
        match within("the broker's close", stream.read_buf(&mut chunk)).await {
            Ok(0) => break Ok(()),
            Ok(_) => buf.extend_from_slice(&chunk),
            Err(error) => break Err(error),
        }
    };
    (packets, closed)
}

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
    let (packets, closed) = read_to_close(client).await;
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
