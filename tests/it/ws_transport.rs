//! MQTT over WebSocket against a broker with a WebSocket listener and a
//! plain one, over real sockets: packets cut anywhere across binary frames,
//! the upgrade's path and subprotocol, and what ends a WebSocket connection
//! (a text frame, a frame over the packet size limit, a close).

use tern::codec::{Packet, ProtocolVersion, QoS, ReasonCode};
use tern::config::{ListenerConfig, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use crate::common::raw::{self, Raw};
use crate::common::ws::{self, encode, encode_as, WsRaw, WsRead};
use crate::common::{config, within, TestBroker};

fn websockets(path: Option<&str>) -> ListenerConfig {
    ListenerConfig {
        protocol: Protocol::Websockets,
        path: path.map(str::to_owned),
        ..ListenerConfig::plain("127.0.0.1:0".parse().unwrap())
    }
}

fn plain() -> ListenerConfig {
    ListenerConfig::plain("127.0.0.1:0".parse().unwrap())
}

/// Close codes of RFC 6455, section 7.4.1.
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_TOO_BIG: u16 = 1009;

#[tokio::test]
async fn packets_cut_anywhere_across_frames_cross_between_websocket_and_tcp() {
    let (broker, addrs) =
        TestBroker::start_listeners(config(), vec![websockets(None), plain()]).await;
    let (ws_addr, tcp_addr) = (addrs[0], addrs[1]);

    // CONNECT in three frames, cut inside its fixed header and its body.
    let (socket, response) = ws::open(ws_addr, "/mqtt", "mqttv3.1, mqtt").await.unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "mqtt",
        "the server echoes the subprotocol it chose"
    );
    let mut web = WsRaw::new(socket);
    let connect = encode(&Packet::Connect(Box::new(raw::connect_packet("web"))));
    web.send_frames(&[&connect[..1], &connect[1..5], &connect[5..]])
        .await;
    assert!(matches!(web.recv().await, Packet::ConnAck(_)));

    // SUBSCRIBE and PINGREQ in one frame: both answered, in either
    // order: MQTT orders only PUBLISHes and their acknowledgements.
    let mut both = encode(&raw::subscribe(1, "to-web/#", QoS::AtLeastOnce));
    both.extend(encode(&Packet::PingReq));
    web.send_frames(&[&both]).await;
    let answers = [web.recv().await, web.recv().await];
    assert!(
        answers.iter().any(|p| matches!(p, Packet::SubAck(_))),
        "{answers:?}"
    );
    assert!(
        answers.iter().any(|p| matches!(p, Packet::PingResp)),
        "{answers:?}"
    );

    let mut tcp = Raw::connected(tcp_addr, "tcp").await;
    tcp.send(&raw::subscribe(1, "to-tcp/#", QoS::AtMostOnce))
        .await;
    assert!(matches!(tcp.recv().await, Packet::SubAck(_)));

    // TCP to WebSocket, one message larger than the broker puts in one
    // WebSocket message: the client puts it back together.
    let big = vec![b'x'; 100_000];
    tcp.send(&raw::publish("to-web/big", QoS::AtMostOnce, 0, &big))
        .await;
    tcp.send(&raw::publish("to-web/small", QoS::AtMostOnce, 0, b"hi"))
        .await;
    for (topic, payload) in [("to-web/big", &big[..]), ("to-web/small", b"hi")] {
        match web.recv().await {
            Packet::Publish(publish) => {
                assert_eq!(publish.topic.as_str(), topic);
                assert_eq!(&publish.payload[..], payload);
            }
            other => panic!("expected PUBLISH to {topic}, got {other:?}"),
        }
    }

    // WebSocket to TCP: three PUBLISHes, the second cut across two frames,
    // which also carry the first and the third.
    let first = encode(&raw::publish("to-tcp/1", QoS::AtMostOnce, 0, b"one"));
    let second = encode(&raw::publish("to-tcp/2", QoS::AtMostOnce, 0, &big));
    let third = encode(&raw::publish("to-tcp/3", QoS::AtMostOnce, 0, b"three"));
    let cut = second.len() / 2;
    let frame_a = [&first[..], &second[..cut]].concat();
    let frame_b = [&second[cut..], &third[..]].concat();
    web.send_frames(&[&frame_a, &frame_b]).await;
    for (topic, payload) in [
        ("to-tcp/1", &b"one"[..]),
        ("to-tcp/2", &big),
        ("to-tcp/3", b"three"),
    ] {
        let publish = tcp.recv_publish().await;
        assert_eq!(publish.topic.as_str(), topic);
        assert_eq!(&publish.payload[..], payload);
    }

    // A ping is answered, and a close is returned and ends the connection.
    web.send_message(Message::Ping(b"still there?"[..].into()))
        .await;
    match within("a pong", futures_util::StreamExt::next(&mut web.ws)).await {
        Some(Ok(Message::Pong(data))) => assert_eq!(&data[..], b"still there?"),
        other => panic!("expected a pong, got {other:?}"),
    }
    web.send_message(Message::Close(None)).await;
    assert!(matches!(web.read().await, WsRead::Closed(_)));
    broker.wait_connections(1).await;
    broker.stop().await;
}

