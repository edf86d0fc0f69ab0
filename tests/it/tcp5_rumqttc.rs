//! tern with a 5.0 client library it did not write: rumqttc's v5 client,
//! over real TCP. Its encoder and decoder are someone else's reading of the
//! 5.0 specification, so these round trips check our properties, reason
//! codes and CONNACK against theirs (issue 4, items 2, 3 and 8).

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Packet, Publish, PublishProperties, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tern::Config;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::common::client::Client as V4Client;
use crate::common::{config, TestBroker, WAIT};

/// A rumqttc v5 client whose event loop runs in a task, with what it
/// receives forwarded to the test.
struct V5 {
    mqtt: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Result<Packet, String>>,
    driver: JoinHandle<()>,
}

fn options(broker: &TestBroker, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, broker.addr.ip().to_string(), broker.addr.port());
    options.set_keep_alive(Duration::from_secs(60));
    options
}

impl V5 {
    async fn connect(options: MqttOptions) -> (V5, ConnAck) {
        let (mqtt, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, incoming) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                let event = match eventloop.poll().await {
                    Ok(Event::Incoming(packet)) => Ok(packet),
                    Ok(Event::Outgoing(_)) => continue,
                    Err(error) => Err(error.to_string()),
                };
                let failed = event.is_err();
                if tx.send(event).is_err() || failed {
                    return;
                }
            }
        });
        let mut client = V5 {
            mqtt,
            incoming,
            driver,
        };
        let connack = client
            .expect("CONNACK", |p| match p {
                Packet::ConnAck(c) => Some(c.clone()),
                _ => None,
            })
            .await;
        (client, connack)
    }

    /// The first packet `pick` accepts; others are skipped.
    async fn expect<T>(&mut self, what: &str, pick: impl Fn(&Packet) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.incoming.recv()).await;
            match next {
                Err(_) => panic!("timed out waiting for {what}"),
                Ok(None) => panic!("event loop ended waiting for {what}"),
                Ok(Some(Err(error))) => panic!("connection failed waiting for {what}: {error}"),
                Ok(Some(Ok(packet))) => {
                    if let Some(found) = pick(&packet) {
                        return found;
                    }
                }
            }
        }
    }

    async fn recv(&mut self) -> Publish {
        self.expect("PUBLISH", |p| match p {
            Packet::Publish(publish) => Some(publish.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes at QoS 1, with a Subscription Identifier if `id` is one.
    async fn subscribe(&mut self, filter: &str, id: Option<usize>) {
        let properties = SubscribeProperties {
            id,
            user_properties: vec![],
        };
        self.mqtt
            .subscribe_with_properties(filter, QoS::AtLeastOnce, properties)
            .await
            .expect("rumqttc takes the request");
        self.expect("SUBACK", |p| matches!(p, Packet::SubAck(_)).then_some(()))
            .await;
    }

    async fn disconnect(mut self) {
        self.mqtt
            .disconnect()
            .await
            .expect("rumqttc takes the request");
        // The event loop ends when the broker closes.
        while let Some(Ok(_)) = tokio::time::timeout(WAIT, self.incoming.recv())
            .await
            .expect("the broker closes after DISCONNECT")
        {}
        self.driver.abort();
    }
}

impl Drop for V5 {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

#[tokio::test]
async fn rumqttc_v5_round_trip_keeps_every_property() {
    let broker = TestBroker::start(config()).await;
    let (mut sub, connack) = V5::connect(options(&broker, "sub")).await;
    assert!(!connack.session_present);
    sub.subscribe("rr/#", Some(42)).await;
    let (publisher, _) = V5::connect(options(&broker, "pub")).await;
    let properties = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(300),
        content_type: Some("text/plain".into()),
        response_topic: Some("rr/reply".into()),
        correlation_data: Some(Bytes::from_static(b"req-1")),
        user_properties: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        ..Default::default()
    };
    publisher
        .mqtt
        .publish_with_properties(
            "rr/req",
            QoS::AtLeastOnce,
            false,
            "ping",
            properties.clone(),
        )
        .await
        .expect("rumqttc takes the request");
    let got = sub.recv().await;
    assert_eq!(
        (&got.topic[..], &got.payload[..]),
        (&b"rr/req"[..], &b"ping"[..])
    );
    let got = got.properties.expect("properties");
    assert_eq!(got.subscription_identifiers, [42]);
    let expiry = got.message_expiry_interval.expect("an expiry");
    assert!((298..=300).contains(&expiry), "{expiry}");
    let expected = PublishProperties {
        message_expiry_interval: got.message_expiry_interval,
        subscription_identifiers: vec![42],
        ..properties
    };
    assert_eq!(got, expected);
    broker.stop().await;
}

#[tokio::test]
async fn rumqttc_v5_resumes_a_session_within_its_expiry() {
    let broker = TestBroker::start(config()).await;
    let mut keeper = options(&broker, "keeper");
    keeper.set_clean_start(false);
    keeper.set_session_expiry_interval(Some(60));
    let (mut sub, _) = V5::connect(keeper.clone()).await;
    sub.subscribe("k/#", None).await;
    sub.disconnect().await;
    broker
        .wait_until("the session offline", |c| c.sessions_offline == 1)
        .await;
    let mut old = V4Client::connect(broker.addr, "old").await;
    old.publish("k/1", rumqttc::QoS::AtLeastOnce, false, "while away")
        .await;
    let (mut sub, connack) = V5::connect(keeper).await;
    assert!(connack.session_present);
    assert_eq!(&sub.recv().await.payload[..], b"while away");
    broker.stop().await;
}

#[tokio::test]
async fn rumqttc_v5_reads_our_connack_properties() {
    let broker = TestBroker::start(Config {
        receive_maximum: 16,
        topic_alias_max: 4,
        keep_alive_max_secs: 30,
        ..config()
    })
    .await;
    let mut anonymous = options(&broker, "");
    anonymous.set_clean_start(true);
    let (_client, connack) = V5::connect(anonymous).await;
    let properties = connack.properties.expect("CONNACK properties");
    assert!(properties
        .assigned_client_identifier
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(properties.receive_max, Some(16));
    assert_eq!(properties.topic_alias_max, Some(4));
    assert_eq!(properties.server_keep_alive, Some(30));
    broker.stop().await;
}

#[tokio::test]
async fn rumqttc_v311_and_v5_clients_exchange_messages() {
    let broker = TestBroker::start(config()).await;
    let (mut new, _) = V5::connect(options(&broker, "new")).await;
    new.subscribe("x/#", None).await;
    let mut old = V4Client::connect(broker.addr, "old").await;
    old.subscribe("x/#", rumqttc::QoS::AtLeastOnce).await;
    let properties = PublishProperties {
        user_properties: vec![("only".into(), "5.0".into())],
        ..Default::default()
    };
    new.mqtt
        .publish_with_properties("x/from5", QoS::AtLeastOnce, false, "five", properties)
        .await
        .expect("rumqttc takes the request");
    old.publish("x/from3", rumqttc::QoS::AtLeastOnce, false, "three")
        .await;
    let got = old.recv().await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("x/from5", &b"five"[..])
    );
    let got = old.recv().await;
    assert_eq!(got.topic, "x/from3");
    assert_eq!(&new.recv().await.payload[..], b"five");
    assert_eq!(&new.recv().await.payload[..], b"three");
    broker.stop().await;
}
