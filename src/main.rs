//! The `tern` binary: flags and config file, logging, signals; the broker
//! itself is `tern::Server`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

mod descriptors;
mod passwd;

/// An MQTT 3.1.1 and 5.0 broker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on for plain MQTT; repeat for several. Overrides
    /// the config file's `listen` (its `[[listener]]` tables stay).
    /// [default: 127.0.0.1:1883]
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<std::net::SocketAddr>,
    /// TOML file with limits; see README.md for every key and its default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where sessions, queued and retained messages are kept across
    /// restarts; overrides the config file's `data_dir`. [default: tern-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep nothing on disk: a restart forgets every session and message
    /// (`durability = "none"`).
    #[arg(long, conflicts_with = "data_dir")]
    in_memory: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Adds a user to a password file (mosquitto's format), or changes
    /// their password; creates the file if there is none.
    Passwd {
        file: PathBuf,
        user: String,
        /// Read the password from the first line of stdin instead of
        /// asking for it twice on the terminal.
        #[arg(long)]
        stdin: bool,
    },
}

/// Counts the heap in use, which `memory_max_bytes` limits; its own limit
/// stays off, since refusing an allocation would abort the process.
/// mimalloc rather than glibc's malloc: with durability "sync", the store
/// thread frees what the workers allocated, and glibc's arena lock made
/// that a quarter of the broker's CPU a message (`benches/durable.py`).
/// Built without transparent huge pages (`no_thp`): with them, 10,000
/// idle connections held 5.3 KB of resident memory each, against 3.9 KB
/// without, as with glibc (`benches/idle_heap.py`; measured with v3). Feature
/// `system-allocator` puts glibc's back, for heaptrack, which sees only it.
/// mimalloc's v2, not the crate's default v3: v3 gave a block of 768
/// bytes (a connection's task cell) 907 bytes of resident memory and v2
/// 783, a block of 112 (its outbox) 136 against 120; 10,000 idle
/// connections held 2,037-2,087 bytes each with v3 and 1,881-1,892 with
/// v2 (`benches/idle_heap.py`), and throughput was level or better.
#[global_allocator]
static ALLOCATOR: cap::Cap<Heap> = cap::Cap::new(HEAP, usize::MAX);

#[cfg(not(feature = "system-allocator"))]
type Heap = mimalloc::MiMalloc;
#[cfg(not(feature = "system-allocator"))]
const HEAP: Heap = mimalloc::MiMalloc;
#[cfg(feature = "system-allocator")]
type Heap = std::alloc::System;
#[cfg(feature = "system-allocator")]
const HEAP: Heap = std::alloc::System;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Passwd { file, user, stdin }) = &args.command {
        return match passwd::run(file, user, *stdin) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(message),
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Logs are diagnostics: stdout stays free for a supervisor's use,
        // and a file gets no colour codes.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Read before the runtime is built: it says how many threads it has.
    let config = match configure(args) {
        Ok(config) => config,
        Err(message) => return fail(message),
    };
    // Before the runtime's threads: see `descriptors.rs`.
    descriptors::reserve(config.connections_max);
    let runtime = match runtime(config.workers) {
        Ok(runtime) => runtime,
        Err(error) => return fail(format!("cannot start the runtime: {error}")),
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(message),
    }
}

/// The multi-threaded runtime as tokio makes it, its LIFO slot on: a task
/// woken by a running one (a subscriber's, by the publisher's routing) runs
/// next on the same worker. With the slot off, each such wake also woke the
/// other worker (a futex call on the delivery's path, and a second thread
/// for the CPU the subscriber's client wanted): the latency scenario's p50
/// was 1.4-2.6 times mosquitto's against 0.94-1.24 with it on. Which of two
/// clients' packets came first does not hang on the order tasks run: the
/// broker compares their sockets' receive times (`net/arrival.rs`,
/// `broker/recent.rs`).
/// `workers` threads, or with 0 as many as tokio picks (one a core, or
/// `TOKIO_WORKER_THREADS`).
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

fn fail(message: String) -> ExitCode {
    eprintln!("tern: {message}");
    ExitCode::FAILURE
}

