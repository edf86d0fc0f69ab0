//! Router transcripts: packets in, effects out, with no runtime in between,
//! so that each QoS flow and session rule is checked exactly.

use bytes::Bytes;

use super::*;
use crate::codec::{
    Ack, ConnAck, Connect, ConnectCode, LastWill, PacketId, ProtocolVersion, Publish, QoS,
    Subscribe, SubscriptionOptions,
};
use crate::topic::{TopicFilter, TopicName};

fn config() -> Config {
    Config {
        inflight_messages_max: 2,
        queued_messages_max: 3,
        ..Config::default()
    }
}

fn connect(broker: &mut Broker, conn: u64, client_id: &str, clean: bool) -> Vec<Effect> {
    let connect = Connect {
        clean_session: clean,
        ..connect_packet(client_id, None)
    };
    broker.connect(ConnId(conn), connect);
    drain_effects(broker)
}

/// A 3.1.1 CONNECT with a clean session and `will`.
fn connect_packet(client_id: &str, will: Option<LastWill>) -> Connect {
    Connect {
        version: ProtocolVersion::V311,
        clean_session: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will,
        username: None,
        password: None,
        properties: Default::default(),
    }
}

fn will(topic: &str, payload: Bytes) -> LastWill {
    LastWill {
        topic: TopicName::new(topic).unwrap(),
        payload,
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    }
}

/// The broker's effects, with each shared frame decoded back into the
/// PUBLISH it stands for, as its session's client would read it.
fn drain_effects(broker: &mut Broker) -> Vec<Effect> {
    let effects: Vec<Effect> = broker.drain_effects().collect();
    effects
        .into_iter()
        .map(|effect| {
            let (conn, frame, id) = match effect {
                Effect::SendFrame(conn, frame) => (conn, frame, None),
                Effect::SendFrameAs(conn, frame, id) => (conn, frame, Some(id)),
                other => return other,
            };
            let options = crate::codec::DecodeOptions {
                version: broker.sessions.get(broker.sessions.sid_of(conn)).version(),
                ..Default::default()
            };
            let mut buf = bytes::BytesMut::from(&frame.bytes()[..]);
            let mut packet = crate::codec::decode(&mut buf, &options).unwrap().unwrap();
            assert!(buf.is_empty(), "a frame is one whole packet");
            // As the connection writes it in (`Writes::encoded_with_id`).
            if let (Packet::Publish(p), Some(id)) = (&mut packet, id) {
                p.packet_id = Some(id);
            }
            Effect::Send(conn, packet)
        })
        .collect()
}

/// The connect effects, for their CONNACK code.
fn connack_code(effects: &[Effect]) -> ConnectCode {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Send(_, Packet::ConnAck(ack)) => Some(ack.code),
            _ => None,
        })
        .expect("a CONNACK")
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).unwrap()
}

fn subscribe(broker: &mut Broker, conn: u64, filter: &str, qos: QoS) -> Vec<Effect> {
    let subscribe = Subscribe {
        packet_id: id(1),
        filters: vec![(
            TopicFilter::new(filter).unwrap(),
            SubscriptionOptions::qos(qos),
        )],
        properties: Default::default(),
    };
    subscribe_whole(broker, conn, subscribe);
    // As the server does, with all the room there is.
    broker.send_retained(ConnId(conn), usize::MAX);
    drain_effects(broker)
}

/// A SUBSCRIBE and its slices one after another, as its connection
/// resumes them (`subscribe.rs`).
fn subscribe_whole(broker: &mut Broker, conn: u64, subscribe: Subscribe) {
    broker.subscribe(ConnId(conn), subscribe).unwrap();
    while broker.resume_subscribe(ConnId(conn)) {}
}

fn message(topic: &str, qos: QoS, packet_id: Option<u16>, payload: &str) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: TopicName::new(topic).unwrap(),
        packet_id: packet_id.map(id),
        payload: Bytes::from(payload.to_owned()),
        properties: Default::default(),
    }
}

fn publish(broker: &mut Broker, conn: u64, publish: Publish) -> Vec<Effect> {
    broker.publish(ConnId(conn), publish).unwrap();
    drain_effects(broker)
}

