//! Clients for the corners of a CONNECT and a DISCONNECT that no other
//! workload reaches, drawn from a generator of their own so that every
//! other client's plan is what it was before them: an empty client id
//! (assigned by the broker, beside a client whose chosen id is the one the
//! broker would assign first; refused to a 3.1.1 persistent session), a
//! 5.0 DISCONNECT that changes its session's expiry (shorter, longer, and
//! from none, which it may not), and a 5.0 client's Maximum Packet Size.
//! The checks that watch them are in `check::corners` and `check::mqtt5`.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern::codec::QoS;

use crate::observers::connection;
use crate::workload::{millis, qos, Action, ClientPlan, ConnectionPlan, End, Heavy, Scenario};

/// The Maximum Packet Size of `m0`: over what `m1` publishes to
/// `OVERSIZE_TOPIC`, under everything else it gets.
pub const PACKET_SIZE_MAX: u32 = 64;

/// Where `m1` publishes messages too large for `m0`, at QoS 0 only: a
/// QoS 1/2 one dropped for its size would be owed and missing.
pub const OVERSIZE_TOPIC: &str = "m/h";

/// The client id the broker assigns first (`Sessions::assign_client_id`):
/// a client that chose it must not lose it to one that asked for any.
const FIRST_ASSIGNED_ID: &str = "tern-1";

fn plan(name: &str, client_id: &str, v5: bool, start: Duration) -> ClientPlan {
    ClientPlan {
        name: name.to_owned(),
        client_id: client_id.to_owned(),
        start,
        connections: Vec::new(),
        observer: false,
        twin: false,
        v5,
        session_expiry: 0,
        adversary: false,
        login: Default::default(),
        wire: Default::default(),
    }
}

/// A connection that subscribes to `filter`, stays `stay` and says
/// DISCONNECT.
fn short_stay(rng: &mut StdRng, clean: bool, filter: &str, stay: Duration) -> ConnectionPlan {
    let actions = vec![
        (Duration::ZERO, Action::Subscribe(filter.into(), qos(rng))),
        (stay, Action::StopReading(Duration::ZERO)),
    ];
    connection(clean, actions, End::Disconnect)
}

pub fn generate(scenario: &Scenario, seed: u64) -> Vec<ClientPlan> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x1D1D_1D1D_1D1D_1D1D);
    let mut clients = empty_ids(scenario, &mut rng);
    if scenario.v5.clients > 0.0 {
        clients.extend(expiry_on_disconnect(scenario, &mut rng));
        clients.extend(packet_size(scenario, &mut rng));
    }
    clients
}

/// `i1` holds the id the broker would assign first, from the start to the
/// end; `i0` (5.0) and `i2` (3.1.1, clean) connect twice with none, and
/// `i3` (3.1.1, persistent) once, to be refused; and keepalive 0.
fn empty_ids(scenario: &Scenario, rng: &mut StdRng) -> Vec<ClientPlan> {
    let active_ms = scenario.active.as_millis() as u64;
    let mut holder = plan("i1", FIRST_ASSIGNED_ID, false, Duration::ZERO);
    let stay = vec![(scenario.stay_until(), Action::StopReading(Duration::ZERO))];
    holder.connections = vec![connection(true, stay, End::Disconnect)];
    holder.observer = true;
    let mut clients = vec![holder];
    let v5 = scenario.v5.clients > 0.0;
    // `i2` (whose id no one is told) after `i0`, which names the id it
    // gets: the first assigned goes to `i0` unless the broker restarted.
    for (name, v5, from) in [("i0", v5, 500), ("i2", false, active_ms / 2)] {
        let start = millis(rng, from..from + active_ms / 4);
        let mut client = plan(name, "", v5, start);
        for _ in 0..2 {
            let stay = millis(rng, 1_000..4_000);
            let mut connection = short_stay(rng, true, "u/#", stay);
            connection.gap = millis(rng, 0..2_000);
            client.connections.push(connection);
        }
        clients.push(client);
    }
    // Keepalive 0 (none) is over any maximum (mosquitto's rule): `i0`'s
    // second CONNECT is told the Server Keep Alive (5.0), and `i4`'s
    // (3.1.1) is refused, unless the scenario sets no maximum.
    if let Some(second) = clients[1].connections.get_mut(1) {
        second.keep_alive = 0;
    }
    let mut none = plan("i4", "i4", false, millis(rng, 0..active_ms / 2));
    let mut only = short_stay(rng, true, "u/#", Duration::from_secs(1));
    only.keep_alive = 0;
    none.connections = vec![only];
    clients.push(none);
    let mut refused = plan("i3", "", false, millis(rng, 0..active_ms / 2));
    refused.connections = vec![short_stay(rng, false, "u/#", Duration::from_secs(1))];
    clients.push(refused);
    clients
}

