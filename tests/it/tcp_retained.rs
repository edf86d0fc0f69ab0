//! Retained messages over real TCP: stored, replaced, cleared by an empty
//! payload, handed to each new subscription with the retain flag, and sent
//! to live subscribers without it.

use rumqttc::QoS;

use crate::common::client::Client;
use crate::common::{config, TestBroker};

#[tokio::test]
async fn retained_is_stored_replaced_and_cleared() {
    let broker = TestBroker::start(config()).await;
    let mut live = Client::connect(broker.addr, "live").await;
    live.subscribe("r/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;

    publisher.publish("r/a", QoS::AtLeastOnce, true, "v1").await;
    assert_eq!(broker.census().retained, 1);
    let got = live.recv().await;
    assert_eq!((got.payload.as_ref(), got.retain), (&b"v1"[..], false));

    let mut first = Client::connect(broker.addr, "first").await;
    first.subscribe("r/#", QoS::ExactlyOnce).await;
    let got = first.recv().await;
    assert_eq!(got.topic, "r/a");
    assert_eq!(got.payload, "v1");
    assert!(got.retain, "a new subscription gets the retain flag");
    assert_eq!(got.qos, QoS::AtLeastOnce, "stored at the QoS it was sent");

    publisher.publish("r/a", QoS::AtLeastOnce, true, "v2").await;
    assert_eq!(broker.census().retained, 1, "replaced, not added");
    for client in [&mut live, &mut first] {
        let got = client.recv().await;
        assert_eq!((got.payload.as_ref(), got.retain), (&b"v2"[..], false));
    }

    let mut second = Client::connect(broker.addr, "second").await;
    second.subscribe("r/+", QoS::AtMostOnce).await;
    let got = second.recv().await;
    assert_eq!(got.payload, "v2", "only the latest is kept");
    assert!(got.retain);
    assert_eq!(got.qos, QoS::AtMostOnce, "the lesser of stored and granted");

    publisher.publish("r/a", QoS::AtLeastOnce, true, "").await;
    assert_eq!(broker.census().retained, 0);
    // The clearing message itself still reaches live subscribers.
    let got = live.recv().await;
    assert_eq!((got.payload.len(), got.retain), (0, false));

    let mut third = Client::connect(broker.addr, "third").await;
    third.subscribe("r/#", QoS::AtLeastOnce).await;
    // Retained messages follow the SUBACK, so a cleared one would come
    // before this marker.
    publisher
        .publish("r/m", QoS::AtLeastOnce, false, "marker")
        .await;
    let got = third.recv().await;
    assert_eq!((got.payload.as_ref(), got.retain), (&b"marker"[..], false));
    broker.stop().await;
}

#[tokio::test]
async fn retained_messages_are_per_topic() {
    let broker = TestBroker::start(config()).await;
    let mut publisher = Client::connect(broker.addr, "pub").await;
    for topic in ["t/a", "t/b", "t/b/c", "u/a"] {
        publisher
            .publish(topic, QoS::AtLeastOnce, true, topic)
            .await;
    }
    assert_eq!(broker.census().retained, 4);
    let mut sub = Client::connect(broker.addr, "sub").await;
    sub.subscribe("t/+", QoS::AtLeastOnce).await;
    publisher
        .publish("t/m", QoS::AtLeastOnce, false, "marker")
        .await;
    let mut seen = Vec::new();
    loop {
        let got = sub.recv().await;
        if got.payload == "marker" {
            break;
        }
        assert!(got.retain, "{got:?}");
        seen.push(got.topic);
    }
    seen.sort();
    assert_eq!(seen, ["t/a", "t/b"]);
    broker.stop().await;
}