/// The PUBLISH packets of `effects` as (conn, qos, packet id, payload, dup).
fn deliveries(effects: &[Effect]) -> Vec<(u64, QoS, Option<u16>, String, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(c, Packet::Publish(p)) => Some((
                c.0,
                p.qos,
                p.packet_id.map(PacketId::get),
                String::from_utf8(p.payload.to_vec()).unwrap(),
                p.dup,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn qos1_is_routed_before_it_is_acknowledged() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", true);
    connect(&mut broker, 2, "pub", true);
    subscribe(&mut broker, 1, "a/+", QoS::AtLeastOnce);
    let effects = publish(
        &mut broker,
        2,
        message("a/b", QoS::AtLeastOnce, Some(7), "m"),
    );
    assert_eq!(
        effects,
        vec![
            Effect::Send(
                ConnId(1),
                Packet::Publish(Publish {
                    packet_id: Some(id(1)),
                    ..message("a/b", QoS::AtLeastOnce, None, "m")
                })
            ),
            Effect::Send(ConnId(2), Packet::PubAck(Ack::success(id(7)))),
        ]
    );
    assert_eq!(broker.stats().inflight, 1);
    broker.puback(ConnId(1), id(1));
    assert_eq!(broker.stats().inflight, 0);
}

#[test]
fn overlapping_filters_deliver_one_copy_at_the_highest_qos() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", true);
    subscribe(&mut broker, 1, "a/#", QoS::AtMostOnce);
    subscribe(&mut broker, 1, "a/b", QoS::ExactlyOnce);
    subscribe(&mut broker, 1, "+/b", QoS::AtLeastOnce);
    let effects = publish(
        &mut broker,
        1,
        message("a/b", QoS::ExactlyOnce, Some(3), "m"),
    );
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::ExactlyOnce, Some(1), "m".into(), false)]
    );
    // Delivered QoS is the minimum of published and granted.
    let effects = publish(
        &mut broker,
        1,
        message("x/b", QoS::ExactlyOnce, Some(4), "n"),
    );
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::AtLeastOnce, Some(2), "n".into(), false)]
    );
}

#[test]
fn window_queues_then_drops_and_counts() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", true);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    let mut sent = Vec::new();
    for n in 0..7u16 {
        sent.extend(deliveries(&publish(
            &mut broker,
            1,
            message("t", QoS::AtLeastOnce, Some(100 + n), &n.to_string()),
        )));
    }
    // Two in flight, three queued, two dropped.
    assert_eq!(sent.len(), 2);
    let stats = broker.stats();
    assert_eq!(
        (stats.inflight, stats.queued, stats.dropped.queue_full),
        (2, 3, 2)
    );
    broker.puback(ConnId(1), id(1));
    let next = deliveries(&drain_effects(&mut broker));
    assert_eq!(
        next,
        vec![(1, QoS::AtLeastOnce, Some(3), "2".into(), false)]
    );
}

#[test]
fn qos2_resend_is_not_routed_twice() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", true);
    connect(&mut broker, 2, "pub", true);
    subscribe(&mut broker, 1, "t", QoS::AtMostOnce);
    let first = publish(&mut broker, 2, message("t", QoS::ExactlyOnce, Some(5), "x"));
    let resend = publish(
        &mut broker,
        2,
        Publish {
            dup: true,
            ..message("t", QoS::ExactlyOnce, Some(5), "x")
        },
    );
    assert_eq!(deliveries(&first).len(), 1);
    assert_eq!(
        resend,
        vec![Effect::Send(ConnId(2), Packet::PubRec(Ack::success(id(5))))]
    );
    broker.pubrel(ConnId(2), id(5));
    let after_release = publish(&mut broker, 2, message("t", QoS::ExactlyOnce, Some(5), "y"));
    assert_eq!(
        deliveries(&after_release).len(),
        1,
        "a released id is new again"
    );
}

#[test]
fn persistent_session_resends_with_dup_then_queue_in_order() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", false);
    connect(&mut broker, 2, "pub", true);
    subscribe(&mut broker, 1, "t", QoS::ExactlyOnce);
    publish(
        &mut broker,
        2,
        message("t", QoS::AtLeastOnce, Some(10), "0"),
    );
    publish(
        &mut broker,
        2,
        message("t", QoS::ExactlyOnce, Some(11), "1"),
    );
    // A PUBREC for the QoS 1 message is not its acknowledgement.
    broker.pubrec(ConnId(1), &Ack::success(id(1)));
    broker.pubrec(ConnId(1), &Ack::success(id(2)));
    broker.connection_lost(ConnId(1), false);
    publish(
        &mut broker,
        2,
        message("t", QoS::ExactlyOnce, Some(20), "2"),
    );
    drain_effects(&mut broker);
    assert_eq!(broker.stats().sessions_offline, 1);
    assert_eq!(broker.stats().queued, 1);

    let effects = connect(&mut broker, 3, "sub", false);
    assert_eq!(
        effects[0],
        Effect::Send(
            ConnId(3),
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ConnectCode::Accepted,
                properties: Default::default(),
            })
        )
    );
    assert_eq!(
        effects[1..],
        [
            Effect::Send(
                ConnId(3),
                Packet::Publish(Publish {
                    dup: true,
                    packet_id: Some(id(1)),
                    ..message("t", QoS::AtLeastOnce, None, "0")
                })
            ),
            Effect::Send(ConnId(3), Packet::PubRel(Ack::success(id(2)))),
        ]
    );
    broker.pubcomp(ConnId(3), id(2));
    let queued = deliveries(&drain_effects(&mut broker));
    assert_eq!(
        queued,
        vec![(3, QoS::ExactlyOnce, Some(3), "2".into(), false)]
    );
}

