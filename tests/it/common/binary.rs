//! The `tern` binary itself, for what only it does: count its heap, read
//! its configuration file, build its listeners.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::within;

/// The release or debug `tern` binary, killed when dropped.
pub struct Binary {
    child: Child,
    /// Its first listener.
    pub addr: SocketAddr,
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
        let path = std::env::temp_dir().join(format!("tern-it-{}.toml", addr.port()));
        std::fs::write(&path, config).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
        command.arg("--config").arg(&path);
        // Tests that keep a store say where; the others keep none, rather
        // than share ./tern-data.
        if !config.contains("data_dir") {
            command.arg("--in-memory");
        }
        let child = command.stderr(Stdio::null()).spawn().expect("start tern");
        within("the binary to listen", async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Binary { child, addr }
    }
}

impl Binary {
    /// Sends it SIGHUP, which has it read its files again.
    pub fn hang_up(&self) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits an i32");
        // SAFETY: kill only sends a signal, to our own child.
        let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
        assert_eq!(sent, 0, "SIGHUP to tern");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
