//! MQTT 5.0 router transcripts, each for a defect a review found; apart
//! from the 3.1.1 ones because they need 5.0's properties to say anything.

use super::*;
use crate::codec::{Properties, Property};

pub(super) fn connect5(
    broker: &mut Broker,
    conn: u64,
    client_id: &str,
    expiry: u32,
    props: Vec<Property>,
) {
    let mut properties = Properties::from(props);
    if expiry > 0 {
        properties.push(Property::SessionExpiryInterval(expiry));
    }
    let connect = Connect {
        version: ProtocolVersion::V5,
        clean_session: expiry == 0,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties,
    };
    broker.connect(ConnId(conn), connect);
    drain_effects(broker);
}

/// Subscribers of "t" at QoS 1 for the frame tests: 1 and 2 on 3.1.1, 3
/// on 5.0, 4 on 5.0 taking packets of 20 bytes at most, and 5 on 5.0 with
/// a Subscription Identifier at `qos_with_id`; 6 publishes.
fn frame_sessions(qos_with_id: QoS) -> Broker {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "v3-a", true);
    connect(&mut broker, 2, "v3-b", true);
    connect5(&mut broker, 3, "v5", 0, vec![]);
    connect5(
        &mut broker,
        4,
        "v5-small",
        0,
        vec![Property::MaximumPacketSize(20)],
    );
    connect5(&mut broker, 5, "v5-id", 0, vec![]);
    connect5(&mut broker, 6, "pub", 0, vec![]);
    for conn in 1..=4 {
        subscribe(&mut broker, conn, "t", QoS::AtLeastOnce);
    }
    let with_id = Subscribe {
        packet_id: id(1),
        filters: vec![(
            TopicFilter::new("t").unwrap(),
            SubscriptionOptions::qos(qos_with_id),
        )],
        properties: Properties::from(vec![Property::SubscriptionIdentifier(7)]),
    };
    subscribe_whole(&mut broker, 5, with_id);
    broker
}

/// Session 6 publishes to "t" with a User Property (which 3.1.1 clients
/// do not get): the effects as the broker made them, frames undecoded.
fn publish_to_frames(broker: &mut Broker, qos: QoS, packet_id: Option<u16>) -> Vec<Effect> {
    let mut m = message("t", qos, packet_id, "a payload longer than twenty bytes");
    m.properties
        .push(Property::UserProperty("k".into(), "v".into()));
    broker.publish(ConnId(6), m).unwrap();
    broker.drain_effects().collect()
}

/// What the frame tests see of sessions 4 and 5: too large a packet
/// counted, and a copy with a Subscription Identifier built for its own.
fn assert_unframed(broker: &Broker, effects: &[Effect]) {
    assert_eq!(broker.stats().dropped.too_large, 1);
    assert!(
        effects.iter().any(|e| matches!(e,
            Effect::Send(ConnId(5), Packet::Publish(p))
                if p.properties.subscription_identifiers().eq([7]))),
        "a copy with a Subscription Identifier is the session's own: {effects:?}"
    );
}

/// A QoS 0 fan-out is encoded once per protocol version and shared;
/// a copy with something of its session's own is not.
#[test]
fn qos0_frames_are_shared_per_version_and_only_when_plain() {
    let mut broker = frame_sessions(QoS::AtMostOnce);
    broker.drain_effects().for_each(drop);
    let effects = publish_to_frames(&mut broker, QoS::AtMostOnce, None);
    let frame = |conn: u64| {
        effects.iter().find_map(|e| match e {
            Effect::SendFrame(c, frame) if c.0 == conn => Some(frame.clone()),
            _ => None,
        })
    };
    let (a, b, v5) = (frame(1).unwrap(), frame(2).unwrap(), frame(3).unwrap());
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "one frame for both 3.1.1 clients"
    );
    assert_ne!(
        a.bytes(),
        v5.bytes(),
        "5.0 clients get the user property, 3.1.1 ones do not"
    );
    assert!(frame(4).is_none(), "over the client's Maximum Packet Size");
    assert_unframed(&broker, &effects);
}

