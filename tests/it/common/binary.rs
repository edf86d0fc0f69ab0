//! The `tern` binary itself, for what only it does: count its heap, read
//! its configuration file, build its listeners.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempPath;

use super::{temp_path, within};

/// The release or debug `tern` binary, killed when dropped.
pub struct Binary {
    child: Child,
    /// Its first listener.
    pub addr: SocketAddr,
    /// Its configuration file, removed after the child is killed.
    _config: TempPath,
}

/// A port free a moment ago on 127.0.0.1.
pub fn free_addr() -> SocketAddr {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

impl Binary {
    /// The binary with `config`, listening on a free port.
    pub async fn start(config: &str) -> Binary {
        let addr = free_addr();
        Binary::start_on(&format!("listen = [\"{addr}\"]\n{config}"), addr).await
    }

    /// The binary with `config`, which has it listen on `addr` (and
    /// maybe elsewhere): ready once `addr` accepts.
    pub async fn start_on(config: &str, addr: SocketAddr) -> Binary {
        Binary::start_with_env(config, addr, &[]).await
    }

    /// The binary with `config` and its runtime's `workers` threads
    /// (tokio's `TOKIO_WORKER_THREADS`), listening on a free port.
    pub async fn start_with_workers(config: &str, workers: usize) -> Binary {
        let addr = free_addr();
        let config = format!("listen = [\"{addr}\"]\n{config}");
        let workers = workers.to_string();
        Binary::start_with_env(&config, addr, &[("TOKIO_WORKER_THREADS", &workers)]).await
    }

    async fn start_with_env(config: &str, addr: SocketAddr, env: &[(&str, &str)]) -> Binary {
        let path = temp_path(&format!("{}.toml", addr.port()));
        std::fs::write(&path, config).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
        command.arg("--config").arg(&path).envs(env.iter().copied());
        // Tests that keep a store say where; the others keep none, rather
        // than share ./tern-data.
        if !config.contains("data_dir") {
            command.arg("--in-memory");
        }
        let child = command.stderr(Stdio::null()).spawn().expect("start tern");
        // Made first, so that a binary that never listens is killed too.
        let binary = Binary {
            child,
            addr,
            _config: path,
        };
        within("the binary to listen", async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        binary
    }
}

impl Binary {
    /// Sends it SIGHUP, which has it read its files again.
    pub fn hang_up(&self) {
        self.signal(libc::SIGHUP);
    }

    /// Stops it (SIGSTOP), every thread, so that what clients send
    /// meanwhile waits in its sockets for one poll to find it all.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.child.id());
        // A thread gone meanwhile runs no more than a stopped one.
        let stopped = |entry: std::io::Result<std::fs::DirEntry>| {
            let Ok(stat) = entry.and_then(|e| std::fs::read_to_string(e.path().join("stat")))
            else {
                return true;
            };
            // The state follows the command's closing parenthesis.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            matches!(state, Some("T" | "t"))
        };
        let all_stopped = || {
            std::fs::read_dir(&tasks)
                .expect("the broker's tasks")
                .all(stopped)
        };
        let deadline = std::time::Instant::now() + super::WAIT;
        while !all_stopped() {
            assert!(std::time::Instant::now() < deadline, "tern did not stop");
            std::thread::yield_now();
        }
    }

    /// Lets it run again after `pause`.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits an i32");
        // SAFETY: kill only sends a signal, to our own child.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to tern");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
