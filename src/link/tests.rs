//! The link driven with bytes and packets alone: no socket, no runtime.

use bytes::{Bytes, BytesMut};

use super::*;
use crate::broker::Effect;
use crate::codec::{Ack, Auth, PacketId, Property, Publish, QoS, ReasonCode};
use crate::topic::TopicName;

fn config() -> Config {
    Config {
        topic_alias_max: 5,
        packet_size_max_bytes: 1024,
        ..Config::default()
    }
}

fn connect(version: ProtocolVersion, properties: Vec<Property>) -> Packet {
    Packet::Connect(Box::new(Connect {
        version,
        clean_session: true,
        keep_alive: 30,
        client_id: "c".into(),
        will: None,
        username: None,
        password: None,
        properties: codec::Properties::from(properties),
    }))
}

/// A link past a 5.0 CONNECT that allows `client_max` bytes a packet.
fn link5(client_max: Option<u32>) -> Link {
    let mut link = Link::new(&config());
    let properties = client_max
        .map(Property::MaximumPacketSize)
        .into_iter()
        .collect();
    link.first(Ok(connect(ProtocolVersion::V5, properties)))
        .expect("a CONNECT is accepted");
    link
}

fn publish(topic: TopicName, alias: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic,
        packet_id: None,
        payload: Bytes::from_static(b"x"),
        properties: alias.map(Property::TopicAlias).into_iter().collect(),
    }
}

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    codec::encode(packet, version, &mut buf);
    buf
}

#[test]
fn decodes_in_the_version_of_its_connect() {
    let mut link = Link::new(&config());
    assert_eq!(link.version(), ProtocolVersion::V311);
    let mut buf = encoded(&connect(ProtocolVersion::V5, vec![]), ProtocolVersion::V5);
    let first = link.decode(&mut buf).unwrap().expect("a whole CONNECT");
    link.first(Ok(first)).unwrap();
    assert_eq!(link.version(), ProtocolVersion::V5);
    // A 5.0 PUBLISH with properties reads only in 5.0.
    let packet = Packet::Publish(publish(topic("a/b"), Some(1)));
    let mut buf = encoded(&packet, ProtocolVersion::V5);
    let split = buf.split_to(3);
    let mut partial = split.clone();
    assert_eq!(link.decode(&mut partial).unwrap(), None, "not whole yet");
    partial.unsplit(buf);
    assert_eq!(link.decode(&mut partial).unwrap(), Some(packet));
}

#[test]
fn refuses_too_large_a_packet_from_its_header() {
    let mut link = link5(None);
    // Fixed header of a PUBLISH announcing 2,000 bytes; none of them sent.
    let mut buf = BytesMut::from(&[0x30, 0xD0, 0x0F][..]);
    let end = link.decode(&mut buf).unwrap_err();
    assert!(
        matches!(end, End::Decode(DecodeError::PacketTooLarge { .. })),
        "{end}"
    );
    assert_eq!(end.reason(), Some(ReasonCode::PACKET_TOO_LARGE));
}

#[test]
fn the_first_packet_must_be_connect() {
    let mut link = Link::new(&config());
    let (end, reply) = link.first(Ok(Packet::PingReq)).unwrap_err();
    assert_eq!(
        end.to_string(),
        "protocol violation: PINGREQ before CONNECT"
    );
    assert_eq!(reply, None);
}

#[test]
fn an_unknown_protocol_level_gets_connack_0x01() {
    let mut link = Link::new(&config());
    let decoded = Err(End::Decode(DecodeError::UnsupportedProtocolLevel(7)));
    let (end, reply) = link.first(decoded).unwrap_err();
    assert!(matches!(
        end,
        End::Decode(DecodeError::UnsupportedProtocolLevel(7))
    ));
    let Some(Packet::ConnAck(connack)) = reply.as_deref() else {
        panic!("a CONNACK, not {reply:?}");
    };
    assert_eq!(connack.code, ConnectCode::UnacceptableProtocolVersion);
    assert!(!connack.session_present);
}

#[test]
fn pingreq_is_answered_by_the_link() {
    let mut link = link5(None);
    assert_eq!(
        link.inbound(Packet::PingReq).unwrap(),
        Inbound::Reply(Packet::PingResp)
    );
}

#[test]
fn refuses_auth_a_second_connect_and_servers_packets() {
    let mut link = link5(None);
    let auth = Packet::Auth(Auth {
        reason: ReasonCode::SUCCESS,
        properties: Default::default(),
    });
    let refusals = [
        (auth, "AUTH without an authentication method"),
        (connect(ProtocolVersion::V5, vec![]), "second CONNECT"),
        (Packet::PingResp, "PINGRESP is not a client's packet"),
    ];
    for (packet, why) in refusals {
        let end = link.inbound(packet).unwrap_err();
        assert_eq!(end.to_string(), format!("protocol violation: {why}"));
        assert_eq!(end.reason(), Some(ReasonCode::PROTOCOL_ERROR));
    }
}

#[test]
fn acks_go_to_the_broker_unchanged() {
    let mut link = link5(None);
    let ack = Packet::PubAck(Ack::success(PacketId::new(7).unwrap()));
    assert_eq!(link.inbound(ack.clone()).unwrap(), Inbound::Broker(ack));
}

