//! The `workers` setting: the binary's runtime has that many worker
//! threads, and one too many is refused in one line.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::binary::free_addr;
use crate::common::temp_path;

/// Runs the binary on a free port with `config` and the log at INFO.
fn spawn(config: &str, name: &str) -> (std::process::Child, tempfile::TempPath) {
    let path = temp_path(name);
    std::fs::write(&path, format!("listen = [\"{}\"]\n{config}", free_addr())).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("--config")
        .arg(&path)
        .arg("--in-memory")
        .env("RUST_LOG", "info")
        .env_remove("TOKIO_WORKER_THREADS")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tern");
    (child, path)
}

#[test]
fn the_runtime_has_the_workers_asked_for() {
    // 3: neither this machine's core count nor tokio's default elsewhere
    // (one a core) is likely to be it.
    let (mut child, _config) = spawn("workers = 3\n", "workers3.toml");
    // Read on a thread of its own, so that a line that never comes ends
    // the wait at the deadline rather than never.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .try_for_each(|l| lines.send(l))
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Ok(line) = read.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let found = line.contains("runtime") && line.contains("workers=");
        seen.push(line);
        if found {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = seen.last().cloned().unwrap_or_default();
    assert!(line.contains("workers=3"), "log: {seen:?}");
}

#[test]
fn too_many_workers_stop_the_binary_with_one_line() {
    let (mut child, _config) = spawn("workers = 5000\n", "workers5000.toml");
    // Refused at once: a broker that started after all would serve here
    // for ever.
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the broker started with workers = 5000");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("workers must be at most 1024"), "{stderr}");
}
