//! A data store whose writes start failing, under a broker serving real
//! sockets: nothing that waited for the failed commit is acknowledged,
//! the clients it was held for are told and closed rather than left
//! silent, and from then on QoS 1/2 messages and durable sessions are
//! refused in the protocol's words while QoS 0 still flows.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use redb::backends::InMemoryBackend;
use redb::StorageBackend;
use tern::codec::{ConnectCode, Packet, QoS, ReasonCode};
use tern::store::{Clock, Committer, Store};
use tern::{Endpoint, Server};

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

/// A disk in memory whose writes and syncs fail once `failing` is set.
#[derive(Debug)]
struct FailingDisk {
    inner: InMemoryBackend,
    failing: Arc<AtomicBool>,
}

impl FailingDisk {
    fn check(&self) -> io::Result<()> {
        match self.failing.load(Ordering::SeqCst) {
            true => Err(io::Error::other("the disk failed (planted by the test)")),
            false => Ok(()),
        }
    }
}

impl StorageBackend for FailingDisk {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
}

async fn broker_on_failing_disk() -> (TestBroker, Arc<AtomicBool>) {
    let failing = Arc::new(AtomicBool::new(false));
    let disk = FailingDisk {
        inner: InMemoryBackend::new(),
        failing: failing.clone(),
    };
    let config = config();
    let endpoint = Endpoint::plain(&config);
    let server = Server::new(config);
    let (store, restored) =
        Store::open(disk, Clock { epoch_ms: 0 }, usize::MAX).expect("an empty store");
    server
        .use_store(Committer::on_thread(store), restored, None)
        .expect("the first store");
    let (broker, _http) = TestBroker::serve_with_http(server, endpoint).await;
    (broker, failing)
}

#[tokio::test]
async fn a_failed_commit_closes_who_waited_and_refuses_what_needs_the_store() {
    let (broker, failing) = broker_on_failing_disk().await;
    Raw::subscribe_then_leave(broker.addr, "keeper", "k/#").await;
    let (mut v5, _) = Raw::connected_v5(broker.addr, "pub5", vec![]).await;
    v5.send(&raw::publish("k/a", QoS::AtLeastOnce, 1, b"kept"))
        .await;
    assert!(matches!(v5.recv().await, Packet::PubAck(ack) if ack.reason == ReasonCode::SUCCESS));

    failing.store(true, Ordering::SeqCst);
    // Queued for the offline session: its PUBACK waits for a commit that
    // fails. The client is told, and never acknowledged.
    v5.send(&raw::publish("k/a", QoS::AtLeastOnce, 2, b"lost"))
        .await;
    v5.expect_disconnect(ReasonCode::UNSPECIFIED_ERROR).await;
    broker
        .wait_until("the failure in the census", |c| c.store_failed)
        .await;

    // From now on: 5.0 is told 0x80 for each QoS 1/2 message, QoS 0 flows.
    let (mut v5, _) = Raw::connected_v5(broker.addr, "pub5", vec![]).await;
    let (mut watcher, _) = Raw::connected_v5(broker.addr, "watcher", vec![]).await;
    watcher
        .send(&raw::subscribe(1, "k/#", QoS::AtMostOnce))
        .await;
    assert!(matches!(watcher.recv().await, Packet::SubAck(_)));
    v5.send(&raw::publish("k/a", QoS::AtLeastOnce, 3, b"refused"))
        .await;
    assert!(
        matches!(v5.recv().await, Packet::PubAck(ack) if ack.reason == ReasonCode::UNSPECIFIED_ERROR)
    );
    v5.send(&raw::publish("k/a", QoS::AtMostOnce, 0, b"flows"))
        .await;
    assert_eq!(&watcher.recv_publish().await.payload[..], b"flows");

    // 3.1.1 cannot refuse a message: closed, unacknowledged.
    let mut v3 = Raw::connected(broker.addr, "pub3").await;
    v3.send(&raw::publish("k/a", QoS::AtLeastOnce, 4, b"refused"))
        .await;
    v3.expect_closed().await;

    // A durable session cannot be resumed or begun.
    let (_, connack) = Raw::connect(broker.addr, raw::persistent("keeper")).await;
    assert_eq!(connack.code, ConnectCode::ServerUnavailable);
    let census = broker.census();
    assert_eq!(census.dropped.store_failed, 2, "{census:?}");
    assert_eq!(census.connects_refused_store, 1, "{census:?}");
}
