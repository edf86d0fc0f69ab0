//! Clients for the corners of the spec the churners never reach, drawn from
//! a generator of their own so that every other client's plan is what it
//! was before them: `$` topics (which a leading wildcard must not match,
//! and `$SYS`, which clients may not publish to), the parent of a `#`
//! filter, a clean CONNECT for a client id with a stored session, 5.0's
//! No Local, Retain As Published and Retain Handling, and retained wills.
//! Each stays long enough for the delivery checks to hold the broker to
//! account; the checks that watch them are in `check`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern::codec::{QoS, RetainHandling, SubscriptionOptions};

use crate::observers::connection;
use crate::workload::{
    millis, Action, ClientPlan, ConnectionPlan, End, Login, Scenario, EXPIRY_OUTLIVES_RUN,
};

/// The topics the edge publisher writes: `$` topics that clients may use
/// (`dollar_topics_from_clients`), one under `$SYS` that they may not, and
/// `t`, the parent of `t/#`.
pub const EDGE_TOPICS: [&str; 4] = ["$x/a", "$x/b/c", "$SYS/x", "t"];

/// The topic of a retained will: its client's own, so that nothing else
/// is retained there.
pub fn retained_will_topic(client: &str) -> String {
    format!("will/r/{client}")
}

fn qos12(rng: &mut StdRng) -> QoS {
    if rng.random_bool(0.5) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}

fn stay_until(scenario: &Scenario) -> Duration {
    scenario.stay_until()
}

fn client(name: &str, v5: bool, start: Duration, connections: Vec<ConnectionPlan>) -> ClientPlan {
    ClientPlan {
        name: name.to_owned(),
        client_id: name.to_owned(),
        start,
        connections,
        observer: true,
        twin: false,
        v5,
        session_expiry: 0,
        adversary: false,
        login: Login::default(),
        wire: crate::workload::Wire::Plain,
    }
}

pub fn generate(scenario: &Scenario, seed: u64) -> Vec<ClientPlan> {
    if !scenario.corners {
        return Vec::new();
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0xC0C0_C0C0_C0C0_C0C0);
    let mut clients = vec![
        dollar_watcher(scenario, &mut rng),
        edge_publisher(scenario, &mut rng),
        clean_return("k0", false, scenario, &mut rng),
        retained_will("w0", false, scenario, &mut rng),
    ];
    clients.extend(quiet_takeover(scenario, &mut rng));
    if scenario.v5.clients > 0.0 {
        clients.push(clean_return("k1", true, scenario, &mut rng));
        clients.push(retained_will("w1", true, scenario, &mut rng));
        clients.push(options_user(scenario, &mut rng));
    }
    clients.extend(crate::session_corners::generate(scenario, seed));
    clients
}

/// Subscribes to `$` topics by name, and to what must not reach them
/// through a leading wildcard (`+/a`); and to `t/#`, which `t` matches.
fn dollar_watcher(scenario: &Scenario, rng: &mut StdRng) -> ClientPlan {
    let mut actions: Vec<(Duration, Action)> = ["$x/#", "$SYS/#", "+/a", "t/#"]
        .iter()
        .map(|f| (Duration::ZERO, Action::Subscribe(f.to_string(), qos12(rng))))
        .collect();
    actions.push((stay_until(scenario), Action::StopReading(Duration::ZERO)));
    client(
        "d0",
        false,
        Duration::ZERO,
        vec![connection(true, actions, End::Disconnect)],
    )
}

/// Publishes to `EDGE_TOPICS` through the busy part of the run.
fn edge_publisher(scenario: &Scenario, rng: &mut StdRng) -> ClientPlan {
    let mut actions = Vec::new();
    let mut at = Duration::from_secs(1);
    let until = scenario.active.saturating_sub(Duration::from_secs(2));
    while at < until {
        let gap = millis(rng, 200..1_200);
        at += gap;
        let topic = EDGE_TOPICS[rng.random_range(0..EDGE_TOPICS.len())].to_owned();
        let action = Action::Publish {
            topic,
            qos: qos12(rng),
            retain: false,
            empty: false,
            expiry: None,
            heavy: None,
        };
        actions.push((gap, action));
    }
    let rest = stay_until(scenario).saturating_sub(at);
    actions.push((rest, Action::StopReading(Duration::ZERO)));
    client(
        "e0",
        false,
        Duration::ZERO,
        vec![connection(true, actions, End::Disconnect)],
    )
}

/// A persistent session that subscribes and goes away while messages for
/// it are published; then a clean CONNECT with its client id, which must
/// find no session: no session present, nothing of the old subscriptions
/// or queue. The 5.0 one asks for a long expiry on both, so its second
/// session outlives the run.
fn clean_return(name: &str, v5: bool, scenario: &Scenario, rng: &mut StdRng) -> ClientPlan {
    let active_ms = scenario.active.as_millis() as u64;
    let online = millis(rng, active_ms / 5..active_ms / 2);
    let first = vec![
        (Duration::ZERO, Action::Subscribe("t/#".into(), qos12(rng))),
        (Duration::ZERO, Action::Subscribe("u/#".into(), qos12(rng))),
        (online, Action::StopReading(Duration::ZERO)),
    ];
    let end = if rng.random_bool(0.5) {
        End::Disconnect
    } else {
        End::Drop
    };
    let offline = millis(rng, 1_000..4_000);
    let back = stay_until(scenario).saturating_sub(online + offline);
    let mut second = connection(
        true,
        vec![(back, Action::StopReading(Duration::ZERO))],
        End::Disconnect,
    );
    second.gap = offline;
    let mut plan = client(
        name,
        v5,
        Duration::ZERO,
        vec![connection(false, first, end), second],
    );
    if v5 {
        plan.session_expiry = EXPIRY_OUTLIVES_RUN;
    }
    plan
}