/// What the link reads from `publish` on the wire: named, or, with
/// `by_alias`, by its Topic Alias alone.
fn read(link: &mut Link, publish: &Publish, by_alias: bool) -> Result<TopicName, End> {
    let mut buf = BytesMut::new();
    if by_alias {
        codec::encode_by_alias(publish, &mut buf);
    } else {
        codec::encode(
            &Packet::Publish(publish.clone()),
            ProtocolVersion::V5,
            &mut buf,
        );
    }
    match link.decode(&mut buf)? {
        Some(Packet::Publish(read)) => Ok(read.topic),
        other => panic!("a PUBLISH, not {other:?}"),
    }
}

#[test]
fn a_topic_alias_is_set_then_stands_for_its_topic() {
    let mut link = link5(None);
    let set = publish(topic("a/b"), Some(2));
    assert_eq!(read(&mut link, &set, false).unwrap(), topic("a/b"));
    let used = publish(topic("anything"), Some(2));
    assert_eq!(read(&mut link, &used, true).unwrap(), topic("a/b"));
    // Set again: the alias now stands for the new topic.
    read(&mut link, &publish(topic("c"), Some(2)), false).unwrap();
    assert_eq!(read(&mut link, &used, true).unwrap(), topic("c"));
}

#[test]
fn an_alias_never_set_or_over_the_maximum_ends_the_connection() {
    let mut link = link5(None);
    let never_set = read(&mut link, &publish(topic("a"), Some(3)), true).unwrap_err();
    assert_eq!(
        never_set.to_string(),
        "malformed packet: topic alias 3 was never set"
    );
    assert_eq!(never_set.reason(), Some(ReasonCode::PROTOCOL_ERROR));
    let over = read(&mut link, &publish(topic("a"), Some(6)), false).unwrap_err();
    assert!(matches!(
        over,
        End::Decode(DecodeError::TopicAliasInvalid(6))
    ));
    assert_eq!(over.reason(), Some(ReasonCode::TOPIC_ALIAS_INVALID));
}

#[test]
fn farewell_is_a_disconnect_for_5_0_only_and_only_when_we_end_it() {
    let link = link5(None);
    let Some(Packet::Disconnect(disconnect)) = link.farewell(&End::KeepAlive(10)) else {
        panic!("a DISCONNECT");
    };
    assert_eq!(disconnect.reason, ReasonCode::KEEP_ALIVE_TIMEOUT);
    assert_eq!(
        disconnect.properties.others(),
        [Property::ReasonString(
            "no packet within 1.5 times the keepalive of 10s".into()
        )]
    );
    assert_eq!(link.farewell(&End::Disconnect), None, "the client ended it");
    assert_eq!(link.farewell(&End::Eof), None, "the client ended it");
    let mut v311 = Link::new(&config());
    v311.first(Ok(connect(ProtocolVersion::V311, vec![])))
        .unwrap();
    assert_eq!(v311.farewell(&End::KeepAlive(10)), None, "3.1.1 has none");
}

#[test]
fn a_reason_string_is_cut_at_a_char_boundary() {
    let link = link5(None);
    let long = "é".repeat(300);
    let Some(Packet::Disconnect(disconnect)) = link.farewell(&End::Protocol(long)) else {
        panic!("a DISCONNECT");
    };
    let [Property::ReasonString(text)] = disconnect.properties.others() else {
        panic!("one Reason String: {:?}", disconnect.properties);
    };
    assert!(
        text.len() <= REASON_STRING_MAX_BYTES,
        "{} bytes",
        text.len()
    );
    assert!(
        text.len() >= REASON_STRING_MAX_BYTES - 1,
        "cut no shorter than needed"
    );
    assert!(text.starts_with("protocol violation: é"));
}

#[test]
fn no_reason_string_where_it_would_exceed_the_clients_maximum() {
    // [MQTT-3.14.2-3]: the client allows 10 bytes a packet.
    let link = link5(Some(10));
    let Some(Packet::Disconnect(disconnect)) = link.farewell(&End::Shutdown) else {
        panic!("a DISCONNECT");
    };
    assert_eq!(disconnect.reason, ReasonCode::SERVER_SHUTTING_DOWN);
    assert!(disconnect.properties.is_empty());
}

#[test]
fn dispatch_hands_packets_to_the_broker_and_detaches_on_disconnect() {
    let mut broker = Broker::new(config());
    let conn = ConnId(1);
    let Packet::Connect(connect) = connect(ProtocolVersion::V311, vec![]) else {
        unreachable!()
    };
    broker.connect(conn, *connect).expect("accepted");
    let publish = Packet::Publish(publish(topic("a"), None));
    Link::dispatch(&mut broker, conn, publish, 0).unwrap();
    let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS));
    let end = Link::dispatch(&mut broker, conn, disconnect, 0).unwrap_err();
    assert!(matches!(end, End::Disconnect));
    assert_eq!(broker.client_id(conn), None, "detached");
    // Packets still buffered after that belong to nobody.
    let late = Packet::PubAck(Ack::success(PacketId::new(1).unwrap()));
    assert!(matches!(
        Link::dispatch(&mut broker, conn, late, 0),
        Err(End::TakenOver)
    ));
    let effects: Vec<Effect> = broker.drain_effects().collect();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Send(_, Packet::ConnAck(_)))),
        "{effects:?}"
    );
}
