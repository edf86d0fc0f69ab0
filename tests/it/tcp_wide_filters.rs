//! One client's many deep filters (issue 12, row 1): 10,000 filters of 200
//! levels took 1,957 MB when each trie level was a map (a B-tree leaf,
//! about a kilobyte, for one child). Against the real binary, which counts
//! its heap: what the filters add stays within twice what their trie nodes
//! and their own text hold, and another client's round trips are answered
//! while they go in. `benches/subscriptions.py` measures the full size.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use tern::codec::{self, Packet, ProtocolVersion, QoS, ReasonCode};

use crate::common::binary::{free_addr, Binary};
use crate::common::http;
use crate::common::prometheus::Scrape;
use crate::common::raw::{self, Raw};

/// SUBSCRIBEs, each of `PER_SUBSCRIBE` filters of `LEVELS` levels: 400,000
/// levels, about 40 MB.
const SUBSCRIBES: usize = 20;
const PER_SUBSCRIBE: usize = 100;
const LEVELS: usize = 200;

/// A trie node (`broker/index/mod.rs`: 96 bytes, its level's text in
/// place when short), and the level's own two bytes (`l/`) in the copy of
/// the filter its session keeps. A map per level cost over 1,000.
const NODE_BYTES: u64 = 96;
const LEVEL_BYTES_MAX: u64 = 2 * (NODE_BYTES + 2);

async fn heap_bytes(http: SocketAddr) -> u64 {
    let reply = http::get(http, "/metrics").await;
    Scrape::parse(&reply.body).value("tern_heap_bytes", &[]) as u64
}

/// QoS 1 PUBLISHes to a topic nobody reads, one at a time, until told to
/// stop: when each PUBACK came. Each needs the routing lock.
async fn round_trips(mut canary: Raw, stop: tokio::sync::watch::Receiver<bool>) -> Vec<Instant> {
    let mut answered = Vec::new();
    for id in (1..=u16::MAX).cycle() {
        if *stop.borrow() {
            break;
        }
        canary
            .send(&raw::publish("canary", QoS::AtLeastOnce, id, b"c"))
            .await;
        assert_eq!(canary.recv().await, raw::puback(id));
        answered.push(Instant::now());
    }
    answered
}

#[tokio::test]
async fn deep_filters_cost_about_a_trie_node_a_level_and_others_are_served() {
    let http = free_addr();
    let config = format!("http_listen = \"{http}\"\nsys_interval_secs = 0");
    let tern = Binary::start(&config).await;
    let mut deep = Raw::connected(tern.addr, "deep").await;
    let canary = Raw::connected(tern.addr, "canary").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let canary = tokio::spawn(round_trips(canary, stopped));
    let before = heap_bytes(http).await;
    let mut burst = BytesMut::new();
    for i in 0..SUBSCRIBES {
        codec::encode(
            &raw::deep_subscribe(i, PER_SUBSCRIBE, LEVELS),
            ProtocolVersion::V311,
            &mut burst,
        );
    }
    deep.send_bytes(&burst).await;
    let mut subacks = Vec::new();
    while subacks.len() < SUBSCRIBES {
        match deep.recv().await {
            Packet::SubAck(suback) => {
                assert_eq!(suback.codes, [ReasonCode::SUCCESS; PER_SUBSCRIBE]);
                subacks.push(Instant::now());
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }
    stop.send(true).unwrap();
    let answered = canary.await.unwrap();
    let grown = heap_bytes(http).await.saturating_sub(before);
    let levels = (SUBSCRIBES * PER_SUBSCRIBE * LEVELS) as u64;
    assert!(
        grown <= levels * LEVEL_BYTES_MAX,
        "{grown} bytes for {levels} filter levels: {} a level, at most {LEVEL_BYTES_MAX}",
        grown / levels
    );
    // Some went while the SUBSCRIBEs were being handled, not all after.
    let (first, last) = (subacks[0], subacks[SUBSCRIBES - 1]);
    let meanwhile = (answered.iter())
        .filter(|&&t| first < t && t < last)
        .count();
    assert!(
        meanwhile > 0,
        "no round trip of {} in the {:?} between the first SUBACK and the last",
        answered.len(),
        last - first
    );
}
