//! Publishes the census under `$SYS/broker/...`, retained, at an interval,
//! with mosquitto's topic names where mosquitto has one.

use std::time::Duration;

use bytes::Bytes;

use super::{Census, Server};
use crate::topic::TopicName;

pub(super) async fn run(server: Server, interval: Duration) {
    let shared = &server.shared;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            _ = ticks.tick() => publish(&server),
        }
    }
}

fn publish(server: &Server) {
    let shared = &server.shared;
    let uptime = shared.started.elapsed().as_secs();
    let messages: Vec<(TopicName, Bytes)> = topics(&server.census(), uptime)
        .into_iter()
        .map(|(topic, value)| {
            let topic = TopicName::new(&format!("$SYS/broker/{topic}"))
                .expect("$SYS topics are valid names");
            (topic, Bytes::from(value))
        })
        .collect();
    shared.with_broker(|state| {
        for (topic, payload) in messages {
            state.broker.publish_internal(topic, payload);
        }
    });
}

/// Each topic under `$SYS/broker/` and its value.
fn topics(census: &Census, uptime: u64) -> Vec<(String, String)> {
    let dropped = &census.dropped;
    let clients = census.sessions_connected + census.sessions_offline;
    let counts = [
        (
            "version",
            concat!("tern ", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("uptime", format!("{uptime} seconds")),
        ("clients/connected", census.sessions_connected.to_string()),
        ("clients/disconnected", census.sessions_offline.to_string()),
        ("clients/total", clients.to_string()),
        ("connections/count", census.connections.to_string()),
        ("subscriptions/count", census.subscriptions.to_string()),
        ("retained messages/count", census.retained.to_string()),
        ("store/messages/count", census.queued.to_string()),
        ("messages/inflight", census.inflight.to_string()),
    ];
    let drops = [
        ("", dropped.total()),
        ("/queue full", dropped.queue_full),
        ("/outbound full", dropped.outbound_full),
        ("/retained full", dropped.retained_full),
        ("/too large", dropped.too_large),
        ("/expired", dropped.expired),
        ("/shared undeliverable", dropped.shared_undeliverable),
        ("/not authorized", dropped.not_authorized),
        ("/memory full", dropped.memory_full),
        ("/store failed", dropped.store_failed),
    ];
    let mut topics: Vec<(String, String)> = counts
        .into_iter()
        .map(|(topic, value)| (topic.to_owned(), value))
        .collect();
    if let Some(heap) = census.heap_bytes {
        // mosquitto's name, where it tracks its memory.
        topics.push(("heap/current".to_owned(), heap.to_string()));
    }
    for (reason, count) in drops {
        topics.push((
            format!("publish/messages/dropped{reason}"),
            count.to_string(),
        ));
    }
    // Every kind, also at zero, so that a retained count never goes stale.
    for kind in super::TASK_KINDS {
        topics.push((format!("tasks/{kind}"), census.tasks_of(kind).to_string()));
    }
    topics
}
