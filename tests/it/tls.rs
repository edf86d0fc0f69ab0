//! MQTT over TLS on real sockets: a client that trusts the broker's CA
//! publishes and receives; one that trusts another CA, or speaks plain
//! MQTT to the TLS port, fails without harm to the broker; a handshake
//! left unfinished is closed at the connect timeout.

use tern::codec::{ConnectCode, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::certs::{Authority, Files};
use crate::common::raw;
use crate::common::tls::{self, client_config, TlsClient};
use crate::common::{config, within};

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
