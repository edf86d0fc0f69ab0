//! Shared by the TCP integration tests: a broker on 127.0.0.1:0 inside the
//! test process, bounded waits on its census, and two kinds of client:
//! rumqttc (a real third-party client, in `client`) and a raw socket speaking
//! our codec (in `raw`), for clients that must misbehave or die in a precise
//! way. Shared by the codec tests: the bytes and strategies their 3.1.1 and
//! 5.0 halves have in common (`codec`, `strategies`).

pub mod binary;
pub mod certs;
pub mod chromium;
pub mod client;
pub mod codec;
pub mod http;
pub mod prometheus;
pub mod raw;
pub mod strategies;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, Once, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use tempfile::TempPath;
use tern::config::ListenerConfig;
use tern::{Census, Config, Endpoint, Server, ShutdownReport};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The bound on every wait: a broker that never answers fails an assertion
/// instead of hanging the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// How often a census condition is polled.
const POLL: Duration = Duration::from_millis(10);

/// How long a test watches for something that must not happen, where no
/// later message can show it did not. Kept short; see each use.
pub const QUIET: Duration = Duration::from_millis(300);

/// Defaults without `$SYS`, whose retained messages would change the census
/// the tests count on.
pub fn config() -> Config {
    Config {
        sys_interval_secs: 0,
        ..Config::default()
    }
}

/// A broker served by a task of the test's runtime.
pub struct TestBroker {
    pub server: Server,
    pub addr: SocketAddr,
    run: JoinHandle<ShutdownReport>,
}

/// The tasks of a broker with no connections: one listener, the timers.
pub const IDLE_TASKS: [(&str, usize); 2] = [("acceptor", 1), ("timers", 1)];

impl TestBroker {
    pub async fn start(config: Config) -> TestBroker {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        TestBroker::start_on(config, listener).await
    }

    /// Serves a listener the test has set up itself.
    pub async fn start_on(config: Config, listener: TcpListener) -> TestBroker {
        let endpoint = Endpoint::plain(&config);
        TestBroker::start_server(Server::new(config), listener, endpoint).await
    }

    /// Serves a listener the test has set up itself with `endpoint`'s
    /// transport and settings.
    pub async fn serve(config: Config, listener: TcpListener, endpoint: Endpoint) -> TestBroker {
        TestBroker::start_server(Server::new(config), listener, endpoint).await
    }

    /// A broker that serves HTTP too (`Server::serve_http`), on
    /// 127.0.0.1:0; the HTTP side's address beside it.
    pub async fn start_with_http(config: Config) -> (TestBroker, SocketAddr) {
        let endpoint = Endpoint::plain(&config);
        TestBroker::serve_with_http(Server::new(config), endpoint).await
    }

    /// As `start_with_http`, with a server the test has set up itself (a
    /// data store, say).
    pub async fn serve_with_http(server: Server, endpoint: Endpoint) -> (TestBroker, SocketAddr) {
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let http_addr = http.local_addr().expect("a bound listener has an address");
        server.serve_http(http);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        (
            TestBroker::start_server(server, listener, endpoint).await,
            http_addr,
        )
    }

    async fn start_server(server: Server, listener: TcpListener, endpoint: Endpoint) -> TestBroker {
        record_broker_panics();
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let running = server.clone();
        let listeners = vec![(listener, endpoint)];
        let run =
            tokio::spawn(async move { running.serve(listeners, std::future::pending()).await });
        let broker = TestBroker { server, addr, run };
        // Census baselines in the tests count the acceptor and the timers.
        broker
            .wait_until("the acceptor to start", |c| c.tasks_of("acceptor") == 1)
            .await;
        broker
    }

    /// Serves `tables`, each on a port of 127.0.0.1 bound here (their own
    /// addresses are replaced); returns the broker, whose `addr` is the
    /// first, and every address in order.
    pub async fn start_listeners(
        config: Config,
        tables: Vec<ListenerConfig>,
    ) -> (TestBroker, Vec<SocketAddr>) {
        record_broker_panics();
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for mut table in tables {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            table.address = listener.local_addr().expect("a bound address");
            let endpoint = Endpoint::new(&table, &config).expect("a valid listener");
            addrs.push(table.address);
            listeners.push((listener, endpoint));
        }
        let count = listeners.len();
        let server = Server::new(config);
        let running = server.clone();
        let run =
            tokio::spawn(async move { running.serve(listeners, std::future::pending()).await });
        let broker = TestBroker {
            server,
            addr: addrs[0],
            run,
        };
        broker
            .wait_until("the acceptors to start", |c| {
                c.tasks_of("acceptor") == count
            })
            .await;
        (broker, addrs)
    }

    pub fn census(&self) -> Census {
        self.server.census()
    }

