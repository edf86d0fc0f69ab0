//! QoS 0, 1 and 2 over real TCP: what a subscriber receives is the lesser of
//! the publish QoS and the granted QoS, and QoS 2 arrives exactly once in
//! both directions of the broker.

use rumqttc::{QoS, SubscribeReasonCode};
use tern::codec::{Ack, Packet, Publish, QoS as TernQoS};
use tern::Config;

use crate::common::client::Client;
use crate::common::raw::{self, Raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{config, within, TestBroker};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

fn lesser(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) {
        a
    } else {
        b
    }
}

#[tokio::test]
async fn delivered_qos_is_the_lesser_of_publish_and_granted() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    for granted in QOS {
        let code = sub
            .subscribe(&format!("q/{}", granted as u8), granted)
            .await;
        assert_eq!(code, SubscribeReasonCode::Success(granted));
    }
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for sent in QOS {
        for granted in QOS {
            let topic = format!("q/{}", granted as u8);
            let payload = format!("sent {} granted {}", sent as u8, granted as u8);
            publisher.publish(&topic, sent, false, &payload).await;
            let got = sub.recv().await;
            assert_eq!(got.topic, topic);
            assert_eq!(got.payload, payload.as_bytes());
            assert_eq!(got.qos, lesser(sent, granted), "{payload}");
            assert!(!got.retain && !got.dup, "{got:?}");
        }
    }
    broker
        .wait_until("every flow to complete", |c| {
            c.inflight == 0 && c.queued == 0
        })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn qos2_reaches_a_client_subscriber_once() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("once/#", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("once/a", QoS::ExactlyOnce, false, "exactly once")
        .await;
    // Messages on one topic keep their order, so anything sent twice would
    // come before this marker.
    publisher
        .publish("once/a", QoS::AtLeastOnce, false, "marker")
        .await;
    let first = sub.recv().await;
    assert_eq!(first.payload, "exactly once");
    assert_eq!(first.qos, QoS::ExactlyOnce);
    assert_eq!(sub.recv().await.payload, "marker");
    broker
        .wait_until("the QoS 2 flow to complete", |c| c.inflight == 0)
        .await;
    broker.stop().await;
}

/// A publisher that resends a QoS 2 PUBLISH (DUP) before PUBREL must not
/// have it routed twice; after PUBREL the same id is a new message.
#[tokio::test]
async fn qos2_resent_by_a_publisher_is_routed_once() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("dup/#", QoS::ExactlyOnce).await;
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    let first = raw::publish("dup/a", TernQoS::ExactlyOnce, 7, b"first");
    publisher.send(&first).await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(7)))
    );
    let Packet::Publish(first) = first else {
        unreachable!("built as a PUBLISH")
    };
    let resend = Packet::Publish(Publish { dup: true, ..first });
    publisher.send(&resend).await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(7)))
    );
    publisher
        .send(&Packet::PubRel(Ack::success(raw::packet_id(7))))
        .await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubComp(Ack::success(raw::packet_id(7)))
    );
    publisher
        .send(&raw::publish("dup/a", TernQoS::AtMostOnce, 0, b"marker"))
        .await;
    publisher
        .send(&raw::publish("dup/a", TernQoS::ExactlyOnce, 7, b"second"))
        .await;
    assert_eq!(
        publisher.recv().await,
        Packet::PubRec(Ack::success(raw::packet_id(7)))
    );
    assert_eq!(sub.recv().await.payload, "first");
    assert_eq!(sub.recv().await.payload, "marker");
    assert_eq!(sub.recv().await.payload, "second");
    broker.stop().await;
}

