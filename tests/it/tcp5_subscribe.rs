//! MQTT 5.0 subscription options over real TCP (issue 4, item 4): No Local,
//! Retain As Published, Retain Handling, shared subscriptions and the SUBACK
//! reason codes for refused filters.

use tern::codec::{
    Packet, Property, Publish, QoS, ReasonCode, RetainHandling, SubscriptionOptions,
};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// Subscribes `client` to one filter with `options`; returns the SUBACK code.
async fn subscribe(
    client: &mut Raw,
    id: u16,
    filter: &str,
    options: SubscriptionOptions,
) -> ReasonCode {
    subscribe_props(client, id, filter, options, vec![]).await
}

async fn subscribe_props(
    client: &mut Raw,
    id: u16,
    filter: &str,
    options: SubscriptionOptions,
    props: Vec<Property>,
) -> ReasonCode {
    client
        .send(&raw::subscribe_with(id, filter, options, props))
        .await;
    match client.recv().await {
        Packet::SubAck(suback) => {
            assert_eq!(suback.codes.len(), 1);
            suback.codes[0]
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

fn qos1() -> SubscriptionOptions {
    SubscriptionOptions::qos(QoS::AtLeastOnce)
}

async fn v5(broker: &TestBroker, client_id: &str) -> Raw {
    Raw::connected_v5(broker.addr, client_id, vec![]).await.0
}

/// Publishes at QoS 1 and waits for the PUBACK.
async fn publish(client: &mut Raw, topic: &str, id: u16, payload: &[u8], retain: bool) {
    let Packet::Publish(mut publish) = raw::publish(topic, QoS::AtLeastOnce, id, payload) else {
        unreachable!("raw::publish builds a PUBLISH")
    };
    publish.retain = retain;
    client.send(&Packet::Publish(publish)).await;
    assert!(matches!(client.recv().await, Packet::PubAck(_)));
}

fn payload(p: &Publish) -> &str {
    std::str::from_utf8(&p.payload).expect("UTF-8 payload")
}

#[tokio::test]
async fn no_local_keeps_a_client_own_messages_from_it() {
    let broker = TestBroker::start(config()).await;
    let mut me = v5(&broker, "me").await;
    let options = SubscriptionOptions {
        no_local: true,
        ..qos1()
    };
    assert_eq!(
        subscribe(&mut me, 1, "n/#", options).await,
        ReasonCode::GRANTED_QOS_1
    );
    let mut other = v5(&broker, "other").await;
    subscribe(&mut other, 1, "n/#", qos1()).await;
    let mut third = v5(&broker, "third").await;
    publish(&mut me, "n/1", 1, b"mine", false).await;
    publish(&mut third, "n/2", 1, b"theirs", false).await;
    // [MQTT-3.8.3-3]: not forwarded back to the publishing client id.
    let got = me.recv_publish().await;
    assert_eq!(payload(&got), "theirs");
    me.expect_silence().await;
    // Others get it.
    assert_eq!(payload(&other.recv_publish().await), "mine");
    assert_eq!(payload(&other.recv_publish().await), "theirs");
    broker.stop().await;
}

#[tokio::test]
async fn retain_as_published_keeps_the_retain_flag_on_live_messages() {
    let broker = TestBroker::start(config()).await;
    let mut kept = v5(&broker, "kept").await;
    let rap = SubscriptionOptions {
        retain_as_published: true,
        ..qos1()
    };
    subscribe(&mut kept, 1, "rap/#", rap).await;
    let mut cleared = v5(&broker, "cleared").await;
    subscribe(&mut cleared, 1, "rap/#", qos1()).await;
    let mut client = v5(&broker, "pub").await;
    publish(&mut client, "rap/1", 1, b"r", true).await;
    publish(&mut client, "rap/2", 2, b"n", false).await;
    // [MQTT-3.3.1-13]: as published.
    assert!(kept.recv_publish().await.retain);
    assert!(!kept.recv_publish().await.retain);
    // [MQTT-3.3.1-12]: cleared without it.
    assert!(!cleared.recv_publish().await.retain);
    assert!(!cleared.recv_publish().await.retain);
    broker.stop().await;
}

#[tokio::test]
async fn retain_handling_0_1_2() {
    let broker = TestBroker::start(config()).await;
    let mut client = v5(&broker, "pub").await;
    publish(&mut client, "rh/t", 1, b"kept", true).await;
    let with = |retain_handling| SubscriptionOptions {
        retain_handling,
        ..qos1()
    };
    // [MQTT-3.3.1-9]: 0 sends retained messages on every SUBSCRIBE.
    let mut zero = v5(&broker, "zero").await;
    for id in 1..=2 {
        subscribe(&mut zero, id, "rh/#", with(RetainHandling::OnSubscribe)).await;
        let got = zero.recv_publish().await;
        assert!(got.retain, "flagged as retained");
        assert_eq!(payload(&got), "kept");
    }
    // [MQTT-3.3.1-10]: 1 only when the subscription is new.
    let mut one = v5(&broker, "one").await;
    subscribe(&mut one, 1, "rh/#", with(RetainHandling::OnNewSubscription)).await;
    assert_eq!(payload(&one.recv_publish().await), "kept");
    subscribe(&mut one, 2, "rh/#", with(RetainHandling::OnNewSubscription)).await;
    one.expect_silence().await;
    // [MQTT-3.3.1-11]: 2 never.
    let mut two = v5(&broker, "two").await;
    subscribe(&mut two, 1, "rh/#", with(RetainHandling::Never)).await;
    two.expect_silence().await;
    // Live messages still reach all three.
    publish(&mut client, "rh/t", 2, b"live", false).await;
    for sub in [&mut zero, &mut one, &mut two] {
        assert_eq!(payload(&sub.recv_publish().await), "live");
    }
    broker.stop().await;
}

#[tokio::test]
async fn shared_subscription_sends_each_message_to_one_member_in_turn() {
    let broker = TestBroker::start(config()).await;
    let mut a = v5(&broker, "a").await;
    let mut b = v5(&broker, "b").await;
    let mut solo = v5(&broker, "solo").await;
    for member in [&mut a, &mut b] {
        let code = subscribe(member, 1, "$share/g/job/#", qos1()).await;
        assert_eq!(code, ReasonCode::GRANTED_QOS_1);
    }
    subscribe(&mut solo, 1, "job/#", qos1()).await;
    let mut client = v5(&broker, "pub").await;
    for i in 1..=4u16 {
        publish(&mut client, "job/x", i, format!("m{i}").as_bytes(), false).await;
    }
    // 4.8.2: each message to exactly one member; ours take turns.
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    for _ in 0..2 {
        got_a.push(payload(&a.recv_publish().await).to_owned());
        got_b.push(payload(&b.recv_publish().await).to_owned());
    }
    a.expect_silence().await;
    b.expect_silence().await;
    let mut all: Vec<_> = got_a.iter().chain(&got_b).cloned().collect();
    all.sort();
    assert_eq!(all, ["m1", "m2", "m3", "m4"], "a: {got_a:?}, b: {got_b:?}");
    assert!(
        got_a == ["m1", "m3"] || got_a == ["m2", "m4"],
        "round robin: a got {got_a:?}"
    );
    // A non-shared subscription to the same topics gets every message.
    for i in 1..=4 {
        assert_eq!(payload(&solo.recv_publish().await), format!("m{i}"));
    }
    broker.stop().await;
}

#[tokio::test]
async fn shared_subscription_member_that_ends_has_its_unacked_messages_sent_to_another() {
    let broker = TestBroker::start(config()).await;
    let mut leaving = v5(&broker, "leaving").await;
    subscribe(&mut leaving, 1, "$share/g/w/#", qos1()).await;
    let mut client = v5(&broker, "pub").await;
    // Only one member yet: it gets both, and acknowledges neither.
    publish(&mut client, "w/1", 1, b"one", false).await;
    publish(&mut client, "w/2", 2, b"two", false).await;
    for _ in 0..2 {
        assert!(matches!(leaving.recv().await, Packet::Publish(_)));
    }
    let mut staying = v5(&broker, "staying").await;
    subscribe(&mut staying, 1, "$share/g/w/#", qos1()).await;
    // Its session ends with the connection (no expiry).
    drop(leaving);
    let first = staying.recv_publish().await;
    let second = staying.recv_publish().await;
    assert_eq!((payload(&first), payload(&second)), ("one", "two"));
    staying.expect_silence().await;
    broker
        .wait_until("nothing left in flight", |c| {
            c.inflight == 0 && c.queued == 0
        })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn shared_subscription_respects_each_member_qos() {
    let broker = TestBroker::start(config()).await;
    let mut low = v5(&broker, "low").await;
    subscribe(
        &mut low,
        1,
        "$share/g/q",
        SubscriptionOptions::qos(QoS::AtMostOnce),
    )
    .await;
    let mut client = v5(&broker, "pub").await;
    publish(&mut client, "q", 1, b"x", false).await;
    let got = low.recv_publish().await;
    assert_eq!(
        got.qos,
        QoS::AtMostOnce,
        "the lower of published and granted"
    );
    broker.stop().await;
}

#[tokio::test]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    let broker = TestBroker::start(config()).await;
    let mut client = v5(&broker, "c").await;
    let options = SubscriptionOptions {
        no_local: true,
        ..qos1()
    };
    // [MQTT-3.8.3-4]
    client
        .send(&raw::subscribe_with(1, "$share/g/x", options, vec![]))
        .await;
    client.expect_disconnect(ReasonCode::PROTOCOL_ERROR).await;
    broker.stop().await;
}

#[tokio::test]
async fn suback_refuses_invalid_filters_and_quota_with_their_reasons() {
    let broker = TestBroker::start(Config {
        subscriptions_per_client_max: 1,
        topic_levels_max: 3,
        ..config()
    })
    .await;
    let mut client = v5(&broker, "c").await;
    // 3.9.3: 0x8F Topic Filter invalid.
    for (id, filter) in [(1, "$share/g"), (2, "$share/+/x"), (3, "a/b/c/d")] {
        let code = subscribe(&mut client, id, filter, qos1()).await;
        assert_eq!(code, ReasonCode::TOPIC_FILTER_INVALID, "{filter}");
    }
    assert_eq!(
        subscribe(&mut client, 4, "ok", qos1()).await,
        ReasonCode::GRANTED_QOS_1
    );
    // 0x97 Quota exceeded, beyond `subscriptions_per_client_max`.
    assert_eq!(
        subscribe(&mut client, 5, "more", qos1()).await,
        ReasonCode::QUOTA_EXCEEDED
    );
    // Replacing an existing subscription is not one more.
    assert_eq!(
        subscribe(&mut client, 6, "ok", qos1()).await,
        ReasonCode::GRANTED_QOS_1
    );
    broker.stop().await;
}

#[tokio::test]
async fn suback_says_which_features_are_turned_off() {
    let broker = TestBroker::start(Config {
        shared_subscriptions: false,
        wildcard_subscriptions: false,
        subscription_identifiers: false,
        ..config()
    })
    .await;
    let (mut client, connack) = Raw::connected_v5(broker.addr, "c", vec![]).await;
    // 3.2.2.3.11-13: the CONNACK says so first.
    let p = &connack.properties;
    for expected in [
        Property::WildcardSubscriptionAvailable(0),
        Property::SubscriptionIdentifierAvailable(0),
        Property::SharedSubscriptionAvailable(0),
    ] {
        assert!(p.iter().any(|q| q == expected), "{expected:?} in {p:?}");
    }
    let code = subscribe(&mut client, 1, "$share/g/x", qos1()).await;
    assert_eq!(code, ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
    let id = vec![Property::SubscriptionIdentifier(5)];
    let code = subscribe_props(&mut client, 2, "x", qos1(), id).await;
    assert_eq!(code, ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED);
    for (id, filter) in [(3, "x/+"), (4, "x/#")] {
        let code = subscribe(&mut client, id, filter, qos1()).await;
        assert_eq!(
            code,
            ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
            "{filter}"
        );
    }
    assert_eq!(
        subscribe(&mut client, 5, "x", qos1()).await,
        ReasonCode::GRANTED_QOS_1
    );
    assert_eq!(broker.census().subscriptions, 1);
    broker.stop().await;
}

#[tokio::test]
async fn unsuback_has_a_reason_per_filter() {
    let broker = TestBroker::start(config()).await;
    let mut client = v5(&broker, "c").await;
    subscribe(&mut client, 1, "a", qos1()).await;
    subscribe(&mut client, 2, "$share/g/b", qos1()).await;
    let filters = ["a", "never", "$share/g/b"];
    client
        .send(&Packet::Unsubscribe(tern::codec::Unsubscribe {
            packet_id: raw::packet_id(3),
            filters: filters
                .iter()
                .map(|f| tern::topic::TopicFilter::new(f).unwrap())
                .collect(),
            properties: Default::default(),
        }))
        .await;
    match client.recv().await {
        // 3.11.3: one reason code per filter, in order; 0x11 for none.
        Packet::UnsubAck(unsuback) => assert_eq!(
            unsuback.codes,
            [
                ReasonCode::SUCCESS,
                ReasonCode::NO_SUBSCRIPTION_EXISTED,
                ReasonCode::SUCCESS
            ]
        ),
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    assert_eq!(broker.census().subscriptions, 0);
    broker.stop().await;
}
