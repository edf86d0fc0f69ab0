//! A SUBSCRIBE that came before another client's PUBLISH but reached the
//! lock after it (`recent.rs`): the message is replayed to its new
//! filters, once, and only where the session had no copy.

use super::*;

/// Sub's SUBSCRIBE to `filter`, its bytes come at `arrived`.
fn subscribe_at(broker: &mut Broker, filter: &str, qos: QoS, arrived: u64) -> Vec<Effect> {
    let subscribe = Subscribe {
        packet_id: id(5),
        filters: vec![(
            TopicFilter::new(filter).unwrap(),
            SubscriptionOptions::qos(qos),
        )],
        properties: Default::default(),
    };
    broker
        .subscribe_arrived(ConnId(1), subscribe, arrived)
        .unwrap();
    while broker.resume_subscribe(ConnId(1)) {}
    broker.send_retained(ConnId(1), usize::MAX);
    drain_effects(broker)
}

/// Pub's PUBLISH of `payload` to `topic`, its bytes come at `arrived`.
fn publish_at(broker: &mut Broker, topic: &str, payload: &str, arrived: u64) -> Vec<Effect> {
    let publish = message(topic, QoS::AtLeastOnce, Some(7), payload);
    broker.publish_arrived(ConnId(2), publish, arrived).unwrap();
    drain_effects(broker)
}

/// `publish_at` with the retain flag set.
fn retain_at(broker: &mut Broker, topic: &str, payload: &str, arrived: u64) {
    let publish = Publish {
        retain: true,
        ..message(topic, QoS::AtLeastOnce, Some(7), payload)
    };
    broker.publish_arrived(ConnId(2), publish, arrived).unwrap();
    drain_effects(broker);
}

fn two_clients() -> Broker {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", true);
    connect(&mut broker, 2, "pub", true);
    broker
}

#[test]
fn a_subscribe_that_came_first_gets_the_message_that_beat_it_to_the_lock() {
    let mut broker = two_clients();
    let routed = publish_at(&mut broker, "a/b", "m", 2_000);
    assert_eq!(deliveries(&routed), vec![], "no one subscribed yet");
    let effects = subscribe_at(&mut broker, "a/+", QoS::AtLeastOnce, 1_000);
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::AtLeastOnce, Some(1), "m".into(), false)]
    );
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Send(ConnId(1), Packet::SubAck(_)))));
    assert_eq!(broker.stats().replayed, 1);
    // Acknowledged by the subscriber as any delivery is.
    broker.puback(ConnId(1), id(1));
    assert_eq!(broker.stats().inflight, 0);
}

#[test]
fn a_subscribe_that_came_after_gets_nothing_replayed() {
    let mut broker = two_clients();
    publish_at(&mut broker, "a/b", "m", 1_000);
    let effects = subscribe_at(&mut broker, "a/+", QoS::AtLeastOnce, 2_000);
    assert_eq!(deliveries(&effects), vec![]);
    // Nor when the socket did not tell either arrival.
    let mut broker = two_clients();
    publish_at(&mut broker, "a/b", "m", 0);
    let effects = subscribe_at(&mut broker, "a/+", QoS::AtLeastOnce, 1_000);
    assert_eq!(deliveries(&effects), vec![]);
    let mut broker = two_clients();
    publish_at(&mut broker, "a/b", "m", 2_000);
    let effects = subscribe_at(&mut broker, "a/+", QoS::AtLeastOnce, 0);
    assert_eq!(deliveries(&effects), vec![]);
}

#[test]
fn a_session_that_had_its_copy_gets_no_second() {
    let mut broker = two_clients();
    subscribe_at(&mut broker, "a/#", QoS::AtMostOnce, 500);
    let routed = publish_at(&mut broker, "a/b", "m", 2_000);
    assert_eq!(
        deliveries(&routed),
        vec![(1, QoS::AtMostOnce, None, "m".into(), false)]
    );
    // A new filter that matches too, and the same filter again.
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtLeastOnce, 1_000);
    assert_eq!(deliveries(&effects), vec![]);
    let effects = subscribe_at(&mut broker, "a/#", QoS::AtLeastOnce, 1_000);
    assert_eq!(deliveries(&effects), vec![]);
}

#[test]
fn only_matching_new_filters_get_a_replay_at_their_qos() {
    let mut broker = two_clients();
    publish_at(&mut broker, "a/b", "m", 2_000);
    publish_at(&mut broker, "x/y", "n", 3_000);
    let effects = subscribe_at(&mut broker, "x/+", QoS::AtMostOnce, 1_000);
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::AtMostOnce, None, "n".into(), false)]
    );
}

#[test]
fn retained_messages_come_from_the_store_not_a_replay() {
    let mut broker = two_clients();
    retain_at(&mut broker, "a/b", "kept", 2_000);
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtLeastOnce, 1_000);
    let got: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(ConnId(1), Packet::Publish(p)) => Some((p.retain, p.payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(true, Bytes::from("kept"))], "one copy, retained");
}

