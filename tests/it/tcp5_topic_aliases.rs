//! Topic aliases the broker sets on what it sends a 5.0 client that allows
//! them (issue 15): a topic sent again goes as two bytes instead of its
//! name, within the client's Topic Alias Maximum and Maximum Packet Size.
//! Read off the socket byte by byte, so that what each PUBLISH carries on
//! the wire is seen, not only what it decodes to.

use bytes::{Bytes, BytesMut};
use tern::codec::{
    self, DecodeOptions, Packet, Property, ProtocolVersion, PublishLayout, QoS, TopicAliases,
};
use tern::Config;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::common::raw::{self, Raw};
use crate::common::{config, within, TestBroker};

/// One PUBLISH as the subscriber got it.
#[derive(Debug, PartialEq)]
struct Got {
    /// The topic it resolves to.
    topic: String,
    /// The topic as it was on the wire: empty when the alias stood for it.
    named: String,
    alias: Option<u16>,
    payload: Bytes,
    /// Its size on the wire.
    size: usize,
}

/// A 5.0 subscriber that resolves the aliases the broker sets, as a client
/// that announced `alias_max` does.
struct Subscriber {
    stream: TcpStream,
    rbuf: BytesMut,
    aliases: TopicAliases,
}

impl Subscriber {
    async fn start(broker: &TestBroker, id: &str, props: Vec<Property>, qos: QoS) -> Subscriber {
        let alias_max = props
            .iter()
            .find_map(|p| match p {
                Property::TopicAliasMaximum(max) => Some(*max),
                _ => None,
            })
            .unwrap_or(0);
        let (mut client, _) = Raw::connected_v5(broker.addr, id, props).await;
        client.send(&raw::subscribe(1, "t/#", qos)).await;
        assert!(matches!(client.recv().await, Packet::SubAck(_)));
        let (stream, rbuf) = client.into_parts();
        Subscriber {
            stream,
            rbuf,
            aliases: TopicAliases::new(alias_max),
        }
    }

    async fn next(&mut self) -> Got {
        within("a PUBLISH", async {
            loop {
                if let Some(got) = self.decode() {
                    return got;
                }
                let n = self.stream.read_buf(&mut self.rbuf).await.expect("a read");
                assert!(n > 0, "the broker closed the connection");
            }
        })
        .await
    }

    fn decode(&mut self) -> Option<Got> {
        let before = self.rbuf.clone().freeze();
        let options = DecodeOptions {
            version: ProtocolVersion::V5,
            ..DecodeOptions::default()
        };
        let decoded = codec::decode_with_aliases(&mut self.rbuf, &options, &mut self.aliases);
        let packet = decoded.expect("the broker's aliases are ones we allow")?;
        let Packet::Publish(p) = packet else {
            panic!("expected a PUBLISH, got {packet:?}");
        };
        let size = before.len() - self.rbuf.len();
        let frame = before.slice(..size);
        let layout = PublishLayout::read(&frame).expect("a PUBLISH");
        Some(Got {
            topic: p.topic.as_str().to_owned(),
            named: layout.topic().to_owned(),
            alias: p.properties.topic_alias(),
            payload: p.payload,
            size,
        })
    }
}

/// Publishes each topic in turn at QoS 1, waiting for each PUBACK, so that
/// the subscribers get them in this order.
async fn publish_each(broker: &TestBroker, topics: &[&str]) {
    let mut publisher = Raw::connected(broker.addr, "pub").await;
    for (i, topic) in topics.iter().enumerate() {
        let id = u16::try_from(i + 1).expect("few");
        let payload = format!("m{i}");
        publisher
            .send(&raw::publish(
                topic,
                QoS::AtLeastOnce,
                id,
                payload.as_bytes(),
            ))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
}

/// What each PUBLISH carried: the topic named on the wire, and the alias.
fn naming(got: &[Got]) -> Vec<(&str, Option<u16>)> {
    got.iter().map(|g| (g.named.as_str(), g.alias)).collect()
}

async fn receive(sub: &mut Subscriber, n: usize) -> Vec<Got> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(sub.next().await);
    }
    got
}

