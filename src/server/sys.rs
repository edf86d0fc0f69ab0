//! Publishes the census under `$SYS/broker/...`, retained, at an interval,
//! with mosquitto's topic names where mosquitto has one.

use std::time::Duration;

use bytes::Bytes;

use super::Server;
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
    let census = server.census();
    let uptime = shared.started.elapsed().as_secs();
    let dropped = census.dropped;
    let mut topics: Vec<(String, String)> = vec![
        (
            "version".into(),
            concat!("tern ", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("uptime".into(), format!("{uptime} seconds")),
        (
            "clients/connected".into(),
            census.sessions_connected.to_string(),
        ),
        (
            "clients/disconnected".into(),
            census.sessions_offline.to_string(),
        ),
        (
            "clients/total".into(),
            (census.sessions_connected + census.sessions_offline).to_string(),
        ),
        ("connections/count".into(), census.connections.to_string()),
        (
            "subscriptions/count".into(),
            census.subscriptions.to_string(),
        ),
        (
            "retained messages/count".into(),
            census.retained.to_string(),
        ),
        ("store/messages/count".into(), census.queued.to_string()),
        ("messages/inflight".into(), census.inflight.to_string()),
        (
            "publish/messages/dropped".into(),
            dropped.total().to_string(),
        ),
        (
            "publish/messages/dropped/queue full".into(),
            dropped.queue_full.to_string(),
        ),
        (
            "publish/messages/dropped/outbound full".into(),
            dropped.outbound_full.to_string(),
        ),
        (
            "publish/messages/dropped/retained full".into(),
            dropped.retained_full.to_string(),
        ),
        (
            "publish/messages/dropped/too large".into(),
            dropped.too_large.to_string(),
        ),
        (
            "publish/messages/dropped/expired".into(),
            dropped.expired.to_string(),
        ),
        (
            "publish/messages/dropped/shared undeliverable".into(),
            dropped.shared_undeliverable.to_string(),
        ),
    ];
    // Every kind, also at zero, so that a retained count never goes stale.
    for kind in super::TASK_KINDS {
        topics.push((format!("tasks/{kind}"), census.tasks_of(kind).to_string()));
    }
    let messages: Vec<(TopicName, Bytes)> = topics
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
