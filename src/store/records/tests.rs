use super::*;
use crate::codec::{Properties, Property};

const CLOCK: Clock = Clock {
    epoch_ms: 1_700_000_000_000,
};

fn publish(qos: QoS) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: TopicName::new("a/b").unwrap(),
        packet_id: None,
        payload: Bytes::from_static(b"payload"),
        properties: Properties::from(vec![Property::UserProperty("k".into(), "v".into())]),
    }
}

fn msg(qos: QoS, resend: Option<u16>) -> Message {
    Message {
        publish: publish(qos).into(),
        expires_at: Some(90_000),
        group: None,
        resend_id: resend.and_then(PacketId::new),
        published: Published {
            qos: QoS::ExactlyOnce,
            retain: true,
        },
        seq: 0,
    }
}

/// What a round trip must keep of a message (its group is let go).
fn same(a: &Message, b: &Message) -> bool {
    a.publish == b.publish
        && a.expires_at == b.expires_at
        && a.resend_id == b.resend_id
        && a.published.qos == b.published.qos
        && a.published.retain == b.published.retain
}

#[test]
fn messages_come_back_as_stored_in_each_stage() {
    for stored in [
        Stored::Queued(msg(QoS::AtLeastOnce, None)),
        Stored::Queued(msg(QoS::ExactlyOnce, Some(7))),
        Stored::Sent(PacketId::new(9).unwrap(), msg(QoS::AtLeastOnce, None)),
        Stored::Released(PacketId::new(11).unwrap()),
    ] {
        let back = read_message(&message_value(&stored), CLOCK).unwrap();
        let ok = match (&stored, &back) {
            (Stored::Queued(a), Stored::Queued(b)) => same(a, b),
            (Stored::Sent(i, a), Stored::Sent(j, b)) => i == j && same(a, b),
            (Stored::Released(i), Stored::Released(j)) => i == j,
            _ => false,
        };
        assert!(ok, "{stored:?} came back as {back:?}");
    }
}

fn message_value(stored: &Stored) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    super::message(stored, CLOCK, &mut buf);
    buf.to_vec()
}

#[test]
fn sessions_keep_their_owner_expiry_and_delayed_will() {
    let will = LastWill {
        topic: TopicName::new("w").unwrap(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::from(vec![Property::ContentType("text/plain".into())]),
    };
    let record = SessionRecord {
        client_id: "c1".into(),
        owner: Some("alice".into()),
        version: ProtocolVersion::V5,
        expiry_secs: 3600,
        asked_no_expiry: false,
        expires_at: Some(5_000),
        delayed_will: Some((6_000, will)),
    };
    assert_eq!(
        read_session(&session(&record, CLOCK), CLOCK).unwrap(),
        record
    );
    let plain = SessionRecord {
        owner: None,
        version: ProtocolVersion::V311,
        expires_at: None,
        delayed_will: None,
        ..record
    };
    assert_eq!(read_session(&session(&plain, CLOCK), CLOCK).unwrap(), plain);
}

#[test]
fn deadlines_are_wall_clock_times_so_that_downtime_counts() {
    let record = SessionRecord {
        client_id: "c".into(),
        owner: None,
        version: ProtocolVersion::V311,
        expiry_secs: 60,
        asked_no_expiry: true,
        expires_at: Some(60_000),
        delayed_will: None,
    };
    let value = session(&record, CLOCK);
    // Read back by a broker started 45 s of wall time later.
    let later = Clock {
        epoch_ms: CLOCK.epoch_ms + 45_000,
    };
    assert_eq!(
        read_session(&value, later).unwrap().expires_at,
        Some(15_000)
    );
    // One started after the deadline finds it due at once.
    let much_later = Clock {
        epoch_ms: CLOCK.epoch_ms + 120_000,
    };
    assert_eq!(
        read_session(&value, much_later).unwrap().expires_at,
        Some(0)
    );
}

#[test]
fn subscription_options_and_identifier_round_trip() {
    for (qos, no_local, rap, rh, id) in [
        (
            QoS::AtMostOnce,
            false,
            false,
            RetainHandling::OnSubscribe,
            None,
        ),
        (
            QoS::ExactlyOnce,
            true,
            true,
            RetainHandling::Never,
            Some(268_435_455),
        ),
        (
            QoS::AtLeastOnce,
            false,
            true,
            RetainHandling::OnNewSubscription,
            Some(1),
        ),
    ] {
        let granted = Granted {
            options: SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: rap,
                retain_handling: rh,
            },
            id,
        };
        assert_eq!(read_subscription(&subscription(&granted)).unwrap(), granted);
    }
}

#[test]
fn retained_messages_keep_topic_qos_properties_and_expiry() {
    let topic = TopicName::new("r/x").unwrap();
    let kept = Retained {
        payload: Bytes::from_static(b"v"),
        qos: QoS::AtLeastOnce,
        properties: Properties::from(vec![Property::ResponseTopic(TopicName::new("re").unwrap())]),
        expires_at: Some(1),
    };
    let (back_topic, back) = read_retained(&retained(&topic, &kept, CLOCK), CLOCK).unwrap();
    assert_eq!((back_topic, back), (topic, kept));
}

#[test]
fn damaged_values_are_errors_not_panics() {
    let value = message_value(&Stored::Queued(msg(QoS::AtLeastOnce, None)));
    for cut in 0..value.len() {
        assert!(read_message(&value[..cut], CLOCK).is_err(), "cut at {cut}");
    }
    let mut longer = value.clone();
    longer.push(0);
    assert!(read_message(&longer, CLOCK).is_err());
    assert!(read_session(&[9, 0, 0], CLOCK).is_err());
}
