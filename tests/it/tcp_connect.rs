//! The CONNECT rules over real TCP: which client ids and protocol levels are
//! accepted, and that a refusal is a CONNACK with its code followed by the
//! close.

use tern::codec::{ConnAck, ConnectCode, Packet};
use tern::Config;

use crate::common::client::{self, Client};
use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Asserts a refusal: a CONNACK with `code` and no session, then the close.
async fn assert_refused(raw: &mut Raw, connack: ConnAck, code: ConnectCode) {
    assert_eq!(
        connack,
        ConnAck {
            session_present: false,
            code,
            properties: Default::default(),
        }
    );
    raw.expect_closed().await;
}

/// A CONNECT laid out by hand, for protocol names and levels our encoder
/// will not produce.
fn connect_bytes(name: &str, level: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    // Clean session, keepalive 10 s, client id "x".
    body.extend_from_slice(&[level, 0x02, 0x00, 0x0a, 0x00, 0x01, b'x']);
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend_from_slice(&body);
    packet
}

#[tokio::test]
async fn empty_client_id_with_clean_session_is_given_one() {
    let broker = TestBroker::start(config()).await;
    let mut first = Raw::connected(broker.addr, "").await;
    let mut second = Raw::connected(broker.addr, "").await;
    let (_third, connack) = Client::connect_with(client::options(broker.addr, "")).await;
    assert_eq!(connack.code, rumqttc::ConnectReturnCode::Success);
    assert!(!connack.session_present);
    // Each got an id of its own: none took over another.
    let census = broker.census();
    assert_eq!((census.connections, census.sessions_connected), (3, 3));
    for raw in [&mut first, &mut second] {
        raw.send(&Packet::PingReq).await;
        assert_eq!(raw.recv().await, Packet::PingResp);
    }
    broker.stop().await;
}

#[tokio::test]
async fn empty_client_id_without_clean_session_is_rejected() {
    let broker = TestBroker::start(config()).await;
    let mut connect = raw::connect_packet("");
    connect.clean_session = false;
    let (mut raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_refused(&mut raw, connack, ConnectCode::IdentifierRejected).await;
    let census = broker.wait_connections(0).await;
    assert_eq!(census.sessions_connected + census.sessions_offline, 0);
    broker.stop().await;
}

#[tokio::test]
async fn protocol_levels_3_and_6_are_refused_with_code_1() {
    let broker = TestBroker::start(config()).await;
    for (name, level) in [("MQIsdp", 3), ("MQTT", 3), ("MQTT", 6)] {
        let mut raw = Raw::open(broker.addr).await;
        raw.send_bytes(&connect_bytes(name, level)).await;
        let connack = raw.recv_connack().await;
        assert_refused(&mut raw, connack, ConnectCode::UnacceptableProtocolVersion).await;
    }
    // The layout is right: the same bytes at level 4 are accepted.
    let mut raw = Raw::open(broker.addr).await;
    raw.send_bytes(&connect_bytes("MQTT", 4)).await;
    assert_eq!(raw.recv_connack().await.code, ConnectCode::Accepted);
    broker.stop().await;
}

#[tokio::test]
async fn keepalive_over_the_limit_is_rejected() {
    let broker = TestBroker::start(Config {
        keep_alive_max_secs: 60,
        ..config()
    })
    .await;
    let mut connect = raw::connect_packet("eager");
    connect.keep_alive = 61;
    let (mut raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_refused(&mut raw, connack, ConnectCode::IdentifierRejected).await;
    broker.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let broker = TestBroker::start(Config {
        connections_max: 2,
        ..config()
    })
    .await;
    let _first = Raw::connected(broker.addr, "first").await;
    let _second = Raw::connected(broker.addr, "second").await;
    let mut third = Raw::open(broker.addr).await;
    third.expect_closed().await;
    let census = broker.census();
    assert_eq!(census.connections, 2);
    assert_eq!(
        (census.connections_accepted, census.connections_refused_max),
        (2, 1)
    );
    broker.stop().await;
}

#[tokio::test]
async fn sessions_over_the_limit_are_refused_but_a_takeover_is_not() {
    let broker = TestBroker::start(Config {
        sessions_max: 1,
        ..config()
    })
    .await;
    let mut first = Raw::connected(broker.addr, "only").await;
    let (mut other, connack) = Raw::connect(broker.addr, raw::connect_packet("other")).await;
    assert_refused(&mut other, connack, ConnectCode::ServerUnavailable).await;
    let _again = Raw::connected(broker.addr, "only").await;
    first.expect_closed().await;
    assert_eq!(broker.census().connects_refused_sessions_max, 1);
    broker.stop().await;
}

/// Keepalive 0 asks for no keepalive at all: a silent client would hold its
/// slot for ever (issue 12, row 8). As in mosquitto 2, `keep_alive_max_secs`
/// applies to it: a 3.1.1 client is refused, a 5.0 one told the maximum;
/// `keep_alive_max_secs = 0` allows it, and any keepalive.
#[tokio::test]
async fn keepalive_0_is_held_to_the_maximum_unless_the_maximum_is_0() {
    let broker = TestBroker::start(config()).await;
    let mut connect = raw::connect_packet("forever");
    connect.keep_alive = 0;
    let (mut raw, connack) = Raw::connect(broker.addr, connect).await;
    assert_refused(&mut raw, connack, ConnectCode::IdentifierRejected).await;
    let mut connect = raw::connect_v5("forever5");
    connect.keep_alive = 0;
    let (_raw5, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, ConnectCode::Accepted);
    assert_eq!(connack.properties.server_keep_alive(), Some(u16::MAX));
    broker.stop().await;

    let broker = TestBroker::start(Config {
        keep_alive_max_secs: 0,
        ..config()
    })
    .await;
    for connect in [raw::connect_packet("free"), raw::connect_v5("free5")] {
        let mut connect = connect;
        connect.keep_alive = 0;
        let (_raw, connack) = Raw::connect(broker.addr, connect).await;
        assert_eq!(connack.code, ConnectCode::Accepted);
        assert_eq!(connack.properties.server_keep_alive(), None);
    }
    broker.stop().await;
}

/// An accepted socket probes a silent peer (TCP keepalive), so that a peer
/// that vanished under a long MQTT keepalive is found (issue 12, row 8).
#[tokio::test]
async fn accepted_sockets_have_tcp_keepalive() {
    use tern::net::Listener;
    let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (stream, _) = Listener::accept(&mut listener).await.unwrap();
    let socket = socket2::SockRef::from(&stream);
    assert!(socket.keepalive().unwrap(), "SO_KEEPALIVE");
    assert_eq!(socket.tcp_keepalive_time().unwrap().as_secs(), 60);
}
