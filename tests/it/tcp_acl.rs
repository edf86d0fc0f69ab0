//! The ACL over real TCP, in both protocol versions: a SUBSCRIBE refused
//! filter by filter, a PUBLISH to a topic its client may not write reaching
//! no one, a `#` subscriber kept from what it may not read (live, retained,
//! shared), a will to a forbidden topic not published, and patterns filled
//! in with the client's own names. Without a password file a user name is
//! taken as given, which is enough to pick the rules.

use std::time::Duration;

use tern::codec::{Connect, Packet, Property, QoS, ReasonCode, Subscribe, SubscriptionOptions};
use tern::topic::TopicFilter;
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, temp_path, TestBroker};

const RULES: &str = "\
# anonymous clients
topic read public/#
topic deny public/private/#

user reader
topic read #
topic deny secret/#

user admin
topic readwrite #

user writer
topic write #
topic deny forbidden/#

pattern readwrite users/%u/#
pattern read devices/%c/#
";

const GRANTED: ReasonCode = ReasonCode::GRANTED_QOS_1;

/// A broker with `RULES`: it reads them as it starts, and the file is
/// removed once it has.
async fn broker(name: &str) -> TestBroker {
    let path = temp_path(&format!("acl-{name}"));
    std::fs::write(&path, RULES).expect("write the acl file");
    TestBroker::start(Config {
        acl_file: Some(path.to_path_buf()),
        ..config()
    })
    .await
}

fn as_user(mut connect: Connect, user: &str) -> Connect {
    connect.username = Some(user.to_owned());
    connect
}

/// Connects `client_id` as `user` (none: anonymous), 3.1.1 or 5.0.
async fn client(broker: &TestBroker, v5: bool, client_id: &str, user: Option<&str>) -> Raw {
    let mut connect = if v5 {
        raw::connect_v5(client_id)
    } else {
        raw::connect_packet(client_id)
    };
    connect.username = user.map(str::to_owned);
    let (client, connack) = Raw::connect(broker.addr, connect).await;
    assert_eq!(connack.code, tern::codec::ConnectCode::Accepted);
    client
}

