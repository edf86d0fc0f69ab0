//! The data store, on the real binary over TCP: what tern acknowledged is
//! there after a kill -9 and a restart on the same data directory.

use std::collections::BTreeSet;
use std::time::Duration;

use tern::codec::{Packet, QoS};

use crate::common::binary::{free_addr, Binary};
use crate::common::raw::{self, Raw};

/// Messages the publisher keeps in flight: the kill comes while they flow.
const AHEAD: u16 = 100;
/// Acknowledgements before the kill; under `queued_messages_max`, so that
/// nothing acknowledged may be dropped for a full queue.
const ACKED_BEFORE_KILL: usize = 500;

fn data_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tern-it-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn qos1_messages_acknowledged_before_a_kill_reach_the_offline_subscriber_after_restart() {
    let dir = data_dir("kill");
    let addr = free_addr();
    let config = format!(
        "listen = [\"{addr}\"]\ndata_dir = {:?}\n",
        dir.display().to_string()
    );
    let tern = Binary::start_on(&config, addr).await;

    Raw::subscribe_then_leave(addr, "keeper", "k/#").await;

    // Publishes with AHEAD in flight until ACKED_BEFORE_KILL are
    // acknowledged, then kills the broker with the rest still flowing.
    let mut publisher = Raw::connected(addr, "publisher").await;
    let mut sent: u16 = 0;
    let mut acked = BTreeSet::new();
    while acked.len() < ACKED_BEFORE_KILL {
        while sent < acked.len() as u16 + AHEAD {
            sent += 1;
            let payload = sent.to_string();
            let publish = raw::publish("k/n", QoS::AtLeastOnce, sent, payload.as_bytes());
            publisher.send(&publish).await;
        }
        match publisher.recv().await {
            Packet::PubAck(ack) => assert!(acked.insert(ack.packet_id.get())),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    drop(tern); // SIGKILL, then reaped
    drop(publisher);

    let _tern = Binary::start_on(&config, addr).await;
    let received = Raw::numbers_kept_for(addr, "keeper").await;
    let lost: Vec<_> = acked.difference(&received).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost, first {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_second_broker_on_the_same_data_directory_is_refused_in_one_line() {
    let dir = data_dir("twice");
    let addr = free_addr();
    let config = format!(
        "listen = [\"{addr}\"]\ndata_dir = {:?}\n",
        dir.display().to_string()
    );
    let _first = Binary::start_on(&config, addr).await;
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--listen")
        .arg(free_addr().to_string())
        .arg("--data-dir")
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tern");
    // Refused at once: a broker that waited for the lock (as redb's own
    // file lock let it) would hang here.
    for _ in 0..100 {
        if second.try_wait().expect("wait").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if second.try_wait().expect("wait").is_none() {
        let _ = second.kill();
        panic!("a second broker on the same data directory was not refused within 5 s");
    }
    let output = second.wait_with_output().expect("its stderr");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("tern: data store ") && last.contains("in use by another running broker"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