/// A connection with a retained will on a topic of its own, which ends
/// without DISCONNECT; then a clean one that subscribes to it and must get
/// the will as a retained message.
fn retained_will(name: &str, v5: bool, scenario: &Scenario, rng: &mut StdRng) -> ClientPlan {
    let active_ms = scenario.active.as_millis() as u64;
    let online = millis(rng, active_ms / 5..active_ms / 2);
    let mut first = connection(
        true,
        vec![(online, Action::StopReading(Duration::ZERO))],
        End::Drop,
    );
    first.will = Some((retained_will_topic(name), qos12(rng), true));
    let mut second = connection(
        true,
        vec![
            (
                Duration::ZERO,
                Action::Subscribe("will/r/#".into(), qos12(rng)),
            ),
            (
                crate::check::DELIVERY_WINDOW + Duration::from_secs(1),
                Action::StopReading(Duration::ZERO),
            ),
        ],
        End::Disconnect,
    );
    second.gap = millis(rng, 1_000..3_000);
    client(name, v5, Duration::ZERO, vec![first, second])
}

fn options(qos: QoS, no_local: bool, rap: bool, handling: RetainHandling) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local,
        retain_as_published: rap,
        retain_handling: handling,
    }
}

/// A 5.0 client that asks for No Local on `t/#` and publishes to `t/a`
/// (it must not get those back), for Retain As Published on `r/+` (what
/// it gets forwarded there keeps its retain flag) and for Retain Handling
/// 2 on `u/#`, which it renews halfway with 1 (no retained messages for
/// either: the subscription exists).
fn options_user(scenario: &Scenario, rng: &mut StdRng) -> ClientPlan {
    use RetainHandling::{Never, OnNewSubscription, OnSubscribe};
    let mut actions = vec![
        (
            Duration::ZERO,
            Action::SubscribeWith("t/#".into(), options(qos12(rng), true, false, OnSubscribe)),
        ),
        (
            Duration::ZERO,
            Action::SubscribeWith("r/+".into(), options(qos12(rng), false, true, OnSubscribe)),
        ),
        (
            Duration::ZERO,
            Action::SubscribeWith("u/#".into(), options(qos12(rng), false, false, Never)),
        ),
    ];
    let mut at = Duration::ZERO;
    let half = scenario.active / 2;
    let until = scenario.active.saturating_sub(Duration::from_secs(2));
    let mut renewed = false;
    while at < until {
        let gap = millis(rng, 300..1_500);
        at += gap;
        let topic = if rng.random_bool(0.5) { "t/a" } else { "r/1" };
        let action = Action::Publish {
            topic: topic.to_owned(),
            qos: qos12(rng),
            retain: topic == "r/1" && rng.random_bool(0.5),
            empty: false,
            expiry: None,
            heavy: None,
        };
        actions.push((gap, action));
        if !renewed && at >= half {
            renewed = true;
            let again = options(qos12(rng), false, false, OnNewSubscription);
            actions.push((Duration::ZERO, Action::SubscribeWith("u/#".into(), again)));
        }
    }
    let rest = stay_until(scenario).saturating_sub(at);
    actions.push((rest, Action::StopReading(Duration::ZERO)));
    client(
        "n0",
        true,
        Duration::ZERO,
        vec![connection(true, actions, End::Disconnect)],
    )
}

/// A connection that subscribes and then only pings, every 5 s, taken
/// over by another with its client id: it must be closed when the other's
/// CONNECT is accepted, not when it next sends something (the twins of
/// the takeover scenario send too often for that to show).
fn quiet_takeover(scenario: &Scenario, rng: &mut StdRng) -> Vec<ClientPlan> {
    let active_ms = scenario.active.as_millis() as u64;
    let quiet = vec![
        (Duration::ZERO, Action::Subscribe("t/#".into(), qos12(rng))),
        (stay_until(scenario), Action::StopReading(Duration::ZERO)),
    ];
    let mut first = client(
        "y0",
        false,
        Duration::ZERO,
        vec![connection(true, quiet, End::Disconnect)],
    );
    let stay = vec![(Duration::from_secs(5), Action::StopReading(Duration::ZERO))];
    let start = millis(rng, active_ms / 4..active_ms / 2);
    let mut second = client(
        "y1",
        false,
        start,
        vec![connection(true, stay, End::Disconnect)],
    );
    for plan in [&mut first, &mut second] {
        plan.client_id = "y".to_owned();
        plan.twin = true;
    }
    vec![first, second]
}