#[tokio::test]
async fn the_upgrade_needs_the_listeners_path_and_the_mqtt_subprotocol() {
    let (broker, addrs) =
        TestBroker::start_listeners(config(), vec![websockets(None), websockets(Some("/ws"))])
            .await;
    let (default, custom) = (addrs[0], addrs[1]);
    assert_eq!(ws::refused_status(default, "/", "mqtt").await, 404);
    assert_eq!(ws::refused_status(default, "/ws", "mqtt").await, 404);
    assert_eq!(ws::refused_status(custom, "/mqtt", "mqtt").await, 404);
    // MQTT 5.0 [MQTT-6.0.0-3]: the client must offer "mqtt".
    assert_eq!(ws::refused_status(default, "/mqtt", "").await, 400);
    assert_eq!(
        ws::refused_status(default, "/mqtt", "mqttv3.1, wamp").await,
        400
    );

    let (_, response) = ws::open(custom, "/ws?client=1", "mqtt").await.unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "mqtt"
    );
    broker.wait_connections(1).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_text_frame_closes_the_connection_unanswered() {
    let (broker, addrs) = TestBroker::start_listeners(config(), vec![websockets(None)]).await;
    // The same CONNECT, all ASCII and so valid text, is answered in a
    // binary frame and refused in a text one [MQTT-6.0.0-1].
    let connect = encode(&Packet::Connect(Box::new(raw::connect_packet("text"))));
    let (socket, _) = ws::open(addrs[0], "/mqtt", "mqtt").await.unwrap();
    let mut binary = WsRaw::new(socket);
    binary.send_frames(&[&connect]).await;
    assert!(matches!(binary.recv().await, Packet::ConnAck(_)));
    drop(binary);

    let (socket, _) = ws::open(addrs[0], "/mqtt", "mqtt").await.unwrap();
    let mut text = WsRaw::new(socket);
    let as_text = String::from_utf8(connect).expect("this CONNECT is ASCII");
    text.send_message(Message::text(as_text)).await;
    assert_eq!(text.expect_close().await, CLOSE_UNSUPPORTED_DATA);
    broker.wait_connections(0).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_packet_size_limit_closes_before_its_payload_arrives() {
    let limited = tern::Config {
        packet_size_max_bytes: 1024,
        ..config()
    };
    let (broker, addrs) = TestBroker::start_listeners(limited, vec![websockets(None)]).await;
    let mut web = WsRaw::connected(addrs[0], "big").await;
    // A binary frame's header announcing 1 MiB, masked, and 16 bytes of
    // its payload: the broker must not wait for the rest.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend((1u64 << 20).to_be_bytes());
    header.extend([1, 2, 3, 4]);
    header.extend([0; 16]);
    web.ws.get_mut().write_all(&header).await.unwrap();
    assert_eq!(web.expect_close().await, CLOSE_TOO_BIG);
    broker.wait_connections(0).await;

    // Frames each under the limit, one message over it. A frame's payload
    // is handed on as it arrives, so the first is the start of a PUBLISH
    // the broker would take (1003 bytes), waiting for the rest.
    let mut web = WsRaw::connected(addrs[0], "fragments").await;
    let mut first = vec![0x30, 0xE8, 0x07];
    first.resize(600, 0);
    let part = vec![0u8; 600];
    let start = Frame::message(first, OpCode::Data(Data::Binary), false);
    let end = Frame::message(part, OpCode::Data(Data::Continue), true);
    web.send_message(Message::Frame(start)).await;
    web.send_message(Message::Frame(end)).await;
    assert_eq!(web.expect_close().await, CLOSE_TOO_BIG);
    broker.wait_connections(0).await;
    broker.stop().await;
}

/// A bad packet inside good frames ends the connection as over TCP: a 5.0
/// client told why (DISCONNECT 0x95, refused from the fixed header), then
/// the WebSocket closing handshake.
#[tokio::test]
async fn a_packet_over_the_limit_in_a_small_frame_gets_a_disconnect_then_a_close() {
    let limited = tern::Config {
        packet_size_max_bytes: 1024,
        ..config()
    };
    let (broker, addrs) = TestBroker::start_listeners(limited, vec![websockets(None)]).await;
    let (socket, _) = ws::open(addrs[0], "/mqtt", "mqtt").await.unwrap();
    let mut web = WsRaw::new(socket);
    web.version = ProtocolVersion::V5;
    let connect = Packet::Connect(Box::new(raw::connect_v5("v5")));
    web.send_frames(&[&encode_as(&connect, ProtocolVersion::V5)])
        .await;
    assert!(matches!(web.recv().await, Packet::ConnAck(_)));
    // A PUBLISH's fixed header announcing 2000 bytes, and no more.
    web.send_frames(&[&[0x30, 0xD0, 0x0F]]).await;
    match web.recv().await {
        Packet::Disconnect(disconnect) => {
            assert_eq!(disconnect.reason, ReasonCode::PACKET_TOO_LARGE)
        }
        other => panic!("expected DISCONNECT, got {other:?}"),
    }
    assert_eq!(web.expect_close().await, 1000, "a normal closure");
    broker.wait_connections(0).await;
    broker.stop().await;
}

#[tokio::test]
async fn the_connect_timeout_covers_the_http_upgrade() {
    let quick = tern::Config {
        connect_timeout_ms: 300,
        ..config()
    };
    let (broker, addrs) = TestBroker::start_listeners(quick, vec![websockets(None)]).await;
    let mut stream = TcpStream::connect(addrs[0]).await.unwrap();
    // Half a request, then nothing.
    stream
        .write_all(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = within(
        "the broker to give up on the upgrade",
        stream.read_to_end(&mut rest),
    )
    .await;
    assert!(
        matches!(read, Ok(0)) || read.is_err(),
        "expected a close, got {read:?} and {rest:?}"
    );
    broker.wait_connections(0).await;
    broker.stop().await;
}
