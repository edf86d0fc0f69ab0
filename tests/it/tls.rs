//! MQTT over TLS on real sockets: a client that trusts the broker's CA
//! publishes and receives; one that trusts another CA, or speaks plain
//! MQTT to the TLS port, fails without harm to the broker; a handshake
//! left unfinished is closed at the connect timeout; a burst to a client
//! slow to read arrives whole; a client that says DISCONNECT and resets
//! with our bytes unread leaves no will.

use tern::codec::{ConnectCode, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::certs::{Authority, Files};
use crate::common::raw;
use crate::common::tls::{self, client_config, TlsClient};
use crate::common::{config, within, TestBroker};

#[tokio::test]
async fn a_client_that_trusts_the_ca_publishes_and_receives_over_tls() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let broker = tls::broker(config(), &tls::listener(&files, &ca.server())).await;
    let trusting = client_config(&ca, None);

    let (mut sub, connack) =
        TlsClient::connect(broker.addr, trusting.clone(), raw::connect_v5("sub"))
            .await
            .expect("a TLS connection");
    assert_eq!(connack.code, ConnectCode::Accepted);
    sub.send(&raw::subscribe(1, "t/#", QoS::AtLeastOnce))
        .await
        .unwrap();
    assert!(matches!(sub.recv().await, Packet::SubAck(_)));

    let (mut publisher, connack) =
        TlsClient::connect(broker.addr, trusting, raw::connect_packet("pub"))
            .await
            .expect("a TLS connection");
    assert_eq!(connack.code, ConnectCode::Accepted);
    // Larger than one TLS record (16 KiB), so MQTT's bytes are split.
    let payload = vec![7u8; 40_000];
    publisher
        .send(&raw::publish("t/a", QoS::AtLeastOnce, 1, &payload))
        .await
        .unwrap();
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    match sub.recv().await {
        Packet::Publish(publish) => {
            assert_eq!(publish.topic.as_str(), "t/a");
            assert_eq!(&publish.payload[..], &payload[..]);
        }
        other => panic!("expected the PUBLISH, got {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_fails_and_the_broker_stays_fine() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let broker = tls::broker(config(), &tls::listener(&files, &ca.server())).await;
    let stranger = Authority::new("another CA");
    let refused = TlsClient::open(broker.addr, client_config(&stranger, None)).await;
    let error = refused.err().expect("the handshake fails");
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");

    // Plain MQTT on the TLS port is not a ClientHello: a TLS alert, no
    // CONNACK, and the close.
    let mut plain = TcpStream::connect(broker.addr).await.unwrap();
    let mut connect = bytes::BytesMut::new();
    let packet = Packet::Connect(raw::connect_packet("plain").into());
    tern::codec::encode(&packet, tern::codec::ProtocolVersion::V311, &mut connect);
    plain.write_all(&connect).await.unwrap();
    let mut answer = Vec::new();
    within("the close", plain.read_to_end(&mut answer))
        .await
        .unwrap();
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:?}");

    broker.wait_connections(0).await;
    let (_client, connack) = TlsClient::connect(
        broker.addr,
        client_config(&ca, None),
        raw::connect_packet("ok"),
    )
    .await
    .expect("a TLS connection after the failures");
    assert_eq!(connack.code, ConnectCode::Accepted);
    broker.stop().await;
}

/// Nothing, or the start of a ClientHello and then nothing: either way
/// the connection is closed when the connect timeout runs out, as one
/// that never sends CONNECT is.
#[tokio::test]
async fn a_handshake_that_never_finishes_is_closed_at_the_connect_timeout() {
    let (ca, files) = (Authority::new("test CA"), Files::new());
    let config = tern::Config {
        connect_timeout_ms: 300,
        ..config()
    };
    let broker = tls::broker(config, &tls::listener(&files, &ca.server())).await;
    let mut silent = TcpStream::connect(broker.addr).await.unwrap();
    let mut halfway = TcpStream::connect(broker.addr).await.unwrap();
    // A handshake record of 512 bytes announced, 9 of them sent.
    let start = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0,
    ];
    halfway.write_all(&start).await.unwrap();
    broker
        .wait_until("both connections", |c| c.connections == 2)
        .await;
    for stream in [&mut silent, &mut halfway] {
        let mut buf = [0u8; 64];
        let read = within("the broker to close", stream.read(&mut buf)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    broker.wait_connections(0).await;
    broker.stop().await;
}

/// A burst to a TLS subscriber slow to read. When the socket is full,
/// TLS takes our bytes and keeps them as records not yet sent
/// (tokio-rustls's `poll_write` says they were written), so the end of
/// the burst waits on a flush: with none, on the broker's next write to
/// the subscriber, which one waiting for the burst's end never causes.
#[tokio::test]
async fn a_burst_to_a_tls_subscriber_slow_to_read_arrives_whole() {
    const MESSAGES: usize = 200;
    const SIZE: usize = 16_000;
    let filling = Filling::start(MESSAGES, SIZE).await;
    let mut sub = filling.slow_subscriber(raw::connect_packet("sub")).await;
    let mut publisher = filling.client("pub").await;
    publish_acked(&mut publisher, MESSAGES, SIZE).await;
    // Read slower than the broker writes, so that its socket stays full.
    for n in 0..MESSAGES {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        match sub.read().await {
            Ok(Some(Packet::Publish(publish))) => assert_eq!(publish.payload.len(), SIZE),
            other => panic!("message {n} of {MESSAGES}: {other:?}"),
        }
    }
    filling.broker.stop().await;
}

/// A TLS client that says DISCONNECT and closes with the broker's bytes
/// unread: its socket answers them with a reset. The broker's TLS may
/// still hold records for it, which a read sends first (`SentThrough`);
/// that send fails on the reset, and the DISCONNECT, read before the
/// reset, must still be found, or the will of a client that said goodbye
/// is sent.
#[tokio::test]
async fn a_tls_client_that_disconnects_with_our_bytes_unread_leaves_no_will() {
    const MESSAGES: usize = 64;
    const SIZE: usize = 16_000;
    let filling = Filling::start(MESSAGES, SIZE).await;
    let mut watcher = filling.client("watcher").await;
    watcher
        .send(&raw::subscribe(1, "will/#", QoS::AtLeastOnce))
        .await
        .unwrap();
    assert!(matches!(watcher.recv().await, Packet::SubAck(_)));
    let mut connect = raw::connect_packet("leaving");
    connect.will = Some(raw::will("will/leaving", "gone", QoS::AtLeastOnce, false));
    let mut leaving = filling.slow_subscriber(connect).await;
    let mut publisher = filling.client("pub").await;
    publish_acked(&mut publisher, MESSAGES, SIZE).await;
    leaving.send(&raw::disconnect()).await.unwrap();
    leaving.reset();
    filling.broker.wait_connections(2).await;

    publisher
        .send(&raw::publish("will/marker", QoS::AtLeastOnce, 1, b"marker"))
        .await
        .unwrap();
    match watcher.recv().await {
        Packet::Publish(publish) => assert_eq!(publish.topic.as_str(), "will/marker", "no will"),
        other => panic!("expected the marker, got {other:?}"),
    }
    filling.broker.stop().await;
}

/// A TLS broker whose sockets fill quickly, for a client slow to read:
/// they take the listener's small send buffer (on Linux; with the default,
/// which grows to megabytes, a write rarely finds the socket full at the
/// end of a burst), and its limits keep `messages` of `size` bytes.
struct Filling {
    broker: TestBroker,
    trusting: std::sync::Arc<rustls::ClientConfig>,
    _files: Files,
}

impl Filling {
    async fn start(messages: usize, size: usize) -> Filling {
        let (ca, files) = (Authority::new("test CA"), Files::new());
        let config = tern::Config {
            outbound_packets_max: messages,
            outbound_bytes_max: 2 * messages * size,
            queued_messages_max: messages,
            queued_bytes_max: 2 * messages * size,
            ..config()
        };
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(8192).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let bound = socket.listen(64).unwrap();
        let broker = tls::broker_on(config, &tls::listener(&files, &ca.server()), bound).await;
        Filling {
            broker,
            trusting: client_config(&ca, None),
            _files: files,
        }
    }

    async fn client(&self, client_id: &str) -> TlsClient {
        let connect = raw::connect_packet(client_id);
        let (client, _) = TlsClient::connect(self.broker.addr, self.trusting.clone(), connect)
            .await
            .expect("a TLS connection");
        client
    }

    /// A client with a small receive window, subscribed to `t` at QoS 0.
    async fn slow_subscriber(&self, connect: tern::codec::Connect) -> TlsClient {
        let (mut sub, _) =
            TlsClient::connect_small_window(self.broker.addr, self.trusting.clone(), connect)
                .await
                .expect("a TLS connection");
        sub.send(&raw::subscribe(1, "t", QoS::AtMostOnce))
            .await
            .unwrap();
        assert!(matches!(sub.recv().await, Packet::SubAck(_)));
        sub
    }
}

/// `messages` QoS 1 PUBLISHes of `size` bytes to `t`, each acknowledged
/// (routed to the subscribers' queues or sockets) before the next.
async fn publish_acked(publisher: &mut TlsClient, messages: usize, size: usize) {
    let payload = vec![7u8; size];
    for id in 1..=messages {
        let id = u16::try_from(id).unwrap();
        publisher
            .send(&raw::publish("t", QoS::AtLeastOnce, id, &payload))
            .await
            .unwrap();
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
}
