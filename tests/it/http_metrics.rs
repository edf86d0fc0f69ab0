//! `/metrics` over a real socket, after real MQTT traffic: each figure is
//! read from the parsed scrape and compared with what the clients did,
//! down to the bytes each way (the packets' encoded lengths); and the HTTP
//! side's own bounds: its answers to what it does not serve, its
//! connection limit, and its tasks ending with the broker.

use bytes::BytesMut;
use hyper::{Method, StatusCode};
use tern::codec::{self, ConnAck, ConnectCode, Packet, ProtocolVersion, QoS};
use tern::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::{self, Reply};
use crate::common::prometheus::Scrape;
use crate::common::raw::{self, Raw};
use crate::common::{config, within, TestBroker};

/// Bytes of `packet` on the wire, as a 3.1.1 client or the broker writes it.
fn wire(packet: &Packet) -> u64 {
    let mut buf = BytesMut::new();
    codec::encode(packet, ProtocolVersion::V311, &mut buf);
    buf.len() as u64
}

/// What the clients wrote and read, in packets and bytes.
#[derive(Default)]
struct Tally {
    /// The broker's bytes in, and out.
    to_broker: u64,
    from_broker: u64,
}

impl Tally {
    async fn connect(&mut self, client_id: &str, addr: std::net::SocketAddr) -> Raw {
        self.to_broker += wire(&Packet::Connect(raw::connect_packet(client_id).into()));
        self.from_broker += wire(&Packet::ConnAck(ConnAck {
            session_present: false,
            code: ConnectCode::Accepted,
            properties: Default::default(),
        }));
        Raw::connected(addr, client_id).await
    }

    async fn send(&mut self, client: &mut Raw, packet: Packet) {
        self.to_broker += wire(&packet);
        client.send(&packet).await;
    }

    async fn recv(&mut self, client: &mut Raw) -> Packet {
        let packet = client.recv().await;
        self.from_broker += wire(&packet);
        packet
    }
}

async fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let Reply {
        status,
        content_type,
        body,
    } = http::get(addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape::parse(&body)
}

