//! `memory_max_bytes`, against the real binary: only it counts its heap
//! (a counting global allocator), and a test process holds many brokers.
//! Over the limit, new QoS 1/2 messages are refused (5.0: 0x97; 3.1.1: not
//! acknowledged, so the client keeps them), and new sessions are refused;
//! a session that resumes is let in, and once it has taken its queue away
//! the broker accepts again.

use std::time::Duration;

use tern::codec::{ConnectCode, Packet, QoS, ReasonCode};

use crate::common::binary::Binary;
use crate::common::raw::{self, Raw};
use crate::common::within;

const PAYLOAD_BYTES: usize = 512 * 1024;

/// Publishes to `fill/x` at QoS 1 until the broker refuses one; how many
/// it took.
async fn fill(publisher: &mut Raw) -> u16 {
    let payload = vec![b'm'; PAYLOAD_BYTES];
    for id in 1..=200 {
        publisher
            .send(&raw::publish("fill/x", QoS::AtLeastOnce, id, &payload))
            .await;
        let Packet::PubAck(ack) = publisher.recv().await else {
            panic!("expected PUBACK");
        };
        if ack.reason == ReasonCode::QUOTA_EXCEEDED {
            return id - 1;
        }
        assert_eq!(ack.reason, ReasonCode::SUCCESS, "{ack:?}");
    }
    panic!("200 messages of 512 KiB queued under a 16 MiB limit");
}