/// The broker's side of QoS 2 towards a subscriber, step by step: the
/// message stays in flight until PUBCOMP.
#[tokio::test]
async fn qos2_to_a_raw_subscriber_is_in_flight_until_pubcomp() {
    let broker = TestBroker::start(config()).await;
    let mut sub = Raw::connected(broker.addr, "sub").await;
    sub.send(&raw::subscribe(1, "flow/#", TernQoS::ExactlyOnce))
        .await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let mut publisher = Client::connect(broker.addr, "pub").await;
    publisher
        .publish("flow/a", QoS::ExactlyOnce, false, "step")
        .await;
    let Packet::Publish(message) = sub.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(message.qos, TernQoS::ExactlyOnce);
    assert_eq!(message.payload, "step");
    let id = message.packet_id.expect("QoS 2 has a packet id");
    assert_eq!(broker.census().inflight, 1);
    sub.send(&Packet::PubRec(Ack::success(id))).await;
    assert_eq!(sub.recv().await, Packet::PubRel(Ack::success(id)));
    assert_eq!(broker.census().inflight, 1, "released, not yet complete");
    sub.send(&Packet::PubComp(Ack::success(id))).await;
    broker
        .wait_until("PUBCOMP to end the flow", |c| c.inflight == 0)
        .await;
    broker.stop().await;
}

/// QoS 1 beyond the inflight window waits in the session and is sent as
/// acknowledgements make room, in publish order.
#[tokio::test]
async fn inflight_window_refills_as_acknowledgements_arrive() {
    let broker = TestBroker::start(Config {
        inflight_messages_max: 2,
        ..config()
    })
    .await;
    let mut sub = Raw::connected(broker.addr, "sub").await;
    sub.send(&raw::subscribe(1, "win/#", TernQoS::AtLeastOnce))
        .await;
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for i in 0..5 {
        publisher
            .publish("win/a", QoS::AtLeastOnce, false, &i.to_string())
            .await;
    }
    let census = broker.census();
    assert_eq!((census.inflight, census.queued), (2, 3), "{census:#?}");
    for i in 0..5 {
        let Packet::Publish(message) = sub.recv().await else {
            panic!("expected PUBLISH")
        };
        assert_eq!(message.payload, i.to_string().as_bytes());
        let id = message.packet_id.expect("QoS 1 has a packet id");
        sub.send(&Packet::PubAck(Ack::success(id))).await;
    }
    broker
        .wait_until("every message to be acknowledged", |c| {
            c.inflight == 0 && c.queued == 0
        })
        .await;
    broker.stop().await;
}

/// A burst of QoS 1 PUBLISHes from a client slow to read its PUBACKs:
/// the broker's writes back up, its turns stop reading at the outbox's
/// bound, and once the PUBACKs are written it must read on, with no wake
/// from outside to make it. A review found a way for a turn that wrote
/// its replies at once to wait on neither read nor write (a turn that
/// began with a full outbox); this burst, of 20,000 to 2,000,000, did not
/// reach it before the fix, so it stands for the property, not that case.
#[tokio::test]
async fn a_burst_acknowledged_slowly_is_acknowledged_whole() {
    const BURST: u32 = 200_000;
    let broker = TestBroker::start(Config {
        outbound_packets_max: 8,
        ..config()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // Small, so that the broker's PUBACKs back up.
    socket.set_recv_buffer_size(2048).unwrap();
    let stream = within("TCP connect", socket.connect(broker.addr))
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let version = tern::codec::ProtocolVersion::V311;
    let mut bytes = bytes::BytesMut::new();
    let connect = Packet::Connect(raw::connect_packet("burst").into());
    tern::codec::encode(&connect, version, &mut bytes);
    for n in 0..BURST {
        let id = u16::try_from(n % 60_000 + 1).unwrap();
        let publish = raw::publish("burst/t", TernQoS::AtLeastOnce, id, b"m");
        tern::codec::encode(&publish, version, &mut bytes);
    }
    // Written while nothing is read, for as long as the broker reads.
    let sending = tokio::spawn(async move {
        writer.write_all(&bytes).await.unwrap();
        writer
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut rbuf = bytes::BytesMut::new();
    let mut acked = 0;
    while acked < BURST {
        let packet = within("the next PUBACK", async {
            loop {
                if let Some(packet) = raw::decode_buffered(&mut rbuf, version) {
                    return packet;
                }
                let n = reader.read_buf(&mut rbuf).await.unwrap();
                assert_ne!(n, 0, "the broker closed after {acked} PUBACKs");
            }
        })
        .await;
        match packet {
            Packet::ConnAck(_) => {}
            Packet::PubAck(_) => acked += 1,
            other => panic!("expected a PUBACK, got {other:?}"),
        }
    }
    drop(within("the burst written", sending).await);
    broker.stop().await;
}
