//! The log under a flood of refusals (issue 12, row 4): lines of one kind
//! are rate-limited, and a client's string in a line is clipped. The
//! broker runs on this test's thread, so a thread-local subscriber sees
//! its lines and no other test's.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tern::codec::{Packet, QoS};
use tern::Config;

use crate::common::raw::{self, Raw};
use crate::common::{config, TestBroker};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_flood_of_refused_subscriptions_logs_a_few_short_lines() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let broker = TestBroker::start(Config {
        topic_levels_max: 4,
        ..config()
    })
    .await;
    let mut client = Raw::connected(broker.addr, "flooder").await;
    // Refused for its levels; 10 KB each, all but the clipped start.
    let filter = format!("a/b/c/d/{}", "x".repeat(10_000));
    for id in 1..=200 {
        client
            .send(&raw::subscribe(id, &filter, QoS::AtMostOnce))
            .await;
        assert!(matches!(client.recv().await, Packet::SubAck(_)));
    }
    broker.stop().await;
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("subscription refused"))
        .collect();
    assert!(
        (1..=20).contains(&refused.len()),
        "{} lines of refusal",
        refused.len()
    );
    // The client's part of a line: the run of its filter's x's.
    let longest = log.split(|c| c != 'x').map(str::len).max().unwrap_or(0);
    assert!(
        longest <= 200,
        "{longest} bytes of the client's filter in a line"
    );
}