/// The config file, if any, with the flags that override it.
fn configure(args: Args) -> Result<tern::Config, String> {
    let mut config = match &args.config {
        Some(path) => tern::Config::from_file(path).map_err(|e| e.to_string())?,
        None => tern::Config::default(),
    };
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if args.in_memory {
        config.durability = tern::config::Durability::None;
    }
    Ok(config)
}

async fn serve(config: tern::Config) -> Result<(), String> {
    let mut endpoints = Vec::new();
    for listener in config.listeners() {
        endpoints.push((listener.address, tern::Endpoint::new(&listener, &config)?));
    }
    let server = tern::Server::try_new(config.clone())?;
    if let Some((committer, restored, periodic)) = open_store(&config, server.uptime())? {
        server.use_store(committer, restored, periodic)?;
    }
    // After every file is read: an error in one is the only line.
    tracing::info!(
        workers = tokio::runtime::Handle::current().metrics().num_workers(),
        "runtime"
    );
    // Bound only now: a port that accepts is a broker that answers, not
    // one still reading its store.
    let mut listeners = Vec::new();
    for (address, endpoint) in endpoints {
        let bound =
            tern::net::listen(address).map_err(|e| format!("cannot listen on {address}: {e}"))?;
        listeners.push((bound, endpoint));
    }
    let http = match config.http_listen {
        Some(address) => Some(
            tern::net::listen(address)
                .map_err(|e| format!("cannot listen on {address} (http_listen): {e}"))?,
        ),
        None => None,
    };
    if let Some(listener) = http {
        server.serve_http(listener);
    }
    match server.limit_memory(|| ALLOCATOR.allocated()) {
        Some(max) => tracing::info!(memory_max_bytes = max, "memory limit"),
        None => tracing::warn!("the machine's memory is unknown: no memory limit"),
    }
    // The reloads run in this task, beside the server, and end with it.
    let report = tokio::select! {
        report = server.serve(listeners, stop_signal()) => report,
        never = reload_on_hangup(&server) => match never {},
    };
    if let Some(why) = report.failed {
        // A supervisor restarts it; its store gives back what it acknowledged.
        // Tasks that outlived the grace were logged by name in `serve`.
        Err(format!("stopped by itself: {why}"))
    } else if report.lingering.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} task(s) did not end: {}",
            report.lingering.len(),
            report.lingering.join(", ")
        ))
    }
}

/// The data store, its contents, and its commit period if periodic; says
/// where it is in the first line of the log, or that there is none.
type Opened = (
    tern::store::Committer,
    tern::broker::Restored,
    Option<std::time::Duration>,
);

fn open_store(
    config: &tern::Config,
    uptime: std::time::Duration,
) -> Result<Option<Opened>, String> {
    use tern::config::Durability;
    if config.durability == Durability::None {
        tracing::info!("no data store: sessions and messages live in memory only");
        return Ok(None);
    }
    // Deadlines are kept as wall-clock times, so that time the broker was
    // down counts; the broker's own clock started at 0 `uptime` ago.
    let epoch_ms = std::time::SystemTime::now()
        .checked_sub(uptime)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let clock = tern::store::Clock { epoch_ms };
    let (store, restored) =
        tern::store::Store::open_dir(&config.data_dir, clock, config.offline_memory_max_bytes)?;
    tracing::info!(
        dir = %config.data_dir.display(),
        durability = ?config.durability,
        sessions = restored.sessions.len(),
        retained = restored.retained.len(),
        "data store"
    );
    let periodic = (config.durability == Durability::Periodic)
        .then(|| std::time::Duration::from_millis(config.durability_period_ms));
    Ok(Some((
        tern::store::Committer::on_thread(store),
        restored,
        periodic,
    )))
}

/// Reads the password, ACL and certificate files again at each SIGHUP;
/// a file that fails keeps the old rules, and says why in one line.
async fn reload_on_hangup(server: &tern::Server) -> std::convert::Infallible {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP; files are read at start only");
            return std::future::pending().await;
        }
    };
    loop {
        if hangups.recv().await.is_none() {
            return std::future::pending().await;
        }
        let errors = server.reload();
        for error in &errors {
            tracing::error!("reload: {error}; the old rules stay");
        }
        if errors.is_empty() {
            tracing::info!("reloaded the password, ACL and certificate files");
        }
    }
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(terminate) => terminate,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
}
