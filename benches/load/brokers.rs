//! Starting the brokers under test (tern's release binary, and mosquitto and
//! rumqttd when they are installed) on free loopback ports, and reading
//! their CPU time, memory and open file descriptors from /proc.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::configs::{self, Listeners};
use crate::transport::Transport;

/// Which broker; the table has one column per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tern,
    Mosquitto,
    Rumqttd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tern => "tern",
            Kind::Mosquitto => "mosquitto",
            Kind::Rumqttd => "rumqttd",
        }
    }

    /// Where its binary is, if it is installed; tern is always built.
    fn path(self) -> Option<PathBuf> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        match self {
            Kind::Tern => Some(crate::tern_binary::path()),
            // Debian puts the daemon in /usr/sbin, which a user's PATH may lack.
            Kind::Mosquitto => find("mosquitto", [PathBuf::from("/usr/sbin")]),
            // `cargo install` puts it in ~/.cargo/bin.
            Kind::Rumqttd => find("rumqttd", home.map(|h| h.join(".cargo/bin"))),
        }
    }
}

/// The first `name` on PATH or, after it, in `extra`.
fn find(name: &str, extra: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The kinds to compare: tern always, the others when they can be run.
pub fn available() -> Vec<Kind> {
    // Built before the first scenario, not inside its first round.
    crate::tern_binary::path();
    let mut kinds = vec![Kind::Tern];
    for (kind, install) in [
        (Kind::Mosquitto, "apt-get install -y mosquitto"),
        // Without --locked: 0.20.0 builds from its manifest's ranges, not
        // from its lock file (issue 15).
        (
            Kind::Rumqttd,
            "cargo install rumqttd --version 0.20.0, without --locked",
        ),
    ] {
        if kind.path().is_some() {
            kinds.push(kind);
        } else {
            eprintln!(
                "{} not installed: measuring without it ({install})",
                kind.name()
            );
        }
    }
    kinds
}

/// Whether `kind` serves MQTT over WebSocket, and if not, why. tern and
/// rumqttd (its default features) always do; a mosquitto built without
/// libwebsockets refuses `protocol websockets` at start, which is tried
/// once, in `dir`. The probe has a plain listener too, as every run's
/// configuration has: mosquitto 2.0 with a WebSocket listener alone exits
/// ("Unable to start any listening sockets", eclipse-mosquitto#2284).
pub fn websockets(kind: Kind, dir: &Path) -> Result<(), String> {
    static MOSQUITTO: OnceLock<Result<(), String>> = OnceLock::new();
    match kind {
        Kind::Tern | Kind::Rumqttd => Ok(()),
        Kind::Mosquitto => MOSQUITTO.get_or_init(|| probe_mosquitto(dir)).clone(),
    }
}

fn probe_mosquitto(dir: &Path) -> Result<(), String> {
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let (plain, ws) = (loopback(free_port()), loopback(free_port()));
    let config = dir.join("mosquitto-websockets-probe.conf");
    let text = format!(
        "listener {} 127.0.0.1\nlistener {} 127.0.0.1\nprotocol websockets\n",
        plain.port(),
        ws.port()
    );
    fs::write(&config, text).expect("write probe config");
    let mut child = Command::new(Kind::Mosquitto.path().expect("mosquitto"))
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start mosquitto: {e}"))?;
    let mut answer = listening(&mut child, &[plain, ws], Duration::from_secs(10));
    // Listening, and still up a moment later: it has not given up on a
    // listener it opened.
    std::thread::sleep(Duration::from_millis(200));
    if let (Ok(()), Ok(Some(status))) = (&answer, child.try_wait()) {
        answer = Err(format!("exited after start: {status}"));
    }
    let _ = child.kill();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    answer.map_err(|why| {
        let said = String::from_utf8_lossy(&output.stderr);
        let last = said.lines().last().unwrap_or("(nothing)").to_owned();
        format!("mosquitto has no WebSocket listener ({why}; it said: {last})")
    })
}

/// Waits until every one of `addrs` accepts a connection, or `child` ends.
fn listening(child: &mut Child, addrs: &[SocketAddr], within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let mut waiting = addrs.to_vec();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited at start: {status}"));
        }
        waiting
            .retain(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(100)).is_err());
        if waiting.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("did not listen on {waiting:?} within {within:?}"))
}

/// How many times a broker is started, each time on fresh ports, before a
/// port lost to another socket counts as a fault.
const START_TRIES: u32 = 3;

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
/// Unacknowledged QoS 1/2 messages to one client in the load scenarios:
/// rumqttd 0.20 allows 100 and has no setting for it (`MAX_INFLIGHT` in its
/// `router/iobufs.rs`), so the other two are given 100 as well. With
/// mosquitto's default of 20, fan-out to 1,000 at QoS 1 waited on
/// acknowledgements: tern's rate was 1.09M at 20 and 2.07M at 100.
pub const LOAD_INFLIGHT: u64 = 100;

/// A running broker. Dropping it kills the process, so that a panicking
/// scenario never leaves a broker behind.
pub struct Broker {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Its TLS listener, with the certificate of [`crate::tls::files`].
    pub tls_addr: SocketAddr,
    /// Its WebSocket listener, in a WebSocket scenario ([`websockets`]).
    pub ws_addr: Option<SocketAddr>,
    child: Child,
    log: PathBuf,
}