#[test]
fn clean_session_ends_with_its_connection() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "a", true);
    subscribe(&mut broker, 1, "t/#", QoS::AtLeastOnce);
    subscribe(&mut broker, 1, "u", QoS::AtMostOnce);
    assert_eq!(broker.stats().subscriptions, 2);
    broker.connection_lost(ConnId(1), false);
    let stats = broker.stats();
    assert_eq!(
        stats,
        BrokerStats {
            retained_visited: stats.retained_visited,
            ..BrokerStats::default()
        }
    );
    assert!(broker.index.is_empty());
}

#[test]
fn takeover_publishes_the_old_will_and_detaches_it() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "watcher", true);
    subscribe(&mut broker, 1, "will", QoS::AtMostOnce);
    let mut with_will = connect_packet("dup", Some(will("will", Bytes::from_static(b"bye"))));
    broker.connect(ConnId(2), with_will.clone());
    drain_effects(&mut broker);
    with_will.will = None;
    broker.connect(ConnId(3), with_will);
    let effects: Vec<Effect> = drain_effects(&mut broker);
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::AtMostOnce, None, "bye".into(), false)]
    );
    assert!(effects.contains(&Effect::TakenOver(ConnId(2))));
    // The old connection's own end, arriving later, changes nothing.
    broker.connection_lost(ConnId(2), false);
    assert_eq!(drain_effects(&mut broker).len(), 0);
    assert_eq!(broker.client_id(ConnId(3)), Some("dup"));
}

#[test]
fn will_only_without_disconnect() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "watcher", true);
    subscribe(&mut broker, 1, "will", QoS::AtMostOnce);
    for (conn, graceful) in [(2, true), (3, false)] {
        let retained_will = LastWill {
            retain: true,
            ..will("will", Bytes::from(format!("{conn}")))
        };
        let connect = connect_packet(&format!("c{conn}"), Some(retained_will));
        broker.connect(ConnId(conn), connect);
        broker.connection_lost(ConnId(conn), graceful);
    }
    let effects: Vec<Effect> = drain_effects(&mut broker);
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::AtMostOnce, None, "3".into(), false)]
    );
    assert_eq!(broker.stats().retained, 1, "the will was retained");
}

#[test]
fn refused_connects() {
    let mut broker = Broker::new(config());
    let effects = connect(&mut broker, 1, "", false);
    assert_eq!(
        effects,
        vec![Effect::Send(
            ConnId(1),
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ConnectCode::IdentifierRejected,
                properties: Default::default(),
            })
        )]
    );
    assert_eq!(broker.stats().sessions_connected, 0);
    connect(&mut broker, 2, "", true);
    assert_eq!(broker.client_id(ConnId(2)), Some("tern-1"));
}

#[test]
fn retained_messages_follow_the_suback() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "pub", true);
    let retained = |payload: &str| Publish {
        retain: true,
        ..message("r/1", QoS::AtLeastOnce, Some(1), payload)
    };
    publish(&mut broker, 1, retained("old"));
    publish(&mut broker, 1, retained("new"));
    let effects = subscribe(&mut broker, 1, "r/#", QoS::AtMostOnce);
    assert!(matches!(effects[0], Effect::Send(_, Packet::SubAck(_))));
    match &effects[1..] {
        [Effect::Send(_, Packet::Publish(p))] => {
            assert!(p.retain);
            assert_eq!(p.payload, "new");
            assert_eq!(p.qos, QoS::AtMostOnce);
        }
        other => panic!("expected one retained message, got {other:?}"),
    }
    publish(&mut broker, 1, retained(""));
    assert_eq!(broker.stats().retained, 0);
}