#[test]
fn a_session_gets_no_replay_of_its_own_message() {
    let mut broker = two_clients();
    let publish = message("a/b", QoS::AtLeastOnce, Some(7), "own");
    broker.publish_arrived(ConnId(1), publish, 2_000).unwrap();
    drain_effects(&mut broker);
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtLeastOnce, 1_000);
    assert_eq!(deliveries(&effects), vec![]);
}

#[test]
fn recent_messages_are_kept_within_their_bounds() {
    let mut broker = two_clients();
    for n in 0..1_000u64 {
        publish_at(&mut broker, "a/b", &n.to_string(), 10_000 + n);
    }
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtMostOnce, 1);
    let got = deliveries(&effects);
    assert_eq!(got.len(), 64, "the last 64 only");
    assert_eq!(got[0].3, "936");
    // Messages that came long before the newest are let go.
    let mut broker = two_clients();
    publish_at(&mut broker, "a/b", "old", 1_000);
    publish_at(&mut broker, "a/b", "new", 1_000 + 30_000_000);
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtMostOnce, 1);
    let payloads: Vec<_> = deliveries(&effects).into_iter().map(|d| d.3).collect();
    assert_eq!(payloads, vec!["new".to_string()]);
}

#[test]
fn a_replay_is_not_done_past_its_work_under_the_lock() {
    for (others, replayed) in [(100, 1), (9_000, 0)] {
        let mut broker = Broker::new(Config {
            subscriptions_per_client_max: 10_000,
            ..config()
        });
        connect(&mut broker, 1, "sub", true);
        connect(&mut broker, 2, "pub", true);
        let filters = (0..others)
            .map(|i| {
                let filter = TopicFilter::new(&format!("other/{i}")).unwrap();
                (filter, SubscriptionOptions::qos(QoS::AtMostOnce))
            })
            .collect();
        let subscribe = Subscribe {
            packet_id: id(1),
            filters,
            properties: Default::default(),
        };
        subscribe_whole(&mut broker, 1, subscribe);
        drain_effects(&mut broker);
        publish_at(&mut broker, "a/b", "m", 2_000);
        let effects = subscribe_at(&mut broker, "a/b", QoS::AtMostOnce, 1_000);
        assert_eq!(
            deliveries(&effects).len(),
            replayed,
            "{others} other filters"
        );
    }
}

/// B unsubscribes from a filter that brought it the message, then
/// subscribes again, both before the message came but both handled after
/// it was routed: it had its copy, and gets no second.
#[test]
fn a_session_that_unsubscribed_since_gets_no_replay() {
    let mut broker = two_clients();
    subscribe_at(&mut broker, "a/b", QoS::AtMostOnce, 500);
    let routed = publish_at(&mut broker, "a/b", "m", 2_000);
    assert_eq!(deliveries(&routed).len(), 1);
    let unsubscribe = crate::codec::Unsubscribe {
        packet_id: id(6),
        filters: vec![TopicFilter::new("a/b").unwrap()],
        properties: Default::default(),
    };
    broker.unsubscribe(ConnId(1), unsubscribe).unwrap();
    drain_effects(&mut broker);
    let effects = subscribe_at(&mut broker, "a/+", QoS::AtMostOnce, 1_000);
    assert_eq!(deliveries(&effects), vec![]);
    // What is routed after the UNSUBSCRIBE is replayed as ever.
    publish_at(&mut broker, "c/d", "n", 3_000);
    let effects = subscribe_at(&mut broker, "c/+", QoS::AtMostOnce, 2_500);
    assert_eq!(
        deliveries(&effects),
        vec![(1, QoS::AtMostOnce, None, "n".into(), false)]
    );
}

/// A topic with a retained message: the retained one is sent after the
/// SUBACK, and a replayed later message before it would put the two out
/// of their publisher's order, so none is replayed.
#[test]
fn no_replay_on_a_topic_the_retained_store_holds() {
    let mut broker = two_clients();
    retain_at(&mut broker, "a/b", "kept", 500);
    publish_at(&mut broker, "a/b", "live", 2_000);
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtLeastOnce, 1_000);
    let got: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(ConnId(1), Packet::Publish(p)) => Some(p.payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![Bytes::from("kept")]);
}

/// What is kept is bounded by its weight too, properties included.
#[test]
fn recent_messages_are_bounded_by_their_weight() {
    let mut broker = two_clients();
    let big = "x".repeat(20 * 1024);
    for n in 0..10u64 {
        publish_at(&mut broker, "a/b", &format!("{n}{big}"), 10_000 + n);
    }
    let effects = subscribe_at(&mut broker, "a/b", QoS::AtMostOnce, 1);
    let got: Vec<_> = deliveries(&effects)
        .into_iter()
        .map(|d| d.3[..1].to_owned())
        .collect();
    assert_eq!(got, ["7", "8", "9"], "three of 20 KiB fit in 64 KiB");
}