#[tokio::test]
async fn metrics_show_what_three_clients_and_five_publishes_did() {
    let (broker, http_addr) = TestBroker::start_with_http(Config {
        connections_max: 3,
        ..config()
    })
    .await;
    let mut tally = Tally::default();
    let mut subscriber = tally.connect("sub", broker.addr).await;
    tally
        .send(&mut subscriber, raw::subscribe(1, "t/#", QoS::AtMostOnce))
        .await;
    assert!(matches!(
        tally.recv(&mut subscriber).await,
        Packet::SubAck(_)
    ));
    let mut publisher = tally.connect("pub", broker.addr).await;
    let _idle = tally.connect("idle", broker.addr).await;
    for id in 1..=5 {
        let mut publish = raw::publish("t/x", QoS::AtLeastOnce, id, b"hello");
        if let Packet::Publish(p) = &mut publish {
            p.retain = id == 5;
        }
        tally.send(&mut publisher, publish).await;
        assert!(matches!(
            tally.recv(&mut publisher).await,
            Packet::PubAck(_)
        ));
        assert!(matches!(
            tally.recv(&mut subscriber).await,
            Packet::Publish(_)
        ));
    }
    // A client may not publish to $SYS: received, and dropped.
    tally
        .send(
            &mut publisher,
            raw::publish("$SYS/x", QoS::AtMostOnce, 0, b"no"),
        )
        .await;
    // A fourth connection is one over connections_max.
    Raw::open(broker.addr).await.expect_closed().await;
    let (to_broker, from_broker) = (tally.to_broker, tally.from_broker);
    let before = broker
        .wait_until("the broker to count the traffic", |c| {
            c.dropped.not_authorized == 1
                && c.connections_refused_max == 1
                && c.traffic.bytes_received == to_broker
                && c.traffic.bytes_sent == from_broker
        })
        .await;

    let scrape = scrape(http_addr).await;
    let after = broker.census();
    let value = |name: &str| scrape.value(name, &[]);
    assert_eq!(value("tern_connections"), 3.0);
    assert_eq!(value("tern_connections_accepted_total"), 3.0);
    let refused = |reason| scrape.value("tern_connections_refused_total", &[("reason", reason)]);
    assert_eq!(refused("connections_max"), 1.0);
    let sessions = |state| scrape.value("tern_sessions", &[("state", state)]);
    assert_eq!((sessions("connected"), sessions("offline")), (3.0, 0.0));
    assert_eq!(value("tern_subscriptions"), 1.0);
    assert_eq!(value("tern_retained_messages"), 1.0);
    assert_eq!(value("tern_queued_messages"), 0.0);
    assert_eq!(value("tern_messages_received_total"), 6.0);
    assert_eq!(value("tern_messages_sent_total"), 5.0);
    assert_eq!(value("tern_received_bytes_total"), to_broker as f64);
    assert_eq!(value("tern_sent_bytes_total"), from_broker as f64);
    let dropped = |reason| scrape.value("tern_messages_dropped_total", &[("reason", reason)]);
    assert_eq!(dropped("not_authorized"), 1.0);
    for reason in [
        "queue_full",
        "outbound_full",
        "too_large",
        "expired",
        "memory_full",
        "store_failed",
    ] {
        assert_eq!(dropped(reason), 0.0, "{reason}");
    }
    assert_eq!(scrape.all("tern_messages_dropped_total").len(), 9);
    let tasks = |kind| scrape.value("tern_tasks", &[("kind", kind)]);
    assert_eq!((tasks("acceptor"), tasks("connection")), (1.0, 3.0));
    assert!(
        tasks("http") >= 2.0,
        "the acceptor and this scrape's connection"
    );
    for reason in [
        "auth",
        "not_owner",
        "memory",
        "store_failed",
        "sessions_max",
    ] {
        let refused = scrape.value("tern_connects_refused_total", &[("reason", reason)]);
        assert_eq!(refused, 0.0, "{reason}");
    }

    // The lock hold histogram: cumulative buckets, +Inf holding them all,
    // as many holds as the census counted around the scrape.
    let buckets = scrape.all("tern_lock_hold_seconds_bucket");
    assert_eq!(buckets.len(), 20, "19 bounds and +Inf");
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value
        && w[0].labels["le"].parse::<f64>().unwrap() < w[1].labels["le"].parse::<f64>().unwrap()));
    let count = value("tern_lock_hold_seconds_count");
    assert_eq!(buckets.last().unwrap().value, count);
    assert!(
        (before.lock_holds as f64..=after.lock_holds as f64).contains(&count),
        "{count} holds, census {} then {}",
        before.lock_holds,
        after.lock_holds
    );
    assert!(value("tern_lock_hold_seconds_sum") > 0.0);

    // Every family is the broker's, and its counters say so.
    for (family, kind) in &scrape.types {
        assert!(family.starts_with("tern_"), "{family}");
        assert_eq!(
            family.ends_with("_total"),
            kind == "counter",
            "{family} is a {kind}"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn each_broker_has_its_own_metrics() {
    let (first, first_http) = TestBroker::start_with_http(config()).await;
    let (second, second_http) = TestBroker::start_with_http(config()).await;
    let _a = Raw::connected(first.addr, "a").await;
    let _b = Raw::connected(first.addr, "b").await;
    let _c = Raw::connected(second.addr, "c").await;
    first.wait_connections(2).await;
    second.wait_connections(1).await;
    assert_eq!(scrape(first_http).await.value("tern_connections", &[]), 2.0);
    assert_eq!(
        scrape(second_http).await.value("tern_connections", &[]),
        1.0
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn what_is_not_served_is_refused() {
    let (broker, http_addr) = TestBroker::start_with_http(config()).await;
    assert_eq!(
        http::get(http_addr, "/nothing").await.status,
        StatusCode::NOT_FOUND
    );
    let post = http::request(http_addr, Method::POST, "/metrics").await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    let status = http::get(http_addr, "/status.json").await;
    assert_eq!(status.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_str(&status.body).expect("JSON");
    assert_eq!(json["census"]["connections"], 0);
    broker.stop().await;
}

/// Connections over the limit are closed as soon as accepted; those that
/// hold a slot idle, or stop half-way through a request's head, end when
/// the broker stops (`TestBroker::stop` fails on any task left).
#[tokio::test]
async fn http_connections_are_bounded_and_end_with_the_broker() {
    let (broker, http_addr) = TestBroker::start_with_http(config()).await;
    let mut held = Vec::new();
    for _ in 0..tern::http::CONNECTIONS_MAX {
        held.push(TcpStream::connect(http_addr).await.expect("connect"));
    }
    held[0]
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("a partial head");
    let http_tasks = 1 + tern::http::CONNECTIONS_MAX;
    broker
        .wait_until("every HTTP connection to hold a slot", |c| {
            c.tasks_of("http") == http_tasks
        })
        .await;
    let mut one_more = TcpStream::connect(http_addr).await.expect("connect");
    let read = within("the close", one_more.read(&mut [0; 1])).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(broker.census().tasks_of("http"), http_tasks);
    broker.stop().await;
}