/// A live message on a topic whose retained message a new subscription is
/// still owed comes after that retained message, and the walk does not
/// send it again: the order mosquitto gives by sending all at once.
#[test]
fn an_owed_retained_message_goes_before_a_live_one_on_its_topic() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "pub", true);
    connect(&mut broker, 2, "sub", true);
    for topic in ["r/1", "r/2", "r/3"] {
        let old = Publish {
            retain: true,
            ..message(topic, QoS::AtMostOnce, None, "old")
        };
        publish(&mut broker, 1, old);
    }
    let subscribe = Subscribe {
        packet_id: id(1),
        filters: vec![(
            TopicFilter::new("r/#").unwrap(),
            SubscriptionOptions::qos(QoS::AtMostOnce),
        )],
        properties: Default::default(),
    };
    subscribe_whole(&mut broker, 2, subscribe);
    // No room yet: everything is owed.
    assert_eq!(broker.send_retained(ConnId(2), 0), Owing::Blocked);
    assert_eq!(broker.stats().retained_owed, 1);
    drain_effects(&mut broker);
    let new = Publish {
        retain: true,
        ..message("r/2", QoS::AtMostOnce, None, "new")
    };
    let mut effects = publish(&mut broker, 1, new);
    effects.extend(publish(
        &mut broker,
        1,
        message("r/3", QoS::AtMostOnce, None, "live"),
    ));
    assert_eq!(broker.send_retained(ConnId(2), usize::MAX), Owing::Nothing);
    effects.extend(drain_effects(&mut broker));
    let got: Vec<(String, String, bool)> = effects
        .into_iter()
        .filter(|e| e.conn() == ConnId(2))
        .map(|e| match e {
            Effect::Send(_, Packet::Publish(p)) => (p.topic.to_string(), p.payload, p.retain),
            other => panic!("{other:?}"),
        })
        .map(|(t, p, r)| (t, String::from_utf8(p.to_vec()).unwrap(), r))
        .collect();
    let want = |t: &str, p: &str, r| (t.to_owned(), p.to_owned(), r);
    assert_eq!(
        got,
        [
            want("r/2", "old", true),
            want("r/2", "new", false),
            want("r/3", "old", true),
            want("r/3", "live", false),
            want("r/1", "old", true),
        ]
    );
    assert_eq!(broker.stats().retained_owed, 0);
    broker.check().unwrap();
}

/// MQTT 5.0 transcripts, each for a defect a review found.
mod fanout;
mod memory;
mod mqtt5;
mod reaping;
mod recent;
mod store_failed;
mod subscribe;
mod tail;

#[test]
fn a_session_owing_nothing_keeps_no_room_for_owed_filters() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "idle", true);
    subscribe(&mut broker, 1, "own/topic", QoS::AtLeastOnce);
    let sid = broker.sessions.sid_of(ConnId(1));
    assert_eq!(broker.sessions.get(sid).backlog.capacity(), 0);
}

/// Every idle connection's session holds this much: what most sessions
/// leave empty (QoS 1/2 queues, QoS 2 ids, owed filters) is boxed when
/// it is used, and inline it made a session 376 bytes (issue 15).
#[test]
fn an_idle_sessions_state_stays_small() {
    let size = std::mem::size_of::<sessions::Session>();
    assert!(size <= 184, "a session is {size} bytes");
}

/// Its QoS 1/2 queues are made with its first message and kept while it is
/// connected (made again per message, they cost fan-in at QoS 1 3-9% of
/// its CPU); once it has no connection and nothing is in them, they go.
#[test]
fn a_session_with_nothing_in_flight_keeps_no_queues_once_offline() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", false);
    connect(&mut broker, 2, "pub", true);
    subscribe(&mut broker, 1, "t", QoS::ExactlyOnce);
    let sub = broker.sessions.sid_of(ConnId(1));
    let publisher = broker.sessions.sid_of(ConnId(2));
    publish(&mut broker, 2, message("t", QoS::AtLeastOnce, Some(1), "1"));
    publish(&mut broker, 2, message("t", QoS::ExactlyOnce, Some(2), "2"));
    assert!(broker.sessions.get(sub).outbox.holds_queues());
    assert!(broker.sessions.get(publisher).incoming_qos2.holds_set());
    broker.puback(ConnId(1), id(1));
    broker.pubrec(ConnId(1), &Ack::success(id(2)));
    broker.pubcomp(ConnId(1), id(2));
    broker.pubrel(ConnId(2), id(2));
    assert!(
        broker.sessions.get(sub).outbox.holds_queues(),
        "kept while connected"
    );
    assert!(!broker.sessions.get(publisher).incoming_qos2.holds_set());
    broker.connection_lost(ConnId(1), false);
    drain_effects(&mut broker);
    assert!(!broker.sessions.get(sub).outbox.holds_queues());
}

/// A will's payload arrives as a slice of its CONNECT, which may be large
/// (user properties to the packet limit): kept as a slice, it would pin the
/// whole frame for the life of the session (issue 12, row 5).
#[test]
fn a_will_does_not_pin_its_connect_frame() {
    let mut broker = Broker::new(config());
    let frame = Bytes::from(vec![b'x'; 1 << 20]);
    let connect = connect_packet("dying", Some(will("will/t", frame.slice(10..20))));
    broker.connect(ConnId(1), connect);
    let sid = broker.sessions.sid_of(ConnId(1));
    let will = broker.sessions.get(sid).will().expect("a will");
    let inside = frame.as_ptr_range().contains(&will.payload.as_ptr());
    assert!(!inside, "the will's payload is a slice of its CONNECT");
    assert_eq!(&will.payload[..], b"xxxxxxxxxx");
}
