//! The data store's commit counters, in the census and in `/metrics`:
//! what a benchmark divides to report messages per fsync and fsyncs per
//! second (README, "Durability (issue 14)").

use tern::codec::{Packet, QoS};
use tern::store::{Clock, Committer, Store};
use tern::{Endpoint, Server};

use crate::common::prometheus::Scrape;
use crate::common::raw::{self, Raw};
use crate::common::{config, http, TestBroker};

/// Acknowledged QoS 1 messages, each queued for the offline session.
const MESSAGES: u16 = 20;

#[tokio::test]
async fn store_commits_and_the_changes_they_carried_are_counted() {
    let config = config();
    let endpoint = Endpoint::plain(&config);
    let server = Server::new(config);
    let (store, restored) = Store::open(
        redb::backends::InMemoryBackend::new(),
        Clock { epoch_ms: 0 },
        usize::MAX,
    )
    .expect("an empty store in memory");
    server
        .use_store(Committer::on_thread(store), restored, None)
        .expect("the first store");
    let (broker, http_addr) = TestBroker::serve_with_http(server, endpoint).await;
    let zero = broker
        .census()
        .store
        .expect("a broker with a store counts its commits");
    let zero_counts = (zero.commits, zero.changes, zero.writes, zero.commit_nanos);
    assert_eq!(zero_counts, (0, 0, 0, 0));

    Raw::subscribe_then_leave(broker.addr, "keeper", "k/#").await;
    broker.wait_connections(0).await;

    let mut publisher = Raw::connected(broker.addr, "publisher").await;
    for id in 1..=MESSAGES {
        publisher
            .send(&raw::publish("k/n", QoS::AtLeastOnce, id, b"kept"))
            .await;
        assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    }
    // Each PUBACK left after the commit of its message: counted by now.
    let counted = broker.census().store.expect("a store");
    assert!(counted.commits >= 1, "{counted:?}");
    assert!(
        counted.changes >= u64::from(MESSAGES),
        "each queued message is a change: {counted:?}"
    );
    assert!(counted.commits <= counted.changes, "{counted:?}");
    // Each message stays queued for the keeper, who is offline: written.
    assert!(
        (u64::from(MESSAGES)..=counted.changes).contains(&counted.writes),
        "{counted:?}"
    );
    assert!(counted.commit_nanos > 0, "{counted:?}");

    let scrape = Scrape::parse(&http::get(http_addr, "/metrics").await.body);
    let value = |name: &str| scrape.value(name, &[]);
    let after = broker.census().store.expect("a store");
    let commits = value("tern_store_commits_total");
    let changes = value("tern_store_changes_total");
    let seconds = value("tern_store_commit_seconds_total");
    assert!(
        (counted.commits as f64..=after.commits as f64).contains(&commits),
        "{commits} commits scraped, census {counted:?} then {after:?}"
    );
    assert!(
        (counted.changes as f64..=after.changes as f64).contains(&changes),
        "{changes} changes scraped, census {counted:?} then {after:?}"
    );
    assert!(
        seconds * 1e9 >= counted.commit_nanos as f64 * 0.999,
        "{seconds} s"
    );
    drop(publisher);
    broker.stop().await;
}

#[tokio::test]
async fn a_broker_without_a_store_has_no_store_counts() {
    let (broker, http_addr) = TestBroker::start_with_http(config()).await;
    assert_eq!(broker.census().store, None);
    let scrape = Scrape::parse(&http::get(http_addr, "/metrics").await.body);
    assert!(scrape.all("tern_store_commits_total").is_empty());
    broker.stop().await;
}
