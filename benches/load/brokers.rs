//! Starting the brokers under test (tern's release binary, and mosquitto when
//! it is on PATH) on free loopback ports, and reading their CPU time, memory
//! and open file descriptors from /proc.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Which broker; the table has one column per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tern,
    Mosquitto,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tern => "tern",
            Kind::Mosquitto => "mosquitto",
        }
    }
}

/// The kinds to compare: tern always, mosquitto when it can be run.
pub fn available() -> Vec<Kind> {
    let mut kinds = vec![Kind::Tern];
    if mosquitto_path().is_some() {
        kinds.push(Kind::Mosquitto);
    } else {
        eprintln!("mosquitto not on PATH: measuring tern alone (apt-get install -y mosquitto)");
    }
    kinds
}

fn mosquitto_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    // Debian puts the daemon in /usr/sbin, which a user's PATH may lack.
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
}

/// Which limits a broker runs with, the same for both kinds where both
/// have the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// Raised so that the closed-loop load scenarios never hit one: every
    /// loss is then the broker's, not a limit's.
    Raised,
    /// The attack scenarios': what an operator would set against a hostile
    /// client, alike for both brokers ([`ATTACK_MEMORY_BYTES`] and the rest).
    Attack,
}

/// The attack limits. A memory bound for the whole broker (mosquitto's
/// `memory_limit`; tern's `memory_max_bytes`, see [`tern_config`]).
pub const ATTACK_MEMORY_BYTES: u64 = 1 << 30;
/// Bytes queued for one session (`max_queued_bytes`, `queued_bytes_max`).
pub const ATTACK_QUEUED_BYTES: u64 = 64 << 20;
/// Messages queued for one session (`max_queued_messages`), both defaults.
pub const ATTACK_QUEUED_MESSAGES: u64 = 1000;
/// The largest packet (`max_packet_size`, `packet_size_max_bytes`): tern's
/// default, and a size mosquitto's users choose.
pub const ATTACK_PACKET_BYTES: u64 = 16 << 20;
/// Unacknowledged QoS 1/2 messages to one client, both defaults.
pub const ATTACK_INFLIGHT: u64 = 20;

/// A running broker. Dropping it kills the process, so that a panicking
/// scenario never leaves a broker behind.
pub struct Broker {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Its TLS listener, with the certificate of [`crate::tls::files`].
    pub tls_addr: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl Broker {
    /// Starts a fresh broker of `kind` with limits raised so that nothing is
    /// dropped, and waits until it accepts connections. Every run gets its
    /// own process, so memory and descriptor baselines are clean.
    pub fn start(kind: Kind, dir: &Path, limits: Limits) -> Broker {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let tls = tls_listener(kind, dir, tls_addr);
        let log_path = dir.join(format!("{}-{port}.log", kind.name()));
        let log = fs::File::create(&log_path).expect("create broker log");
        let mut command = match kind {
            Kind::Tern => {
                let config = dir.join(format!("tern-{port}.toml"));
                let config_text = tern_config(addr, limits) + &tls;
                fs::write(&config, config_text).expect("write tern config");
                let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
                command.arg("--config").arg(config);
                // Per-connection info lines would cost the broker time that
                // mosquitto (logging errors and warnings only) does not spend.
                // The lock's hold times come once, at shutdown.
                command.env("RUST_LOG", "warn,tern::lock=info");
                command
            }
            Kind::Mosquitto => {
                let config = dir.join(format!("mosquitto-{port}.conf"));
                let config_text = mosquitto_config(port, limits) + &tls;
                fs::write(&config, config_text).expect("write mosquitto config");
                let mut command = Command::new(mosquitto_path().expect("mosquitto"));
                command.arg("-c").arg(config);
                command
            }
        };
        // Killed with us even when we die without unwinding (Ctrl-C,
        // SIGKILL), where the Drop below never runs.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        let mut broker = Broker {
            kind,
            addr,
            tls_addr,
            child,
            log: log_path,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited at start: {status}", self.kind.name());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{} did not listen on {} within 10 s",
            self.kind.name(),
            self.addr
        );
    }

    /// Stops the broker as an operator would (SIGTERM), so that it logs
    /// what it logs at shutdown, and returns its log and, if it had already
    /// ended by itself (a crash), how.
    pub fn stop(mut self) -> (String, Option<ExitStatus>) {
        let ended = self.child.try_wait().ok().flatten();
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        (fs::read_to_string(&self.log).unwrap_or_default(), ended)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time the broker has used.
    pub fn cpu(&self) -> Duration {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // The command name (field 2) may hold spaces; count from after it.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after field 2.
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / per_second)
    }

    /// Resident memory in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid()).unwrap_or(0)
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |dir| dir.count())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory in KiB (VmRSS) of process `pid`; `None` once it is gone.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// A port the kernel just handed out and we let go; a broker binds it next.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A TLS listener on `addr` with the certificate in `dir`, in `kind`'s
/// words; it comes last in the configuration.
fn tls_listener(kind: Kind, dir: &Path, addr: SocketAddr) -> String {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    match kind {
        Kind::Tern => format!(
            "[[listener]]\naddress = \"{addr}\"\ncert_file = {cert:?}\nkey_file = {key:?}\n"
        ),
        Kind::Mosquitto => format!(
            "listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            addr.port(),
            cert.display(),
            key.display()
        ),
    }
}

fn tern_config(addr: SocketAddr, limits: Limits) -> String {
    let listen = format!("listen = [\"{addr}\"]\nsys_interval_secs = 0\n");
    match limits {
        // Queues large enough that the closed-loop windows never fill them:
        // every loss would then be the broker's, not a limit's.
        Limits::Raised => format!(
            "{listen}\
             queued_messages_max = 1000000\n\
             outbound_packets_max = 1000000\n\
             connect_timeout_ms = 60000\n"
        ),
        // Every other key at its default, as an operator would leave it.
        Limits::Attack => [
            listen,
            format!("queued_messages_max = {ATTACK_QUEUED_MESSAGES}\n"),
            format!("queued_bytes_max = {ATTACK_QUEUED_BYTES}\n"),
            format!("packet_size_max_bytes = {ATTACK_PACKET_BYTES}\n"),
            format!("inflight_messages_max = {ATTACK_INFLIGHT}\n"),
            format!("memory_max_bytes = {ATTACK_MEMORY_BYTES}\n"),
        ]
        .concat(),
    }
}

fn mosquitto_config(port: u16, limits: Limits) -> String {
    let common = format!(
        "listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         set_tcp_nodelay true\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n"
    );
    match limits {
        Limits::Raised => format!(
            "{common}\
             max_queued_messages 1000000\n\
             max_inflight_messages 20\n"
        ),
        Limits::Attack => format!(
            "{common}\
             memory_limit {ATTACK_MEMORY_BYTES}\n\
             max_queued_messages {ATTACK_QUEUED_MESSAGES}\n\
             max_queued_bytes {ATTACK_QUEUED_BYTES}\n\
             max_packet_size {ATTACK_PACKET_BYTES}\n\
             max_inflight_messages {ATTACK_INFLIGHT}\n"
        ),
    }
}

/// Lets this process and the brokers it starts (which inherit it) open as
/// many descriptors as the hard limit allows; 10,000 connections need it.
pub fn raise_fd_limit() -> u64 {
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        // An unlimited hard limit is still capped by the kernel's nr_open.
        limit.rlim_cur = limit.rlim_max.min(1 << 20);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}
