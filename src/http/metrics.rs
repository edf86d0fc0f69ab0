//! `/metrics`: the census in Prometheus's text format. Nothing is counted
//! twice: one collector, in a registry of this broker's own (many brokers
//! share a test process or a simulation), reads the census at each scrape
//! and writes every figure in it.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::server::{Census, Server, StoreCounts, TASK_KINDS};

pub(super) use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

pub(super) struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub(super) fn new(server: Server) -> Metrics {
        let mut registry = Registry::with_prefix("tern");
        registry.register_collector(Box::new(CensusCollector { server }));
        Metrics { registry }
    }

    /// The text a scrape gets.
    pub(super) fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String does not fail");
        text
    }
}

struct CensusCollector {
    server: Server,
}

impl fmt::Debug for CensusCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CensusCollector")
    }
}

impl Collector for CensusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let census = self.server.census();
        let uptime = self.server.uptime().as_secs_f64();
        encode_gauges(&mut encoder, &census, uptime)?;
        encode_counters(&mut encoder, &census)?;
        if let Some(store) = &census.store {
            encode_store(&mut encoder, store)?;
        }
        encode_lock_holds(&mut encoder, &self.server)
    }
}

/// Upper bounds of the lock hold histogram's buckets: 1, 2.5, 5 from a
/// microsecond to a second. A hold is usually microseconds; one of
/// milliseconds is what the others feel.
const LOCK_HOLD_BOUNDS_NANOS: [u64; 19] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

fn encode_gauges(encoder: &mut DescriptorEncoder, census: &Census, uptime: f64) -> fmt::Result {
    let plain: [(&str, &str, u64); 12] = [
        (
            "connections",
            "Connections open, before or after CONNECT.",
            census.connections as u64,
        ),
        (
            "subscriptions",
            "Subscriptions held, members of shared groups included.",
            census.subscriptions as u64,
        ),
        (
            "subscriptions_ending",
            "Filters of ended sessions still being taken out of the index and their shared groups.",
            census.subscriptions_ending as u64,
        ),
        (
            "retained_messages",
            "Topics with a retained message.",
            census.retained as u64,
        ),
        (
            "retained_owed_subscriptions",
            "Subscriptions still owed some of their retained messages.",
            census.retained_owed as u64,
        ),
        (
            "queued_messages",
            "QoS 1 and 2 messages waiting in sessions.",
            census.queued as u64,
        ),
        (
            "inflight_messages",
            "QoS 1 and 2 messages sent and not yet acknowledged.",
            census.inflight as u64,
        ),
        (
            "queued_memory_bytes",
            "Weight (payload, topic, properties) of the queued messages held in memory: \
             against offline_memory_max_bytes.",
            census.queued_memory_bytes as u64,
        ),
        (
            "queued_on_disk_messages",
            "Queued messages of offline sessions kept on disk only, read back when their \
             clients return (queued_messages counts them too).",
            census.queued_on_disk as u64,
        ),
        (
            "queued_on_disk_bytes",
            "Weight of the queued messages kept on disk only.",
            census.queued_on_disk_bytes as u64,
        ),
        (
            "memory_full",
            "1 while the heap is over memory_max_bytes: new sessions and messages are refused.",
            u64::from(census.memory_full),
        ),
        (
            "store_failed",
            "1 once the data store failed a commit: QoS 1/2 messages and durable sessions \
             are refused until a restart.",
            u64::from(census.store_failed),
        ),
    ];
    for (name, help, value) in plain {
        gauge(encoder, name, help, None, value)?;
    }
    if let Some(heap) = census.heap_bytes {
        gauge(
            encoder,
            "heap",
            "Heap allocated, as the binary counts it (memory_max_bytes).",
            Some(&Unit::Bytes),
            heap as u64,
        )?;
    }
    gauge(
        encoder,
        "uptime",
        "Time since the broker started.",
        Some(&Unit::Seconds),
        uptime,
    )?;
    family(
        encoder,
        ("sessions", "Sessions, by whether a connection is attached."),
        MetricType::Gauge,
        "state",
        &[
            ("connected", census.sessions_connected as u64),
            ("offline", census.sessions_offline as u64),
        ],
    )?;
    let tasks: Vec<(&str, u64)> = TASK_KINDS
        .iter()
        .map(|&kind| (kind, census.tasks_of(kind) as u64))
        .collect();
    family(
        encoder,
        ("tasks", "Live tasks of the broker, by kind."),
        MetricType::Gauge,
        "kind",
        &tasks,
    )?;
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    encoder
        .encode_descriptor("build", "The broker's version.", None, MetricType::Info)?
        .encode_info(&version)
}

