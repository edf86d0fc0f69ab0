//! Clock faults inside the broker host: its clock jumps forward by minutes
//! at once, as a suspended VM's does when it resumes, while the clients and
//! the network moved on by one tick. MQTT's intervals run on the broker's
//! clock, so after the jump every session whose expiry passed is gone,
//! every delayed will that fell due is sent, nothing expired is delivered,
//! and keepalive closes the connections that owe it a packet (every one
//! with a keepalive shorter than the jump) but no other.
//!
//! The checks read the history in the broker's time
//! (`Model::after_broker`). The clients here, drawn from a generator of
//! their own, are the ones the jump decides for: two that the jump must
//! not close (no keepalive, and one longer than any jump) and that read
//! throughout; two persistent 5.0 sessions that leave just before the jump
//! and come back just after, one whose expiry the jump passed and one whose
//! it did not; a will delayed by a minute whose connection drops just
//! before; and messages with an expiry published to the absent sessions
//! just before the jump, which must not reach them after it.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern::codec::QoS;

use crate::observers::connection;
use crate::workload::{millis, Action, ClientPlan, End, Scenario, EXPIRY_OUTLIVES_RUN};

/// How far the broker's clock jumps: past the packet timeout (60 s), the
/// longest keepalive grace of the churners and observers (15 s), and the
/// expiries and will delay below, but short of the long keepalive here.
const JUMP_MS: std::ops::Range<u64> = 90_000..300_000;

/// A keepalive whose grace (1.5 times) outlasts any jump.
pub const KEEP_ALIVE_LONG: u16 = 600;

/// The short session expiry here: far less than a jump, far more than
/// the time the session is away in the world's time.
const EXPIRY_SHORT: u32 = 10;

/// The will's delay: less than a jump, more than what is left of the run.
const WILL_DELAY: u32 = 60;

/// The Message Expiry Interval of the messages published just before the
/// jump: less than the jump, more than the world's time until the absent
/// sessions are back.
const MESSAGE_EXPIRY: u32 = 30;

/// The broker host's task that makes the jumps `take` hands it: the
/// harness cannot reach into the host's runtime between steps.
pub async fn jumper<S>(slot: S, take: impl Fn(&S) -> Option<Duration>) {
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Some(by) = take(&slot) {
            tokio::time::advance(by).await;
        }
    }
}

/// When the broker's clock jumps, and by how much.
pub fn jumps(scenario: &Scenario, seed: u64) -> Vec<(Duration, Duration)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xc10c_c10c_c10c_c10c);
    let active_ms = scenario.active.as_millis() as u64;
    let mut jumps: Vec<(Duration, Duration)> = (0..scenario.clock_jumps)
        .map(|_| {
            let at = millis(&mut rng, active_ms / 3..2 * active_ms / 3);
            (at, millis(&mut rng, JUMP_MS))
        })
        .collect();
    jumps.sort();
    jumps
}

/// The clients the first jump decides for (none without a jump).
pub fn clients(scenario: &Scenario, seed: u64, jumps: &[(Duration, Duration)]) -> Vec<ClientPlan> {
    let Some(&(at, _)) = jumps.first() else {
        return Vec::new();
    };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5ee9_5ee9_5ee9_5ee9);
    let stay = scenario.stay_until();
    let mut clients = vec![
        sleeper("j0", 0, &["#"], false, stay, &mut rng),
        sleeper(
            "j1",
            KEEP_ALIVE_LONG,
            &["t/#", "will/#", "r/+"],
            true,
            stay,
            &mut rng,
        ),
        away("j2", EXPIRY_SHORT, at, stay, &mut rng),
        away("j3", EXPIRY_OUTLIVES_RUN, at, stay, &mut rng),
    ];
    // A will delayed past the run's end in the world's time, due at once
    // in the broker's after the jump.
    let mut will = connection(false, vec![], End::Drop);
    will.will = Some(("will/j4".into(), QoS::AtLeastOnce, false));
    will.will_delay = WILL_DELAY;
    will.keep_alive = 5;
    let mut j4 = plan("j4", at - millis(&mut rng, 1_000..2_000), vec![will]);
    j4.v5 = true;
    j4.session_expiry = EXPIRY_OUTLIVES_RUN;
    clients.push(j4);
    // Published while j2 and j3 are away, expired by the time they are back.
    let publish = || Action::Publish {
        topic: "t/k".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        empty: false,
        expiry: Some(MESSAGE_EXPIRY),
        heavy: None,
    };
    let step = Duration::from_millis(50);
    let mut publisher = connection(
        true,
        vec![
            (Duration::ZERO, publish()),
            (step, publish()),
            (step, publish()),
        ],
        End::Disconnect,
    );
    publisher.keep_alive = 5;
    let mut j5 = plan("j5", at - millis(&mut rng, 500..700), vec![publisher]);
    j5.v5 = true;
    clients.push(j5);
    clients
}

/// Subscribed from the start and reading to the end; with no keepalive,
/// or one the jump does not reach, the broker has no cause to close it.
fn sleeper(
    name: &str,
    keep_alive: u16,
    filters: &[&str],
    v5: bool,
    stay: Duration,
    rng: &mut StdRng,
) -> ClientPlan {
    let mut actions: Vec<(Duration, Action)> = filters
        .iter()
        .map(|f| (Duration::ZERO, Action::Subscribe(f.to_string(), qos12(rng))))
        .collect();
    actions.push((stay, Action::StopReading(Duration::ZERO)));
    let mut only = connection(true, actions, End::Disconnect);
    only.keep_alive = keep_alive;
    let mut plan = plan(name, Duration::ZERO, vec![only]);
    plan.v5 = v5;
    plan
}

/// A persistent 5.0 session that subscribes, leaves 1 to 1.5 s before the
/// jump, and comes back 1.5 to 3 s after it: within its expiry in the
/// world's time, past it in the broker's if it is short.
fn away(name: &str, expiry: u32, jump: Duration, stay: Duration, rng: &mut StdRng) -> ClientPlan {
    let start = jump.saturating_sub(Duration::from_secs(4));
    let leave = jump - millis(rng, 1_000..1_500) - start;
    let first = vec![
        (Duration::ZERO, Action::Subscribe("t/#".into(), qos12(rng))),
        (leave, Action::StopReading(Duration::ZERO)),
    ];
    let end = if rng.random_bool(0.5) {
        End::Disconnect
    } else {
        End::Drop
    };
    let mut first = connection(false, first, end);
    first.keep_alive = 5;
    let gap = jump + millis(rng, 1_500..3_000) - (start + leave);
    // A short session is gone long before the census at the end.
    let back = match expiry {
        EXPIRY_SHORT => Duration::from_secs(3),
        _ => stay.saturating_sub(jump + Duration::from_secs(3)),
    };
    let mut second = connection(
        false,
        vec![(back, Action::StopReading(Duration::ZERO))],
        End::Disconnect,
    );
    second.keep_alive = KEEP_ALIVE_LONG;
    second.gap = gap;
    let mut plan = plan(name, start, vec![first, second]);
    plan.v5 = true;
    plan.session_expiry = expiry;
    plan
}

fn plan(
    name: &str,
    start: Duration,
    connections: Vec<crate::workload::ConnectionPlan>,
) -> ClientPlan {
    crate::observers::client(name.into(), start, connections)
}

fn qos12(rng: &mut StdRng) -> QoS {
    if rng.random_bool(0.5) {
        QoS::AtLeastOnce
    } else {
        QoS::ExactlyOnce
    }
}
