//! Hostile clients, drawn from a generator of their own (so that the
//! others' plans do not change with them): each subscribes to many
//! overlapping wildcard filters, more than it may hold; floods retained
//! messages on more topics than the store takes; stops reading for seconds
//! while subscribed to large QoS 0 and QoS 1 traffic, its own included; and
//! sends 5.0 PUBLISHes whose User Properties bring them near the packet
//! size limit, and on one connection in four one just over it. Their large traffic is on `$adv/`
//! topics, which `#` and `+` do not match [MQTT-4.7.2-1], so the others'
//! queues stay small and every delivery to them stays owed; the retained
//! store and the broker's work they share with everyone.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern::codec::QoS;

use crate::observers::connection;
use crate::workload::{
    millis, qos, Action, ClientPlan, ConnectionPlan, End, Heavy, Login, Scenario,
};

/// Overlapping wildcard filters, the well-behaved clients' topics and
/// their own; to these come exact ones until the client is over its limit.
const FILTERS: [&str; 16] = [
    "#",
    "+/#",
    "+/+",
    "t/#",
    "t/+",
    "+/a",
    "u/#",
    "r/+",
    "$adv/#",
    "$adv/+/#",
    "$adv/+/+",
    "$adv/big/#",
    "$adv/big/+",
    "$adv/r/#",
    "$adv/r/+",
    "$adv/+/1",
];

/// Topics the retained flood spreads over: more than the scenario's store.
const FLOOD_TOPICS: u32 = 60;

pub fn generate(scenario: &Scenario, seed: u64) -> Vec<ClientPlan> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xad7e_75a4_ad7e_75a4);
    (0..scenario.adversaries)
        .map(|i| adversary(scenario, i, &mut rng))
        .collect()
}

fn adversary(scenario: &Scenario, i: usize, rng: &mut StdRng) -> ClientPlan {
    let active_ms = scenario.active.as_millis() as u64;
    let start = millis(rng, 0..active_ms / 4);
    let connections = (0..rng.random_range(1..=2))
        .map(|_| {
            let gap = millis(rng, 0..2_000);
            let ack_delay = millis(rng, 0..100);
            let actions = actions(scenario, rng);
            let end = if rng.random_bool(0.5) {
                End::Disconnect
            } else {
                End::Drop
            };
            ConnectionPlan {
                gap,
                ack_delay,
                packet_size_max: None,
                topic_alias_max: 0,
                disconnect_expiry: None,
                ..connection(true, actions, end)
            }
        })
        .collect();
    let name = format!("a{i}");
    ClientPlan {
        client_id: name.clone(),
        name,
        start,
        connections,
        observer: false,
        twin: false,
        v5: true,
        session_expiry: 0,
        adversary: true,
        login: Login::default(),
        wire: crate::workload::Wire::Plain,
    }
}

/// Subscribe heavily, then stop reading and publish: large messages to
/// `$adv/big/N` (mostly QoS 0) and a retained flood, in a random mix.
fn actions(scenario: &Scenario, rng: &mut StdRng) -> Vec<(Duration, Action)> {
    let mut actions = vec![(Duration::ZERO, subscribe_many(scenario, rng))];
    actions.push((
        millis(rng, 200..1_000),
        Action::StopReading(millis(rng, 3_000..8_000)),
    ));
    for _ in 0..rng.random_range(20..60) {
        let action = if rng.random_bool(0.5) {
            let limit = scenario.config.packet_size_max_bytes;
            let bytes = rng.random_range(limit * 6 / 10..limit * 9 / 10);
            heavy_publish(rng, bytes)
        } else {
            Action::Publish {
                topic: format!("$adv/r/{}", rng.random_range(0..FLOOD_TOPICS)),
                qos: if rng.random_bool(0.5) {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                },
                retain: true,
                empty: rng.random_bool(0.1),
                expiry: None,
                heavy: None,
            }
        };
        actions.push((millis(rng, 0..250), action));
    }
    if rng.random_bool(0.3) {
        // Subscribe again, over what it holds: replaced and refused grants.
        actions.push((millis(rng, 0..500), subscribe_many(scenario, rng)));
    }
    if rng.random_bool(0.25) {
        // Just over the limit: the broker ends the connection.
        let limit = scenario.config.packet_size_max_bytes;
        actions.push((millis(rng, 0..500), heavy_publish(rng, limit)));
    }
    actions.push((millis(rng, 0..1_000), Action::StopReading(Duration::ZERO)));
    actions
}

/// One SUBSCRIBE of overlapping wildcards and exact filters, up to a few
/// more than the client may hold.
fn subscribe_many(scenario: &Scenario, rng: &mut StdRng) -> Action {
    let max = scenario.config.subscriptions_per_client_max;
    let count = rng.random_range(max / 2..=max + 8);
    let mut filters: Vec<(String, QoS)> = Vec::with_capacity(count);
    // `$adv/big/#` first, so that it holds it and receives the big traffic.
    filters.push(("$adv/big/#".into(), qos(rng)));
    while filters.len() < count {
        let filter = match rng.random_range(0..3) {
            0 => format!("$adv/r/{}", rng.random_range(0..FLOOD_TOPICS)),
            _ => FILTERS[rng.random_range(0..FILTERS.len())].to_owned(),
        };
        if filters.iter().all(|(f, _)| *f != filter) {
            filters.push((filter, qos(rng)));
        }
    }
    Action::SubscribeMany(filters)
}

/// A PUBLISH whose User Properties are `bytes` long: one large property
/// or many small ones.
fn heavy_publish(rng: &mut StdRng, bytes: usize) -> Action {
    let count = if rng.random_bool(0.5) {
        1
    } else {
        rng.random_range(20..100)
    };
    Action::Publish {
        topic: format!("$adv/big/{}", rng.random_range(0..4)),
        qos: if rng.random_bool(0.7) {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        retain: false,
        empty: false,
        expiry: None,
        heavy: Some(Heavy { count, bytes }),
    }
}
