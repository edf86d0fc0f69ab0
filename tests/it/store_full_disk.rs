//! The real binary on a real file system that fills up: a tmpfs of 1 MB,
//! mounted for the test (root only; skipped otherwise, unless
//! TERN_REQUIRE_TMPFS=1, which CI sets). Once the disk is full nothing more
//! is acknowledged; with room again, a restart opens the store and the
//! offline subscriber gets every message that was.

use std::path::{Path, PathBuf};
use std::process::Command;

use tern::codec::{ConnectCode, Packet, QoS, ReasonCode};

use crate::common::binary::{free_addr, Binary};
use crate::common::raw::{self, Raw, Read};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (and a skip line) where mounting is not allowed.
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("tern-it-{name}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let mounted = mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &dir,
        );
        if mounted {
            return Some(Tmpfs(dir));
        }
        if std::env::var("TERN_REQUIRE_TMPFS").as_deref() == Ok("1") {
            panic!(
                "could not mount a tmpfs on {} and TERN_REQUIRE_TMPFS=1",
                dir.display()
            );
        }
        eprintln!("SKIP: mounting a tmpfs needs root (set TERN_REQUIRE_TMPFS=1 to fail instead)");
        None
    }

    fn resize(&self, size: &str) {
        let remount = format!("remount,size={size}");
        assert!(
            mount(&["-o", &remount], &self.0),
            "remount {}",
            self.0.display()
        );
    }
}

fn mount(args: &[&str], dir: &Path) -> bool {
    Command::new("mount")
        .args(args)
        .arg(dir)
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_stops_acknowledgements_and_a_restart_with_room_loses_none() {
    let Some(disk) = Tmpfs::mount("full-disk", "1m") else {
        return;
    };
    let addr = free_addr();
    let config = format!(
        "listen = [\"{addr}\"]\ndata_dir = {:?}\nsys_interval_secs = 0\n",
        disk.0.display().to_string()
    );
    let tern = Binary::start_on(&config, addr).await;
    Raw::subscribe_then_leave(addr, "keeper", "k/#").await;

    // 4 KB messages, one at a time, until the disk refuses one.
    let (mut publisher, _) = Raw::connected_v5(addr, "publisher", vec![]).await;
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 1..=2000u16 {
        let payload = format!("{n}:{}", "x".repeat(4000));
        let publish = raw::publish("k/n", QoS::AtLeastOnce, n, payload.as_bytes());
        publisher.send(&publish).await;
        match publisher.read().await {
            Read::Packet(Packet::PubAck(ack)) if ack.reason == ReasonCode::SUCCESS => {
                acked.push(n);
            }
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    // What waited for the failed commit is never acknowledged: the
    // connection is told, or a later message refused.
    match refused {
        Some(Read::Packet(Packet::Disconnect(d))) => {
            assert_eq!(d.reason, ReasonCode::UNSPECIFIED_ERROR);
        }
        Some(Read::Packet(Packet::PubAck(ack))) => {
            assert_eq!(ack.reason, ReasonCode::UNSPECIFIED_ERROR);
        }
        other => panic!("the 1 MB disk never refused a message: {other:?}"),
    }
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the disk filled"
    );
    // The broker lives on and says why it refuses.
    let (mut again, _) = Raw::connected_v5(addr, "publisher-2", vec![]).await;
    again
        .send(&raw::publish("k/n", QoS::AtLeastOnce, 1, b"refused"))
        .await;
    match again.recv().await {
        Packet::PubAck(ack) => assert_eq!(ack.reason, ReasonCode::UNSPECIFIED_ERROR),
        other => panic!("expected PUBACK 0x80, got {other:?}"),
    }
    let (_, connack) = Raw::connect(addr, raw::persistent("keeper")).await;
    assert_eq!(connack.code, ConnectCode::ServerUnavailable);

    // Room again, and a restart: the store opens with everything acked.
    drop(tern);
    disk.resize("16m");
    let _tern = Binary::start_on(&config, addr).await;
    let received = Raw::numbers_kept_for(addr, "keeper").await;
    let lost: Vec<_> = acked.iter().filter(|n| !received.contains(n)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost after the disk filled: {lost:?}",
        lost.len(),
        acked.len()
    );
}