/// Subscribes to `filters` at QoS 1 in one SUBSCRIBE; returns the codes.
async fn subscribe(client: &mut Raw, filters: &[&str]) -> Vec<ReasonCode> {
    let filters = filters
        .iter()
        .map(|f| {
            (
                TopicFilter::new(f).unwrap(),
                SubscriptionOptions::qos(QoS::AtLeastOnce),
            )
        })
        .collect();
    client
        .send(&Packet::Subscribe(Subscribe {
            packet_id: raw::packet_id(1),
            filters,
            properties: Default::default(),
        }))
        .await;
    match client.recv().await {
        Packet::SubAck(suback) => suback.codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Publishes at QoS 1; returns the PUBACK's reason.
async fn publish_qos1(client: &mut Raw, topic: &str, id: u16, retain: bool) -> ReasonCode {
    let Packet::Publish(mut publish) = raw::publish(topic, QoS::AtLeastOnce, id, b"m") else {
        unreachable!()
    };
    publish.retain = retain;
    client.send(&Packet::Publish(publish)).await;
    match client.recv().await {
        Packet::PubAck(ack) => ack.reason,
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test]
async fn a_denied_filter_is_refused_alone() {
    let broker = broker("filters").await;
    let filters = [
        "public/news",
        "secret/#",
        "public/private/#",
        "$share/g/secret/x",
        "$share/g/public/+",
        "$SYS/#",
    ];
    // 3.1.1 says 0x80 (decoded as UNSPECIFIED_ERROR), 5.0 says why: 0x87.
    for (v5, no) in [
        (false, ReasonCode::UNSPECIFIED_ERROR),
        (true, ReasonCode::NOT_AUTHORIZED),
    ] {
        let mut anonymous = client(&broker, v5, "anon", None).await;
        let codes = subscribe(&mut anonymous, &filters).await;
        assert_eq!(codes, [GRANTED, no, no, no, GRANTED, no], "5.0: {v5}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_denied_publish_reaches_nobody() {
    let broker = broker("publish").await;
    let mut admin = client(&broker, true, "admin", Some("admin")).await;
    assert_eq!(subscribe(&mut admin, &["#"]).await, [GRANTED]);
    for v5 in [false, true] {
        let mut writer = client(&broker, v5, "w", Some("writer")).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            writer
                .send(&raw::publish("forbidden/x", qos, 7, b"no"))
                .await;
            let ack = match qos {
                QoS::AtMostOnce => None,
                _ => Some(writer.recv().await),
            };
            // 3.1.1 acks as mosquitto does, 5.0 says 0x87; no one gets it.
            let reason = if v5 {
                ReasonCode::NOT_AUTHORIZED
            } else {
                ReasonCode::SUCCESS
            };
            match ack {
                Some(Packet::PubAck(ack)) | Some(Packet::PubRec(ack)) => {
                    assert_eq!(ack.reason, reason, "{qos:?} 5.0: {v5}")
                }
                None => {}
                other => panic!("expected an ack, got {other:?}"),
            }
        }
        writer
            .send(&raw::publish("allowed/x", QoS::AtMostOnce, 0, b"yes"))
            .await;
        let first = admin.recv_publish().await;
        assert_eq!(
            first.topic.as_str(),
            "allowed/x",
            "the denied ones came first"
        );
    }
    assert_eq!(broker.census().broker.dropped.not_authorized, 6);
    broker.stop().await;
}

#[tokio::test]
async fn a_hash_subscriber_gets_only_what_it_may_read() {
    let broker = broker("read").await;
    let mut admin = client(&broker, false, "admin", Some("admin")).await;
    for (i, topic) in ["open/a", "secret/b"].into_iter().enumerate() {
        assert_eq!(
            publish_qos1(&mut admin, topic, i as u16 + 1, true).await,
            ReasonCode::SUCCESS
        );
    }
    for v5 in [false, true] {
        let mut reader = client(&broker, v5, "r", Some("reader")).await;
        assert_eq!(subscribe(&mut reader, &["#"]).await, [GRANTED]);
        // Retained: open/a, not secret/b.
        let retained = reader.recv_publish().await;
        assert_eq!((retained.topic.as_str(), retained.retain), ("open/a", true));
        // Live: the same.
        for (i, topic) in ["secret/c", "open/d"].into_iter().enumerate() {
            publish_qos1(&mut admin, topic, i as u16 + 3, false).await;
        }
        assert_eq!(reader.recv_publish().await.topic.as_str(), "open/d");
        reader.expect_silence().await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_shared_subscription_gives_a_message_only_to_a_member_that_may_read_it() {
    let broker = broker("shared").await;
    let mut admin = client(&broker, true, "admin", Some("admin")).await;
    let mut reader = client(&broker, true, "reader", Some("reader")).await;
    assert_eq!(subscribe(&mut admin, &["$share/g/#"]).await, [GRANTED]);
    assert_eq!(subscribe(&mut reader, &["$share/g/#"]).await, [GRANTED]);
    let mut publisher = client(&broker, false, "p", Some("admin")).await;
    for id in 1..=4 {
        publish_qos1(&mut publisher, "secret/x", id, false).await;
    }
    for _ in 1..=4 {
        assert_eq!(admin.recv_publish().await.topic.as_str(), "secret/x");
    }
    reader.expect_silence().await;
    // A message whose member ended before acknowledging it goes to another
    // member that may read it, and there is none.
    publish_qos1(&mut publisher, "secret/y", 5, false).await;
    let Packet::Publish(unacked) = admin.recv().await else {
        panic!("expected the PUBLISH");
    };
    assert_eq!(unacked.topic.as_str(), "secret/y");
    admin.reset();
    broker
        .wait_until("the message dropped", |c| {
            c.broker.dropped.shared_undeliverable == 1
        })
        .await;
    reader.expect_silence().await;
    broker.stop().await;
}

/// How a will's session ends in `a_will_to_a_topic_its_client_may_not_write_is_not_published`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WillEnd {
    /// Published as the connection is lost.
    AtOnce,
    /// After a Will Delay Interval of 1 s (5.0).
    Delayed,
    /// Within a long delay, by a clean start that ends the session (5.0).
    SessionEnded,
}

#[tokio::test]
async fn a_will_to_a_topic_its_client_may_not_write_is_not_published() {
    let broker = broker("wills").await;
    let mut admin = client(&broker, true, "admin", Some("admin")).await;
    assert_eq!(subscribe(&mut admin, &["#"]).await, [GRANTED]);
    let cases = [
        (false, WillEnd::AtOnce),
        (true, WillEnd::AtOnce),
        (true, WillEnd::Delayed),
        (true, WillEnd::SessionEnded),
    ];
    for (v5, end) in cases {
        for topic in ["forbidden/will", "wills/ok"] {
            let connect = || {
                let connect = if v5 {
                    raw::connect_v5(topic)
                } else {
                    raw::connect_packet(topic)
                };
                as_user(connect, "writer")
            };
            let mut with_will = connect();
            let mut will = raw::will(topic, "gone", QoS::AtMostOnce, false);
            let delay = match end {
                WillEnd::AtOnce => 0,
                WillEnd::Delayed => 1,
                WillEnd::SessionEnded => 60,
            };
            if v5 {
                will.properties = vec![Property::WillDelayInterval(delay)].into();
                with_will.properties = vec![Property::SessionExpiryInterval(60)].into();
            }
            with_will.will = Some(will);
            let (dying, _) = Raw::connect(broker.addr, with_will).await;
            dying.reset();
            broker.wait_connections(1).await;
            if end == WillEnd::SessionEnded {
                let (again, _) = Raw::connect(broker.addr, connect()).await;
                again.reset();
                broker.wait_connections(1).await;
            }
        }
        let will = admin.recv_publish().await;
        assert_eq!(will.topic.as_str(), "wills/ok", "5.0: {v5}, {end:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    admin.expect_silence().await;
    broker.stop().await;
}

#[tokio::test]
async fn patterns_name_the_client_and_its_user() {
    let broker = broker("patterns").await;
    for v5 in [false, true] {
        let no = if v5 {
            ReasonCode::NOT_AUTHORIZED
        } else {
            ReasonCode::UNSPECIFIED_ERROR
        };
        let mut ann = client(&broker, v5, "dev1", Some("ann")).await;
        let filters = [
            "users/ann/#",
            "users/bob/#",
            "devices/dev1/+",
            "devices/dev2/+",
        ];
        assert_eq!(
            subscribe(&mut ann, &filters).await,
            [GRANTED, no, GRANTED, no]
        );
        let denied = if v5 {
            ReasonCode::NOT_AUTHORIZED
        } else {
            ReasonCode::SUCCESS
        };
        assert_eq!(
            publish_qos1(&mut ann, "users/bob/x", 1, false).await,
            denied
        );
        assert_eq!(
            publish_qos1(&mut ann, "devices/dev1/x", 2, false).await,
            denied,
            "read only"
        );
        // Its own, which it also reads.
        ann.send(&raw::publish("users/ann/x", QoS::AtMostOnce, 0, b"m"))
            .await;
        assert_eq!(ann.recv_publish().await.topic.as_str(), "users/ann/x");
        // An anonymous client has no %u: users/+ is not its.
        let mut anonymous = client(&broker, v5, "dev2", None).await;
        let filters = ["users/dev2/#", "devices/dev2/#"];
        assert_eq!(subscribe(&mut anonymous, &filters).await, [no, GRANTED]);
    }
    broker.stop().await;
}

#[test]
fn the_binary_names_a_bad_line_and_exits() {
    let acl = temp_path("acl-bad");
    std::fs::write(&acl, "user alice\ntopic reed a/b\n").expect("write the acl file");
    let config = temp_path("acl-bad.toml");
    let text = format!(
        "listen = [\"127.0.0.1:0\"]\nacl_file = {:?}\n",
        acl.display().to_string()
    );
    std::fs::write(&config, text).expect("write the config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run tern");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "tern: acl file {} line 2: \"reed\" is not read, write, readwrite or deny\n",
        acl.display()
    );
    assert_eq!(stderr, expected);
}