#[tokio::test]
async fn over_the_memory_limit_new_messages_and_sessions_are_refused() {
    let tern = Binary::start("memory_max_bytes = 16777216\nsys_interval_secs = 0").await;
    // A persistent session that goes away, leaving a queue to fill.
    let mut sink_connect = raw::connect_packet("sink");
    sink_connect.clean_session = false;
    let (mut sink, _) = Raw::connect(tern.addr, sink_connect.clone()).await;
    sink.send(&raw::subscribe(1, "fill/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(sink.recv().await, Packet::SubAck(_)));
    sink.send(&raw::disconnect()).await;
    sink.expect_closed().await;

    let (mut publisher, _) = Raw::connected_v5(tern.addr, "publisher", vec![]).await;
    let queued = fill(&mut publisher).await;
    assert!(
        (8..=40).contains(&queued),
        "{queued} messages of 512 KiB queued"
    );

    // New sessions are refused, in each version's words.
    let (_, connack) = Raw::connect(tern.addr, raw::connect_v5("newcomer5")).await;
    assert_eq!(connack.code, ConnectCode::QuotaExceeded);
    let (_, connack) = Raw::connect(tern.addr, raw::connect_packet("newcomer")).await;
    assert_eq!(connack.code, ConnectCode::ServerUnavailable);

    // The resumed session is let in and takes its queue, every message.
    let (mut sink, connack) = Raw::connect(tern.addr, sink_connect).await;
    assert!(connack.session_present);
    for _ in 0..queued {
        let publish = sink.recv_publish().await;
        assert_eq!(publish.payload.len(), PAYLOAD_BYTES);
        let id = publish.packet_id.expect("QoS 1").get();
        sink.send(&raw::puback(id)).await;
    }
    sink.send(&Packet::PingReq).await;
    assert_eq!(sink.recv().await, Packet::PingResp);

    // Under the limit again, once the buffers that carried the queue are
    // let go too: accepted, and acknowledged. (The publisher, quiet since
    // its last message, once kept its read buffer, 15 MB, until its next
    // wake; new sessions were refused for as long.)
    let mut newcomer = within("a CONNECT accepted again", async {
        for _ in 0..100 {
            let connect = raw::connect_packet("newcomer");
            let (newcomer, connack) = Raw::connect(tern.addr, connect).await;
            if connack.code == ConnectCode::Accepted {
                return newcomer;
            }
            assert_eq!(connack.code, ConnectCode::ServerUnavailable);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("new sessions still refused 5 s after the queue was drained");
    })
    .await;
    newcomer
        .send(&raw::publish("fill/y", QoS::AtLeastOnce, 7, b"small"))
        .await;
    assert_eq!(newcomer.recv().await, raw::puback(7));
}

#[tokio::test]
async fn over_the_memory_limit_a_3_1_1_message_is_not_acknowledged() {
    let tern = Binary::start("memory_max_bytes = 16777216\nsys_interval_secs = 1").await;
    let mut watcher = Raw::connected(tern.addr, "watcher").await;
    let counted = "$SYS/broker/publish/messages/dropped/memory full";
    watcher
        .send(&raw::subscribe(1, counted, QoS::AtMostOnce))
        .await;
    assert!(matches!(watcher.recv().await, Packet::SubAck(_)));
    let mut sink_connect = raw::connect_packet("sink");
    sink_connect.clean_session = false;
    let (mut sink, _) = Raw::connect(tern.addr, sink_connect).await;
    sink.send(&raw::subscribe(1, "fill/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(sink.recv().await, Packet::SubAck(_)));
    sink.send(&raw::disconnect()).await;
    sink.expect_closed().await;
    // Connected before the limit is reached: new sessions are refused after.
    let mut old = Raw::connected(tern.addr, "old").await;
    let (mut filler, _) = Raw::connected_v5(tern.addr, "filler", vec![]).await;
    fill(&mut filler).await;

    old.send(&raw::publish("fill/z", QoS::AtLeastOnce, 9, b"refused"))
        .await;
    // No PUBACK: an ack would promise a message the broker did not keep.
    // What would come is the PUBACK at once, so silence for QUIET is it.
    old.expect_silence().await;
    // Counted in the census: the one 0x97 to `filler`, and this one.
    within("the drops counted under $SYS", async {
        while watcher.recv_publish().await.payload.as_ref() != b"2" {}
    })
    .await;
}

/// Row 5 of the robustness issue: a PUBLISH of a million small User
/// Properties took fifteen times its size decoded, and that again for each
/// session it was queued for. Kept as their wire bytes, shared by every
/// copy, four such messages for four offline sessions fit in a limit that
/// the old way overran by far (about 45 MB a message).
#[tokio::test]
async fn user_properties_cost_their_wire_bytes_once_however_many_sessions() {
    use tern::codec::Property;
    const SESSIONS: usize = 4;
    const PROPERTIES: usize = 200_000;
    let tern = Binary::start("memory_max_bytes = 33554432\nsys_interval_secs = 0").await;
    let connects: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let mut connect = raw::connect_packet(&format!("away-{i}"));
            connect.clean_session = false;
            connect
        })
        .collect();
    for connect in &connects {
        let (mut client, _) = Raw::connect(tern.addr, connect.clone()).await;
        client
            .send(&raw::subscribe(1, "props/#", QoS::AtLeastOnce))
            .await;
        assert!(matches!(client.recv().await, Packet::SubAck(_)));
        client.send(&raw::disconnect()).await;
        client.expect_closed().await;
    }
    let (mut publisher, _) = Raw::connected_v5(tern.addr, "publisher", vec![]).await;
    let props = vec![Property::UserProperty(String::new(), String::new()); PROPERTIES];
    for id in 1..=4 {
        let publish = raw::publish_with("props/x", QoS::AtLeastOnce, id, b"p", props.clone());
        publisher.send(&publish).await;
        assert_eq!(publisher.recv().await, raw::puback(id), "message {id}");
    }
    // Every session gets every message with every property, in 3.1.1
    // without them: the count is checked through a 5.0 session's eyes.
    let mut v5 = raw::connect_v5("away-0");
    v5.clean_session = false;
    v5.properties = vec![Property::SessionExpiryInterval(60)].into();
    let (mut reader, connack) = Raw::connect(tern.addr, v5).await;
    assert!(connack.session_present);
    for _ in 0..4 {
        let publish = reader.recv_publish().await;
        assert_eq!(publish.properties.user_properties().count(), PROPERTIES);
        reader
            .send(&raw::puback(publish.packet_id.expect("QoS 1").get()))
            .await;
    }
}