/// A QoS 1 fan-out is encoded once per protocol version too, each session
/// with its own packet id; a copy with something of its own is not.
#[test]
fn qos1_frames_are_shared_per_version_each_with_its_own_id() {
    let mut broker = frame_sessions(QoS::AtLeastOnce);
    // Session 2 has packet id 1 in flight already.
    subscribe(&mut broker, 2, "u", QoS::AtLeastOnce);
    publish(&mut broker, 6, message("u", QoS::AtLeastOnce, Some(1), "m"));
    broker.drain_effects().for_each(drop);
    let effects = publish_to_frames(&mut broker, QoS::AtLeastOnce, Some(2));
    let frame = |conn: u64| {
        effects.iter().find_map(|e| match e {
            Effect::SendFrameAs(c, frame, id) if c.0 == conn => Some((frame.clone(), id.get())),
            _ => None,
        })
    };
    let ((a, a_id), (b, b_id)) = (frame(1).unwrap(), frame(2).unwrap());
    assert!(
        std::sync::Arc::ptr_eq(&a, &b),
        "one frame for both 3.1.1 clients"
    );
    assert_eq!((a_id, b_id), (1, 2), "each session's own packet id");
    let (v5, _) = frame(3).unwrap();
    assert_ne!(a.bytes(), v5.bytes(), "5.0 clients get the user property");
    assert!(frame(4).is_none(), "over the client's Maximum Packet Size");
    assert_unframed(&broker, &effects);
    // Acknowledged by its id, as any QoS 1 message.
    broker.puback(ConnId(2), id(2));
    broker.puback(ConnId(2), id(1));
    assert_eq!(
        broker
            .sessions
            .get(broker.sessions.sid_of(ConnId(2)))
            .outbox
            .inflight_len(),
        0
    );
}

/// A retained message at QoS 1: those whose retain flag is cleared share
/// a frame; one that keeps it as published gets a copy of its own.
#[test]
fn a_qos1_copy_kept_retained_is_not_shared() {
    let mut broker = Broker::new(config());
    connect5(&mut broker, 1, "cleared-a", 0, vec![]);
    connect5(&mut broker, 2, "cleared-b", 0, vec![]);
    connect5(&mut broker, 3, "as-published", 0, vec![]);
    connect5(&mut broker, 4, "pub", 0, vec![]);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    subscribe(&mut broker, 2, "t", QoS::AtLeastOnce);
    let mut options = SubscriptionOptions::qos(QoS::AtLeastOnce);
    options.retain_as_published = true;
    let keeps = Subscribe {
        packet_id: id(1),
        filters: vec![(TopicFilter::new("t").unwrap(), options)],
        properties: Properties::new(),
    };
    subscribe_whole(&mut broker, 3, keeps);
    broker.drain_effects().for_each(drop);
    let mut m = message("t", QoS::AtLeastOnce, Some(1), "m");
    m.retain = true;
    broker.publish(ConnId(4), m).unwrap();
    let effects: Vec<Effect> = broker.drain_effects().collect();
    let shared = |conn: u64| {
        effects
            .iter()
            .any(|e| matches!(e, Effect::SendFrameAs(c, ..) if c.0 == conn))
    };
    assert!(shared(1) && shared(2), "{effects:?}");
    assert!(
        effects.iter().any(|e| matches!(e,
            Effect::Send(ConnId(3), Packet::Publish(p)) if p.retain)),
        "kept retained, its own copy: {effects:?}"
    );
}

#[test]
fn a_sent_qos2_message_does_not_go_to_another_member() {
    let mut broker = Broker::new(config());
    connect5(&mut broker, 1, "a", 0, vec![]);
    connect5(&mut broker, 2, "b", 0, vec![]);
    connect5(&mut broker, 3, "pub", 0, vec![]);
    subscribe(&mut broker, 1, "$share/g/t", QoS::ExactlyOnce);
    subscribe(&mut broker, 2, "$share/g/t", QoS::ExactlyOnce);
    let sent = publish(&mut broker, 3, message("t", QoS::ExactlyOnce, Some(1), "m"));
    let first = deliveries(&sent);
    assert_eq!(first.len(), 1, "{first:?}");
    broker.connection_lost(ConnId(first[0].0), false);
    let after: Vec<Effect> = drain_effects(&mut broker);
    assert_eq!(deliveries(&after), vec![], "[MQTT-4.8.2-5 of 5.0]");
    assert_eq!(broker.stats().dropped.shared_undeliverable, 1);
}