    /// Polls the census until `done` holds, up to `WAIT`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Census) -> bool) -> Census {
        let deadline = Instant::now() + WAIT;
        loop {
            let census = self.census();
            if done(&census) {
                return census;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; census: {census:#?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for the broker to hold exactly `n` connections, so that a
    /// client that has just gone is known to be fully detached.
    pub async fn wait_connections(&self, n: usize) -> Census {
        self.wait_until(&format!("{n} connections"), |c| {
            c.connections == n && c.tasks_of("connection") == n
        })
        .await
    }

    /// Stops the broker and checks that it left nothing behind and never
    /// panicked.
    pub async fn stop(self) -> ShutdownReport {
        self.server.stop();
        let report = within("the broker to shut down", self.run)
            .await
            .expect("the broker's run task does not panic");
        assert!(
            report.lingering.is_empty(),
            "tasks alive after shutdown: {:?}",
            report.lingering
        );
        assert_eq!(report.failed, None, "the broker stopped by itself");
        assert_eq!(report.census.connections, 0, "{:#?}", report.census);
        assert!(
            report.census.tasks.values().all(|&n| n == 0),
            "{:#?}",
            report.census
        );
        assert_no_broker_panics();
        report
    }
}

/// Awaits `future` for at most `WAIT`.
/// Whether `program --version` runs here: for tests of outside tools
/// (Node, Chromium) that skip without them.
pub async fn runs(program: &str) -> bool {
    tokio::process::Command::new(program)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// A path for a test's file, `tern-it-<pid>-<name>` in the temporary
/// directory, removed when the guard is dropped: the tests left some fifty
/// files there every run.
pub fn temp_path(name: &str) -> TempPath {
    let path = std::env::temp_dir().join(format!("tern-it-{}-{name}", std::process::id()));
    TempPath::try_from_path(path).expect("a temporary path")
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Panics raised outside the test code itself, by the thread they were
/// raised on. A panic in a connection task ends that task and closes its
/// socket, which looks exactly like the closes the bad-input tests expect;
/// this is how they tell the two apart.
static PANICS: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

fn record_broker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_tests = info
                .location()
                .is_some_and(|l| l.file().starts_with("tests/"));
            if !in_tests {
                PANICS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((std::thread::current().id(), info.to_string()));
            }
            default(info);
        }));
    });
}

/// The broker panics of this test alone: each test runs on a thread of its
/// own, and its broker on the test's current-thread runtime, so a panic in
/// one test's broker does not fail the tests that run beside or after it.
fn assert_no_broker_panics() {
    let this = std::thread::current().id();
    let panics = PANICS.lock().unwrap_or_else(PoisonError::into_inner);
    let ours: Vec<&String> = panics
        .iter()
        .filter(|(thread, _)| *thread == this)
        .map(|(_, panic)| panic)
        .collect();
    assert!(ours.is_empty(), "the broker panicked: {ours:#?}");
}

/// A 5.0 client with `props` on its CONNECT, subscribed to `filter` at QoS 1.
pub async fn subscriber_v5(
    broker: &TestBroker,
    client_id: &str,
    props: Vec<tern::codec::Property>,
    filter: &str,
) -> raw::Raw {
    use tern::codec::{Packet, QoS};
    let (mut client, _) = raw::Raw::connected_v5(broker.addr, client_id, props).await;
    client
        .send(&raw::subscribe(1, filter, QoS::AtLeastOnce))
        .await;
    assert!(matches!(client.recv().await, Packet::SubAck(_)));
    client
}

/// Publishes at QoS 1 from a fresh 3.1.1 client and waits for the PUBACK.
pub async fn publish_qos1(broker: &TestBroker, topic: &str, payload: &[u8]) {
    use tern::codec::{Packet, QoS};
    let mut publisher = raw::Raw::connected(broker.addr, "pub").await;
    publisher
        .send(&raw::publish(topic, QoS::AtLeastOnce, 1, payload))
        .await;
    assert!(matches!(publisher.recv().await, Packet::PubAck(_)));
    publisher.send(&raw::disconnect()).await;
    publisher.expect_closed().await;
}

/// The hook sees a panic outside the tests' own code in this test's
/// runtime, and files it under this test's thread alone.
#[tokio::test]
async fn a_broker_panic_is_filed_under_its_own_test() {
    record_broker_panics();
    // Panics inside the bytes crate, as a bug in the broker's use of it would.
    let task = tokio::spawn(async { bytes::Bytes::from_static(b"ab").slice(3..) });
    assert!(task.await.is_err(), "slicing past the end panics");
    let this = std::thread::current().id();
    let mut panics = PANICS.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(panics.iter().any(|(t, _)| *t == this), "{panics:?}");
    // Taken back, so that the TestBrokers of this thread (none) would pass.
    panics.retain(|(t, _)| *t != this);
}