fn encode_counters(encoder: &mut DescriptorEncoder, census: &Census) -> fmt::Result {
    let traffic = &census.traffic;
    let plain: [(&str, &str, Option<&Unit>, u64); 10] = [
        (
            "connections_accepted",
            "Connections taken on.",
            None,
            census.connections_accepted,
        ),
        (
            "messages_received",
            "PUBLISH packets received from clients, whatever became of them.",
            None,
            traffic.messages_received,
        ),
        (
            "messages_sent",
            "PUBLISH packets put in a write to a client.",
            None,
            traffic.messages_sent,
        ),
        (
            "received",
            "Bytes read from clients' connections.",
            Some(&Unit::Bytes),
            traffic.bytes_received,
        ),
        (
            "sent",
            "Bytes written to clients' connections.",
            Some(&Unit::Bytes),
            traffic.bytes_sent,
        ),
        (
            "subscriptions_visited",
            "Subscription trie nodes and subscriptions looked at to route messages: the work publishes cost.",
            None,
            census.subscriptions_visited,
        ),
        (
            "retained_visited",
            "Retained messages looked at to find those new subscriptions match.",
            None,
            census.retained_visited,
        ),
        (
            "messages_spilled",
            "Queued messages kept on disk only, past offline_memory_max_bytes.",
            None,
            census.spilled,
        ),
        (
            "messages_read_back",
            "Queued messages read back from disk as their clients took them.",
            None,
            census.read_back,
        ),
        (
            "messages_replayed",
            "Messages given to a subscription whose SUBSCRIBE came before them but was handled after them.",
            None,
            census.replayed,
        ),
    ];
    for (name, help, unit, value) in plain {
        let metric = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
        ConstCounter::new(value).encode(metric)?;
    }
    family(
        encoder,
        (
            "connections_refused",
            "Connections closed as soon as accepted, by the limit that refused them.",
        ),
        MetricType::Counter,
        "reason",
        &[
            ("connections_max", census.connections_refused_max),
            (
                "listener_connections_max",
                census.connections_refused_listener_max,
            ),
        ],
    )?;
    family(
        encoder,
        ("connects_refused", "CONNECTs refused, by reason."),
        MetricType::Counter,
        "reason",
        &[
            ("auth", census.connects_refused_auth),
            ("not_owner", census.connects_refused_not_owner),
            ("memory", census.connects_refused_memory),
            ("store_failed", census.connects_refused_store),
            ("sessions_max", census.connects_refused_sessions_max),
        ],
    )?;
    let dropped = &census.dropped;
    family(
        encoder,
        (
            "messages_dropped",
            "Messages dropped, by the limit or rule that dropped them.",
        ),
        MetricType::Counter,
        "reason",
        &[
            ("queue_full", dropped.queue_full),
            ("outbound_full", dropped.outbound_full),
            ("retained_full", dropped.retained_full),
            ("too_large", dropped.too_large),
            ("expired", dropped.expired),
            ("shared_undeliverable", dropped.shared_undeliverable),
            ("not_authorized", dropped.not_authorized),
            ("memory_full", dropped.memory_full),
            ("store_failed", dropped.store_failed),
        ],
    )
}

/// The data store's commits: `changes / commits` is what one fsync
/// serves (durability = "sync"), `commits` per second how often one runs.
fn encode_store(encoder: &mut DescriptorEncoder, store: &StoreCounts) -> fmt::Result {
    let plain: [(&str, &str, u64); 3] = [
        (
            "store_commits",
            "Commits of the data store that returned; one fsync each with durability = sync.",
            store.commits,
        ),
        (
            "store_changes",
            "Changes to durable state those commits carried (a message queued, then acknowledged, is two).",
            store.changes,
        ),
        (
            "store_writes",
            "Keys those commits wrote or removed: a message queued and acknowledged within one commit is none.",
            store.writes,
        ),
    ];
    for (name, help, value) in plain {
        let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(value).encode(metric)?;
    }
    let metric = encoder.encode_descriptor(
        "store_commit",
        "Time spent in the data store's commits, from handing a batch over to its return.",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?;
    ConstCounter::new(seconds(store.commit_nanos)).encode(metric)
}

fn encode_lock_holds(encoder: &mut DescriptorEncoder, server: &Server) -> fmt::Result {
    let holds = server.lock_hold_histogram(&LOCK_HOLD_BOUNDS_NANOS);
    let buckets: Vec<(f64, u64)> = LOCK_HOLD_BOUNDS_NANOS
        .iter()
        .zip(&holds.buckets)
        .map(|(&bound, &count)| (seconds(bound), count))
        .collect();
    encoder
        .encode_descriptor(
            "lock_hold",
            "How long the routing state's lock was held, per hold: every client waits behind the longest.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            seconds(holds.sum_nanos),
            holds.count,
            &buckets,
            None,
        )
}

fn seconds(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// One metric with a series per value of `label`.
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    metric_type: MetricType,
    label: &str,
    series: &[(&str, u64)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for &(value, count) in series {
        let labels = [(label, value)];
        let one = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => ConstCounter::new(count).encode(one)?,
            _ => ConstGauge::new(count).encode(one)?,
        }
    }
    Ok(())
}