/// Persistent 5.0 sessions whose first DISCONNECT changes their expiry,
/// each back at a time the change decides: `z0` from 6 s to 1 s (gone
/// when it returns), `z1` from 1 s to 6 s (present), `z2` from none to
/// 3 s (a protocol error: gone). Each ends before the run does by more
/// than its expiry, so the census at the end finds none of them.
fn expiry_on_disconnect(scenario: &Scenario, rng: &mut StdRng) -> Vec<ClientPlan> {
    let active_ms = scenario.active.as_millis() as u64;
    let mut clients = Vec::new();
    for (name, asked, set, back_ms) in [
        ("z0", 6, 1, 2_500..3_500),
        ("z1", 1, 6, 2_000..3_000),
        ("z2", 0, 3, 1_000..1_800),
    ] {
        let mut client = plan(name, name, true, millis(rng, 0..active_ms / 2));
        client.session_expiry = asked;
        let stay = millis(rng, 1_000..3_000);
        let mut first = short_stay(rng, false, "u/#", stay);
        first.disconnect_expiry = Some(set);
        let mut second = short_stay(rng, false, "u/#", Duration::from_secs(1));
        second.gap = millis(rng, back_ms);
        client.connections = vec![first, second];
        clients.push(client);
    }
    clients
}

/// `m0` asks for a Maximum Packet Size and subscribes to `m/#`, where `m1`
/// publishes small messages at any QoS and large ones at QoS 0 to
/// `OVERSIZE_TOPIC`; `m1` subscribes too, with no maximum.
fn packet_size(scenario: &Scenario, rng: &mut StdRng) -> Vec<ClientPlan> {
    let until = scenario.stay_until();
    let qos12 = if rng.random_bool(0.5) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    };
    // After `m1`, so that a frame made for `m1` reaches `m0` too.
    let mut limited = plan("m0", "m0", true, Duration::from_millis(500));
    limited.observer = true;
    let actions = vec![
        (Duration::ZERO, Action::Subscribe("m/#".into(), qos12)),
        (until, Action::StopReading(Duration::ZERO)),
    ];
    let mut connection_m0 = connection(true, actions, End::Disconnect);
    connection_m0.packet_size_max = Some(PACKET_SIZE_MAX);
    limited.connections = vec![connection_m0];

    let mut publisher = plan("m1", "m1", true, Duration::ZERO);
    let mut actions = vec![(
        Duration::ZERO,
        Action::Subscribe("m/#".into(), QoS::AtMostOnce),
    )];
    let mut at = Duration::ZERO;
    let last = scenario.active.saturating_sub(Duration::from_secs(2));
    while at < last {
        let gap = millis(rng, 300..1_200);
        at += gap;
        let large = rng.random_bool(0.5);
        let action = Action::Publish {
            topic: if large { OVERSIZE_TOPIC } else { "m/s" }.to_owned(),
            qos: if large { QoS::AtMostOnce } else { qos(rng) },
            retain: false,
            empty: false,
            expiry: None,
            heavy: large.then_some(Heavy {
                count: 2,
                bytes: 4 * PACKET_SIZE_MAX as usize,
            }),
        };
        actions.push((gap, action));
    }
    actions.push((
        until.saturating_sub(at),
        Action::StopReading(Duration::ZERO),
    ));
    publisher.connections = vec![connection(true, actions, End::Disconnect)];
    vec![limited, publisher]
}
