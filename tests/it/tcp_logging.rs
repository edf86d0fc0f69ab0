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

impl Captured {
    /// Captures this thread's INFO lines until the guard is dropped.
    fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// The longest run of `c` in `log`: a client's string, in the tests' logs.
fn longest_run(log: &str, c: char) -> usize {
    log.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

#[tokio::test]
async fn a_flood_of_refused_subscriptions_logs_a_few_short_lines() {
    let (captured, _guard) = Captured::start();
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
    let log = captured.text();
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
    let longest = longest_run(&log, 'x');
    assert!(
        longest <= 200,
        "{longest} bytes of the client's filter in a line"
    );
}

/// A client id may be `client_id_max_bytes` (256) long, and each line of
/// its connection names it: clipped there too (it was whole).
#[tokio::test]
async fn a_long_client_id_is_clipped_in_its_connections_lines() {
    let (captured, _guard) = Captured::start();
    let broker = TestBroker::start(config()).await;
    let mut client = Raw::connected(broker.addr, &"y".repeat(256)).await;
    // Packet type 0 is reserved: the connection ends with a line saying so.
    client.send_bytes(&[0x00, 0x00]).await;
    client.expect_closed().await;
    broker.stop().await;
    let log = captured.text();
    assert!(
        log.lines()
            .any(|l| l.contains("connection closed") && l.contains("yyy")),
        "{log}"
    );
    let longest = longest_run(&log, 'y');
    assert!(longest <= 200, "{longest} bytes of the client id in a line");
}
