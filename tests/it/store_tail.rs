//! Offline queues past `offline_memory_max_bytes`, on the real binary over
//! TCP: the messages of an offline persistent session beyond the budget
//! stay on disk only (the heap's share of them stays under it), and come
//! back, every one and in order, when the session does.

use std::net::SocketAddr;

use tern::codec::{self, Packet, QoS};

use crate::common::binary::{free_addr, Binary};
use crate::common::http;
use crate::common::prometheus::Scrape;
use crate::common::raw::{self, Raw};

/// QoS 1 messages queued for the offline subscriber, of `PAYLOAD_BYTES`.
const MESSAGES: u16 = 5000;
const PAYLOAD_BYTES: usize = 1000;
/// Well under the 5 MB queued.
const BUDGET_BYTES: usize = 64 * 1024;
/// Messages the publisher has unacknowledged at once.
const AHEAD: u16 = 100;

async fn gauge(http_addr: SocketAddr, name: &str) -> f64 {
    let scrape = Scrape::parse(&http::get(http_addr, "/metrics").await.body);
    scrape.value(name, &[])
}

#[tokio::test]
async fn an_offline_queue_past_the_memory_budget_waits_on_disk_and_comes_back_in_order() {
    let dir = std::env::temp_dir().join(format!("tern-it-store-tail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (addr, http_addr) = (free_addr(), free_addr());
    let config = format!(
        "listen = [\"{addr}\"]\nhttp_listen = \"{http_addr}\"\ndata_dir = {:?}\n\
         sys_interval_secs = 0\nqueued_messages_max = 100000\n\
         offline_memory_max_bytes = {BUDGET_BYTES}\n",
        dir.display().to_string()
    );
    let _tern = Binary::start_on(&config, addr).await;
    Raw::subscribe_then_leave(addr, "keeper", "k/#").await;

    let mut publisher = Raw::connected(addr, "publisher").await;
    let (mut sent, mut acked) = (0, 0);
    while acked < MESSAGES {
        while sent < MESSAGES && sent < acked + AHEAD {
            sent += 1;
            let mut payload = format!("{sent}:").into_bytes();
            payload.resize(PAYLOAD_BYTES, b'.');
            publisher
                .send(&raw::publish("k/n", QoS::AtLeastOnce, sent, &payload))
                .await;
        }
        match publisher.recv().await {
            Packet::PubAck(_) => acked += 1,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert_eq!(
        gauge(http_addr, "tern_queued_messages").await,
        f64::from(MESSAGES)
    );
    let in_memory = gauge(http_addr, "tern_queued_memory_bytes").await;
    assert!(
        in_memory <= BUDGET_BYTES as f64,
        "{in_memory} bytes of queued messages in memory, over the budget of {BUDGET_BYTES}"
    );
    let on_disk = gauge(http_addr, "tern_queued_on_disk_messages").await;
    let least = usize::from(MESSAGES) - BUDGET_BYTES / PAYLOAD_BYTES;
    assert!(
        on_disk >= least as f64,
        "only {on_disk} messages on disk only"
    );

    let (mut keeper, connack) = Raw::connect(addr, raw::persistent("keeper")).await;
    assert_eq!(connack.code, codec::ConnectCode::Accepted);
    assert!(connack.session_present);
    for expected in 1..=MESSAGES {
        let publish = keeper.recv_publish().await;
        let text = std::str::from_utf8(&publish.payload).expect("UTF-8");
        let number: u16 = text
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("N:");
        assert_eq!(number, expected, "out of order, or one lost");
    }
    keeper.expect_silence().await;
    assert_eq!(gauge(http_addr, "tern_queued_messages").await, 0.0);
    let read_back = gauge(http_addr, "tern_messages_read_back_total").await;
    assert_eq!(
        read_back,
        gauge(http_addr, "tern_messages_spilled_total").await
    );
    assert!(read_back >= least as f64, "{read_back} read back");
    let _ = std::fs::remove_dir_all(&dir);
}
