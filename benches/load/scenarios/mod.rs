//! The scenarios of issue 5 and the attacks of issue 12, by name, and what
//! they share: settings and connecting many clients at once with a bound on
//! how many are in flight.

mod attacks;
mod connections;
mod latency;
mod throughput;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tern::codec::QoS;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::brokers::{Broker, Limits};
use crate::client::{self, Conn, Hello};
use crate::stats::Outcome;
use crate::transport::Transport;

/// Sizes and durations, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long each throughput, latency and churn run lasts.
    pub duration: Duration,
    /// How many messages a publisher may be ahead of its slowest subscriber.
    pub window: u64,
    /// Idle connections in the connections scenario.
    pub idle_connections: usize,
    /// Clients connecting at once in the churn scenario.
    pub churn_workers: usize,
    /// Clients the measured churn makes, if set (`--churn-cycles`), instead
    /// of running for `duration`: issue 15's memory after 1M cycles.
    pub churn_cycles: Option<u64>,
    /// How long the sustained fan-in runs.
    pub sustain: Duration,
}

#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    FanIn(QoS),
    /// Fan-in 8 to 1 over TLS or WebSocket.
    FanInOver(Transport, QoS),
    FanOut(usize, QoS),
    Latency(QoS),
    Connections,
    Churn,
    TlsHandshakes,
    Sustained,
    Attack(attacks::Attack),
}

/// Every scenario, in the order the table lists them.
pub const ALL: [Scenario; 22] = [
    Scenario::FanIn(QoS::AtMostOnce),
    Scenario::FanIn(QoS::AtLeastOnce),
    Scenario::FanOut(100, QoS::AtMostOnce),
    Scenario::FanOut(100, QoS::AtLeastOnce),
    Scenario::FanOut(1000, QoS::AtMostOnce),
    Scenario::FanOut(1000, QoS::AtLeastOnce),
    Scenario::Latency(QoS::AtMostOnce),
    Scenario::Latency(QoS::AtLeastOnce),
    Scenario::Connections,
    Scenario::Churn,
    Scenario::TlsHandshakes,
    Scenario::FanInOver(Transport::Tls, QoS::AtLeastOnce),
    Scenario::FanInOver(Transport::Ws, QoS::AtMostOnce),
    Scenario::FanInOver(Transport::Ws, QoS::AtLeastOnce),
    Scenario::Sustained,
    Scenario::Attack(attacks::ALL[0]),
    Scenario::Attack(attacks::ALL[1]),
    Scenario::Attack(attacks::ALL[2]),
    Scenario::Attack(attacks::ALL[3]),
    Scenario::Attack(attacks::ALL[4]),
    Scenario::Attack(attacks::ALL[5]),
    Scenario::Attack(attacks::ALL[6]),
];

impl Scenario {
    pub fn name(self) -> String {
        let q = |qos: QoS| qos as u8;
        match self {
            Scenario::FanIn(qos) => format!("fan-in-8to1-qos{}", q(qos)),
            Scenario::FanInOver(transport, qos) => {
                let over = match transport {
                    Transport::Tcp => "tcp",
                    Transport::Tls => "tls",
                    Transport::Ws => "ws",
                };
                format!("fan-in-{over}-8to1-qos{}", q(qos))
            }
            Scenario::FanOut(n, qos) => format!("fan-out-1to{n}-qos{}", q(qos)),
            Scenario::Latency(qos) => format!("latency-2000hz-qos{}", q(qos)),
            Scenario::Connections => "connections-idle".into(),
            Scenario::Churn => "churn".into(),
            Scenario::TlsHandshakes => "tls-handshakes".into(),
            Scenario::Sustained => "sustained-8to1-qos1".into(),
            Scenario::Attack(attack) => attack.name().into(),
        }
    }

    /// The limits the brokers run with: raised for load, an operator's
    /// against an attack.
    pub fn limits(self) -> Limits {
        match self {
            Scenario::Attack(_) => Limits::Attack,
            _ => Limits::Raised,
        }
    }

    /// What carries the scenario's MQTT; a broker without it sits the
    /// scenario out.
    pub fn transport(self) -> Transport {
        match self {
            Scenario::FanInOver(transport, _) => transport,
            _ => Transport::Tcp,
        }
    }

    /// Whether the load generator runs it once, not counted, before the
    /// rounds. Its first run of 10,000 idle connections grows its memory
    /// from nothing (its load CPU a connect was 38.6 µs, against 32-35 in
    /// later rounds), and the broker that always ran first, tern, had that
    /// round 18% below its others (24,039 against 29,140-29,203 connects/s,
    /// the mean of 9 runs; mosquitto's first rounds were level with its
    /// others). Churn has a warm-up of its own.
    pub fn warms_up_generator(self) -> bool {
        matches!(self, Scenario::Connections)
    }

    pub fn run(self, rt: &Runtime, broker: &Broker, settings: &Settings) -> Outcome {
        let tcp = Transport::Tcp;
        match self {
            Scenario::FanIn(qos) => throughput::run(rt, broker, settings, tcp, 8, 1, qos),
            Scenario::FanInOver(over, qos) => {
                throughput::run(rt, broker, settings, over, 8, 1, qos)
            }
            Scenario::FanOut(n, qos) => throughput::run(rt, broker, settings, tcp, 1, n, qos),
            Scenario::Latency(qos) => latency::run(rt, broker, settings, qos),
            Scenario::Connections => connections::idle(rt, broker, settings),
            Scenario::Churn => connections::churn(rt, broker, settings),
            Scenario::TlsHandshakes => tls::handshakes(rt, broker, settings),
            Scenario::Sustained => throughput::sustained(rt, broker, settings),
            Scenario::Attack(attack) => attack.run(rt, broker, settings),
        }
    }
}

/// How many connection handshakes are in flight at once: enough to keep a
/// broker's accept loop busy, few enough not to overflow its listen backlog.
/// Issue 15's 100: at 128 (until 2026-12-04) mosquitto's backlog of 100
/// overflowed in most rounds (`TcpExtListenOverflows`), and the dropped
/// SYNs' one-second retransmit cut its rate from about 34,000 to 9,700.
const CONNECTING_MAX: usize = 100;

/// Connects `count` clients, the i-th with the client id and optional
/// subscription `who(i)` gives, at most [`CONNECTING_MAX`] at a time.
/// Returns them in order; any failure fails the run.
pub async fn connect_many(
    addr: SocketAddr,
    count: usize,
    who: impl Fn(usize) -> (String, Option<(String, QoS)>),
) -> Vec<Conn> {
    connect_many_over(Transport::Tcp, addr, count, who).await
}

/// [`connect_many`] over `transport`.
pub async fn connect_many_over(
    transport: Transport,
    addr: SocketAddr,
    count: usize,
    who: impl Fn(usize) -> (String, Option<(String, QoS)>),
) -> Vec<Conn> {
    let permits = Arc::new(Semaphore::new(CONNECTING_MAX));
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let (client_id, subscription) = who(i);
            let permits = permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                let hello = Hello::default();
                let mut conn = client::connect_over(transport, addr, &client_id, hello).await?;
                if let Some((filter, qos)) = subscription {
                    conn.subscribe(&filter, qos).await?;
                }
                Ok::<_, std::io::Error>(conn)
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(count);
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("connect task") {
            Ok(conn) => conns.push(conn),
            Err(error) => panic!("client {i} of {count} could not connect: {error}"),
        }
    }
    conns
}