#[test]
fn a_qos1_message_goes_to_the_next_member_at_its_qos() {
    let mut broker = Broker::new(config());
    connect5(&mut broker, 1, "a", 0, vec![]);
    connect5(&mut broker, 2, "b", 0, vec![]);
    connect5(&mut broker, 3, "pub", 0, vec![]);
    subscribe(&mut broker, 1, "$share/g/t", QoS::AtLeastOnce);
    subscribe(&mut broker, 2, "$share/g/t", QoS::ExactlyOnce);
    let sent = publish(&mut broker, 3, message("t", QoS::ExactlyOnce, Some(1), "m"));
    assert_eq!(deliveries(&sent)[0].0, 1, "the first member in turn");
    assert_eq!(deliveries(&sent)[0].1, QoS::AtLeastOnce);
    broker.connection_lost(ConnId(1), false);
    let after: Vec<Effect> = drain_effects(&mut broker);
    let moved = deliveries(&after);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        (moved[0].0, moved[0].1),
        (2, QoS::ExactlyOnce),
        "b's own QoS"
    );
}

#[test]
fn an_expired_message_already_sent_is_resent() {
    let mut broker = Broker::new(config());
    connect5(&mut broker, 1, "sub", 100, vec![]);
    connect5(&mut broker, 2, "pub", 0, vec![]);
    subscribe(&mut broker, 1, "t", QoS::ExactlyOnce);
    let mut m = message("t", QoS::ExactlyOnce, Some(1), "old");
    m.properties.push(Property::MessageExpiryInterval(1));
    publish(&mut broker, 2, m);
    broker.connection_lost(ConnId(1), false);
    broker.set_now(5_000);
    let connect = Connect {
        version: ProtocolVersion::V5,
        clean_session: false,
        keep_alive: 60,
        client_id: "sub".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::from(vec![Property::SessionExpiryInterval(100)]),
    };
    broker.connect(ConnId(4), connect);
    let resumed: Vec<Effect> = drain_effects(&mut broker);
    // [MQTT-4.3.3-7 of 5.0]: no expiry once the PUBLISH was sent.
    assert_eq!(
        deliveries(&resumed),
        vec![(4, QoS::ExactlyOnce, Some(1), "old".into(), true)]
    );
    assert_eq!(broker.stats().dropped.expired, 0);
}

#[test]
fn an_expiry_of_zero_reaches_those_online() {
    let mut broker = Broker::new(config());
    connect5(&mut broker, 1, "sub", 0, vec![]);
    connect5(&mut broker, 2, "pub", 0, vec![]);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    let mut m = message("t", QoS::AtLeastOnce, Some(1), "now");
    m.properties.push(Property::MessageExpiryInterval(0));
    let sent = publish(&mut broker, 2, m);
    assert_eq!(deliveries(&sent).len(), 1);
    assert_eq!(broker.stats().dropped.expired, 0);
}

#[test]
fn released_messages_over_a_smaller_window_pass_the_check() {
    let mut broker = Broker::new(Config {
        inflight_messages_max: 3,
        ..config()
    });
    connect5(&mut broker, 1, "sub", 100, vec![]);
    connect5(&mut broker, 2, "pub", 0, vec![]);
    subscribe(&mut broker, 1, "t", QoS::ExactlyOnce);
    for i in 1..=3u16 {
        publish(&mut broker, 2, message("t", QoS::ExactlyOnce, Some(i), "m"));
        broker.pubrel(ConnId(2), id(i));
        broker.pubrec(ConnId(1), &Ack::success(id(i)));
    }
    broker.connection_lost(ConnId(1), false);
    connect5(
        &mut broker,
        3,
        "sub",
        100,
        vec![Property::ReceiveMaximum(1)],
    );
    assert_eq!(broker.check(), Ok(()));
    assert_eq!(broker.stats().inflight, 3);
}

#[test]
fn properties_count_against_the_queue_bytes() {
    let mut broker = Broker::new(Config {
        queued_bytes_max: 100_000,
        ..config()
    });
    connect5(&mut broker, 1, "sub", 100, vec![]);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    broker.connection_lost(ConnId(1), false);
    connect5(&mut broker, 2, "pub", 0, vec![]);
    for i in 1..=2 {
        let mut m = message("t", QoS::AtLeastOnce, Some(i), "");
        let big = "v".repeat(60_000);
        m.properties.push(Property::UserProperty("k".into(), big));
        publish(&mut broker, 2, m);
    }
    let stats = broker.stats();
    assert_eq!((stats.queued, stats.dropped.queue_full), (1, 1));
}