#[tokio::test]
async fn a_topic_sent_again_goes_by_its_alias() {
    let broker = TestBroker::start(config()).await;
    let props = || vec![Property::TopicAliasMaximum(2)];
    // QoS 0: a frame shared by all, named for each; QoS 1: a packet each.
    let mut subs = [
        Subscriber::start(&broker, "s0", props(), QoS::AtMostOnce).await,
        Subscriber::start(&broker, "s0b", props(), QoS::AtMostOnce).await,
        Subscriber::start(&broker, "s1", props(), QoS::AtLeastOnce).await,
    ];
    let topics = [
        "t/alpha",
        "t/bravo",
        "t/alpha",
        "t/bravo",
        "t/charlie",
        "t/alpha",
        "t/charlie",
        "t/charlie",
        "t/bravo",
    ];
    publish_each(&broker, &topics).await;
    for sub in &mut subs {
        let got = receive(sub, topics.len()).await;
        let resolved: Vec<&str> = got.iter().map(|g| g.topic.as_str()).collect();
        assert_eq!(
            resolved, topics,
            "each resolves to the topic it was sent to"
        );
        let payloads: Vec<Bytes> = got.iter().map(|g| g.payload.clone()).collect();
        let sent: Vec<Bytes> = (0..topics.len()).map(|i| format!("m{i}").into()).collect();
        assert_eq!(payloads, sent);
        assert_eq!(
            naming(&got),
            [
                ("t/alpha", Some(1)),
                ("t/bravo", Some(2)),
                ("", Some(1)),
                ("", Some(2)),
                // Both aliases taken: "t/charlie" once is named in full...
                ("t/charlie", None),
                ("", Some(1)),
                // ...and again soon, it takes the least recently used.
                ("t/charlie", Some(2)),
                ("", Some(2)),
                ("t/bravo", None),
            ]
        );
        // By alias alone: the topic's bytes fewer than setting the alias.
        assert_eq!(got[2].size, got[0].size - "t/alpha".len());
    }
    broker.stop().await;
}

#[tokio::test]
async fn no_aliases_for_a_client_that_allows_none() {
    let broker = TestBroker::start(config()).await;
    let mut v5 = Subscriber::start(&broker, "none", vec![], QoS::AtMostOnce).await;
    let mut zero = Subscriber::start(
        &broker,
        "zero",
        vec![Property::TopicAliasMaximum(0)],
        QoS::AtLeastOnce,
    )
    .await;
    let mut v311 = Raw::connected(broker.addr, "v311").await;
    v311.send(&raw::subscribe(1, "t/#", QoS::AtMostOnce)).await;
    assert!(matches!(v311.recv().await, Packet::SubAck(_)));
    publish_each(&broker, &["t/alpha", "t/alpha"]).await;
    for sub in [&mut v5, &mut zero] {
        let got = receive(sub, 2).await;
        assert_eq!(naming(&got), [("t/alpha", None), ("t/alpha", None)]);
    }
    for _ in 0..2 {
        assert_eq!(v311.recv_publish().await.topic.as_str(), "t/alpha");
    }
    broker.stop().await;
}

#[tokio::test]
async fn no_more_aliases_than_the_broker_sets_nor_past_the_maximum_packet_size() {
    let broker = TestBroker::start(Config {
        topic_alias_sent_max: 1,
        ..config()
    })
    .await;
    // A PUBLISH to "t/alpha" with payload "m0" is 14 bytes (5.0, QoS 0): one
    // that set an alias would be 17.
    let props = vec![
        Property::TopicAliasMaximum(10),
        Property::MaximumPacketSize(16),
    ];
    let mut tight = Subscriber::start(&broker, "tight", props, QoS::AtMostOnce).await;
    let mut one = Subscriber::start(
        &broker,
        "one",
        vec![Property::TopicAliasMaximum(10)],
        QoS::AtMostOnce,
    )
    .await;
    publish_each(
        &broker,
        &["t/alpha", "t/bravo", "t/bravo", "t/alpha", "t/alpha"],
    )
    .await;
    let got = receive(&mut tight, 5).await;
    assert_eq!(got[0].size, 14);
    assert!(got.iter().all(|g| g.alias.is_none()), "{got:?}");
    let got = receive(&mut one, 5).await;
    assert_eq!(
        naming(&got),
        [
            ("t/alpha", Some(1)),
            ("t/bravo", None),
            ("t/bravo", Some(1)),
            ("t/alpha", None),
            ("t/alpha", Some(1)),
        ]
    );
    broker.stop().await;
}