impl Broker {
    /// Starts a fresh broker of `kind` with limits raised so that nothing is
    /// dropped, and waits until it accepts connections. Every run gets its
    /// own process, so memory and descriptor baselines are clean.
    ///
    /// A WebSocket listener only when `transport` is WebSocket: the other
    /// scenarios run each broker as they did before there was one (and
    /// mosquitto 2.0 binds that listener on every interface).
    pub fn start(kind: Kind, dir: &Path, limits: Limits, transport: Transport) -> Broker {
        let mut tries = 1;
        loop {
            match Broker::try_start(kind, dir, limits, transport) {
                Ok(broker) => return broker,
                // The port was free when `free_port` let it go, and taken
                // since: the kernel hands the same ephemeral ports to the
                // bench's own clients (10,000 idle connections), and a
                // 21-round latency run lost a mosquitto start to it.
                Err(why) if why.contains("in use") && tries < START_TRIES => tries += 1,
                Err(why) => panic!("{why}"),
            }
        }
    }

    fn try_start(
        kind: Kind,
        dir: &Path,
        limits: Limits,
        transport: Transport,
    ) -> Result<Broker, String> {
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let ws = transport == Transport::Ws && websockets(kind, dir).is_ok();
        let at = Listeners {
            plain: loopback(free_port()),
            tls: loopback(free_port()),
            ws: ws.then(|| loopback(free_port())),
        };
        let port = at.plain.port();
        let log_path = dir.join(format!("{}-{port}.log", kind.name()));
        let log = fs::File::create(&log_path).expect("create broker log");
        let config = dir.join(format!(
            "{}-{port}.{}",
            kind.name(),
            configs::extension(kind)
        ));
        fs::write(&config, configs::text(kind, &at, limits, dir)).expect("write config");
        let mut command = Command::new(kind.path().expect("an available broker"));
        match kind {
            Kind::Tern => {
                // In memory, as mosquitto (`persistence false`) and rumqttd
                // run here: benches/durable.py measures the store.
                command.arg("--config").arg(config).arg("--in-memory");
                // Per-connection info lines would cost the broker time that
                // mosquitto (logging errors and warnings only) does not spend.
                // The lock's hold times come once, at shutdown.
                command.env("RUST_LOG", "warn,tern::lock=info");
            }
            Kind::Mosquitto => {
                command.arg("-c").arg(config);
            }
            // -q: no banner; it logs warnings and errors by default.
            Kind::Rumqttd => {
                command.arg("-q").arg("-c").arg(config);
            }
        }
        // Killed with us even when we die without unwinding (Ctrl-C,
        // SIGKILL), where the Drop below never runs.
        let cpus = BROKER_CPUS.get().cloned();
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(cpus) = &cpus {
                    pin(cpus)?;
                }
                Ok(())
            });
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.name()));
        // rumqttd binds each listener in a thread of its own: wait for all.
        let addrs: Vec<SocketAddr> = [at.plain, at.tls].into_iter().chain(at.ws).collect();
        if let Err(why) = listening(&mut child, &addrs, Duration::from_secs(10)) {
            let _ = child.kill();
            let _ = child.wait();
            let said = fs::read_to_string(&log_path).unwrap_or_default();
            let last = said.lines().last().unwrap_or("(empty)");
            return Err(format!(
                "{} {why}; its log's last line: {last}",
                kind.name()
            ));
        }
        Ok(Broker {
            kind,
            addr: at.plain,
            tls_addr: at.tls,
            ws_addr: at.ws,
            child,
            log: log_path,
        })
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
        cpu_of(&self.pid().to_string())
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
/// With `TERN_BENCH_PORTS=FIRST-LAST`, the next free one of that range
/// instead, round and round: a shared machine's share of ports.
fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Some((first, last)) = std::env::var("TERN_BENCH_PORTS").ok().map(|range| {
        range
            .split_once('-')
            .and_then(|(a, b)| Some((a.parse::<u16>().ok()?, b.parse::<u16>().ok()?)))
            .filter(|(a, b)| 0 < *a && a <= b)
            .unwrap_or_else(|| panic!("TERN_BENCH_PORTS={range:?}: expected FIRST-LAST"))
    }) else {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        return listener.local_addr().expect("local addr").port();
    };
    let count = usize::from(last - first) + 1;
    (0..count)
        .map(|_| first + (NEXT.fetch_add(1, Relaxed) % count) as u16)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .unwrap_or_else(|| panic!("no free port in TERN_BENCH_PORTS {first}-{last}"))
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

/// The CPUs every broker is confined to (`--broker-cpus`), for issue 15's
/// scaling with cores: the load generator stays free to run anywhere.
static BROKER_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

pub fn pin_brokers(cpus: Vec<usize>) {
    BROKER_CPUS.set(cpus).expect("--broker-cpus once");
}

/// In the child between fork and exec: a syscall on a set on the stack,
/// nothing allocated. tern's runtime then starts a worker per CPU allowed
/// (tokio asks `sched_getaffinity`), as it would on a machine that size.
fn pin(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: CPU_SET bounds-checks against the set's size.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: the set outlives the call, and its size is what is passed.
    let done = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    match done {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// User plus system CPU time this load generator has used, every thread's
/// and none of the brokers' (its children): what each broker's deliveries
/// cost it on the cores they share. To the nanosecond, where /proc counts
/// 10 ms ticks, a few percent of a 2 s run.
pub fn own_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(read, 0, "CLOCK_PROCESS_CPUTIME_ID is there on Linux");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// User plus system CPU time of process `pid`.
fn cpu_of(pid: &str) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
