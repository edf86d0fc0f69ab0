//! Workloads drawn from the seed: for each simulated client, the connections
//! it makes and what it does in each; for the harness, the faults it injects.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tern::codec::{QoS, SubscriptionOptions};

pub use crate::observers::LongLived;

/// What a scenario asks of a run. Everything not fixed here is drawn from
/// the seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub clients: usize,
    /// Clients connect, publish and end within this.
    pub active: Duration,
    /// Then nothing new starts; deliveries finish and keepalive reaps the
    /// silent; the invariants are checked at its end.
    pub quiet: Duration,
    pub persistent_chance: f64,
    pub will_chance: f64,
    pub retain_chance: f64,
    /// Chance that a client's connection ends by a crash of its host
    /// (rather than DISCONNECT or a dropped socket).
    pub crash_chance: f64,
    /// Chance that a crash is preceded by a partition, so only keepalive
    /// can find it.
    pub silent_death_chance: f64,
    pub slow_reader_chance: f64,
    /// Pairs of clients sharing one client id, so the later takes over.
    pub twins: usize,
    /// Broker restarts during the active phase.
    pub bounces: usize,
    /// Extra latency and held links between clients and the broker.
    pub holds: usize,
    /// How long a link is held, in milliseconds.
    pub hold_ms: std::ops::Range<u64>,
    /// Clients that only ping, whose links are held for just less than
    /// their keepalive's grace (`sim/src/grace.rs`).
    pub grace_probes: usize,
    /// Spells of a slow network (`sim/src/network.rs`).
    pub slow_spells: usize,
    /// Clients that stay connected and subscribed from start to end, so that
    /// every delivery guarantee has someone to hold for.
    pub observers: usize,
    /// Long-lived clients of the other kinds: returning persistent sessions,
    /// late subscribers, shared-group members.
    pub long_lived: LongLived,
    /// Hostile clients (`sim/src/adversary.rs`): they subscribe heavily,
    /// flood retained messages, stop reading and send huge properties.
    pub adversaries: usize,
    pub publishes_per_connection: std::ops::Range<usize>,
    /// MQTT 5.0: the share of clients that speak it, and the chances of the
    /// features its invariants watch.
    pub v5: V5Mix,
    /// Users and an ACL, and clients that try them (`sim/src/secured.rs`).
    pub security: Option<crate::secured::Security>,
    /// A second broker port with TLS, and the clients that use it.
    pub tls: Option<crate::tls::TlsMix>,
    /// Clients for the spec's corners (`sim/src/corners.rs`).
    pub corners: bool,
    /// Jumps of the broker host's clock, and the clients they must not
    /// touch (`sim/src/clock.rs`).
    pub clock_jumps: usize,
    pub config: tern::Config,
}

/// How much of MQTT 5.0 a workload uses. Drawn from a second generator, so
/// that the 3.1.1 part of a seed's plan is what it was before 5.0 came.
#[derive(Debug, Clone)]
pub struct V5Mix {
    pub clients: f64,
    /// Of a persistent 5.0 client: a Session Expiry Interval of a few
    /// seconds, which runs out within the run, rather than an hour.
    pub short_expiry: f64,
    /// Of a 5.0 will: a Will Delay Interval of one to three seconds.
    pub will_delay: f64,
    /// Of a 5.0 connection: a Receive Maximum of one to three.
    pub receive_maximum: f64,
    /// Of a 5.0 publish: a Message Expiry Interval of one to three seconds.
    pub message_expiry: f64,
    /// Of a 5.0 subscription: a shared one.
    pub shared: f64,
}

impl V5Mix {
    pub fn some() -> V5Mix {
        V5Mix {
            clients: 0.5,
            short_expiry: 0.5,
            will_delay: 0.5,
            receive_maximum: 0.3,
            message_expiry: 0.2,
            shared: 0.15,
        }
    }
}

/// The Session Expiry Interval of a persistent 5.0 client that does not
/// ask for a short one: longer than any run.
pub const EXPIRY_OUTLIVES_RUN: u32 = 3600;

impl Scenario {
    /// Until when the long-lived clients stay: near the end, less what
    /// long holds of their links may set their plans back by (each action
    /// waits for the one before, so a hold delays all that follow).
    pub fn stay_until(&self) -> Duration {
        let slack = match self.hold_ms.end {
            ms if ms > 2_000 => Duration::from_millis(2 * ms),
            _ => Duration::ZERO,
        };
        (self.active + self.quiet - Duration::from_secs(2)).saturating_sub(slack)
    }

    /// A mix of everything, for a given number of clients and duration.
    pub fn base(name: &'static str, clients: usize, active: Duration) -> Scenario {
        Scenario {
            name,
            clients,
            active,
            quiet: Duration::from_secs(20),
            persistent_chance: 0.3,
            will_chance: 0.4,
            retain_chance: 0.15,
            crash_chance: 0.2,
            silent_death_chance: 0.2,
            slow_reader_chance: 0.0,
            twins: 0,
            bounces: 0,
            holds: 0,
            hold_ms: 100..2_000,
            grace_probes: 0,
            slow_spells: 0,
            observers: 3,
            long_lived: LongLived::default(),
            adversaries: 0,
            publishes_per_connection: 0..8,
            v5: V5Mix::some(),
            security: None,
            tls: None,
            corners: true,
            clock_jumps: 0,
            config: tern::Config {
                // Small windows and queues, so that they fill in a short run.
                inflight_messages_max: 4,
                queued_messages_max: 200,
                outbound_packets_max: 500,
                sys_interval_secs: 0,
                // The corner clients publish to `$x/...` (and to `$SYS/x`,
                // which stays refused).
                dollar_topics_from_clients: true,
                connect_timeout_ms: 2_000,
                shutdown_grace_ms: 2_000,
                ..tern::Config::default()
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientPlan {
    pub name: String,
    pub client_id: String,
    pub start: Duration,
    pub connections: Vec<ConnectionPlan>,
    /// Observers: connected for the whole run, checked most strictly.
    pub observer: bool,
    pub twin: bool,
    /// Speaks MQTT 5.0 rather than 3.1.1.
    pub v5: bool,
    /// The Session Expiry Interval a 5.0 client asks for on every
    /// connection: 0 if it is clean, else seconds.
    pub session_expiry: u32,
    /// Hostile: the broker may drop what is for it (its queues are over
    /// their limits by design), so no delivery to it is owed.
    pub adversary: bool,
    /// The user name and password of every CONNECT it makes.
    pub login: Login,
    /// How its bytes reach the broker.
    pub wire: Wire,
}

impl ClientPlan {
    /// A 3.1.1 client over plain TCP without a login, neither observer,
    /// twin nor adversary: what a plan starts from and changes.
    pub fn plain(
        name: String,
        client_id: String,
        start: Duration,
        connections: Vec<ConnectionPlan>,
    ) -> ClientPlan {
        ClientPlan {
            name,
            client_id,
            start,
            connections,
            observer: false,
            twin: false,
            v5: false,
            session_expiry: 0,
            adversary: false,
            login: Login::default(),
            wire: Wire::Plain,
        }
    }
}

/// How a client's bytes reach the broker (`sim/src/tls.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Wire {
    #[default]
    Plain,
    /// TLS to the broker's TLS port, its certificate checked.
    Tls,
    /// Plain MQTT to the TLS port: a probe that must never get a CONNACK.
    PlainToTlsPort,
    /// A TLS ClientHello to the plain port: a probe that must get no
    /// answer but the close.
    TlsToPlainPort,
}

/// What a CONNECT says of who connects; neither, for an anonymous client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    pub user: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConnectionPlan {
    /// Pause before connecting.
    pub gap: Duration,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<(String, QoS, bool)>,
    /// The Receive Maximum a 5.0 client asks for.
    pub receive_maximum: Option<u16>,
    /// The Will Delay Interval of a 5.0 will, in seconds.
    pub will_delay: u32,
    /// How long this client waits before acknowledging a QoS 1/2 message.
    pub ack_delay: Duration,
    /// The Maximum Packet Size a 5.0 client asks for: the broker must send
    /// it nothing larger [MQTT-3.1.2-24].
    pub packet_size_max: Option<u32>,
    /// The Topic Alias Maximum a 5.0 client announces: 0 (or 3.1.1) takes
    /// no aliases from the broker.
    pub topic_alias_max: u16,
    /// The Session Expiry Interval its DISCONNECT sets (5.0), if any.
    pub disconnect_expiry: Option<u32>,
    /// Each action after the pause before it.
    pub actions: Vec<(Duration, Action)>,
    pub end: End,
}

impl ConnectionPlan {
    /// A connection made at once, without a will or 5.0 options, that
    /// acknowledges at once.
    pub fn plain(
        clean: bool,
        keep_alive: u16,
        actions: Vec<(Duration, Action)>,
        end: End,
    ) -> ConnectionPlan {
        ConnectionPlan {
            gap: Duration::ZERO,
            clean,
            keep_alive,
            will: None,
            receive_maximum: None,
            will_delay: 0,
            ack_delay: Duration::ZERO,
            packet_size_max: None,
            topic_alias_max: 0,
            disconnect_expiry: None,
            actions,
            end,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Action {
    Subscribe(String, QoS),
    /// One SUBSCRIBE with many filters.
    SubscribeMany(Vec<(String, QoS)>),
    /// A 5.0 SUBSCRIBE with No Local, Retain As Published or Retain
    /// Handling.
    SubscribeWith(String, SubscriptionOptions),
    Unsubscribe(String),
    Publish {
        topic: String,
        qos: QoS,
        retain: bool,
        empty: bool,
        /// Message Expiry Interval in seconds (5.0 only).
        expiry: Option<u32>,
        /// User Properties that make it large (5.0 only).
        heavy: Option<Heavy>,
    },
    /// Stop reading for a while: a slow subscriber.
    StopReading(Duration),
}

/// User Properties that make a PUBLISH large: `count` of them, `bytes`
/// long encoded (near enough: values are cut to share it evenly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heavy {
    pub count: usize,
    pub bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Disconnect,
    /// Close the socket without DISCONNECT.
    Drop,
    /// Go silent (no packets, no pings) and wait for the harness to crash
    /// the host, or for keepalive.
    Hang,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Crash a client host; `silent` partitions it from the broker first.
    Crash {
        host: String,
        silent: bool,
    },
    /// Delay everything between a client and the broker for a while.
    Hold {
        host: String,
        for_: Duration,
    },
    BounceBroker,
    /// Every message takes up to `latency` (`sim/src/network.rs`).
    Slow {
        for_: Duration,
        latency: Duration,
    },
    /// The broker host's clock jumps forward (`sim/src/clock.rs`).
    ClockJump {
        by: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: Vec<ClientPlan>,
    /// Faults at their times, in order.
    pub faults: Vec<(Duration, Fault)>,
}

const TOPICS: [&str; 8] = ["t/a", "t/b", "t/a/x", "t/b/y", "u/a", "u/b", "r/1", "r/2"];
const FILTERS: [&str; 10] = [
    "t/a", "t/+", "t/#", "+/a", "u/#", "#", "t/+/x", "r/+", "r/1", "+/+/y",
];

pub(crate) fn qos(rng: &mut StdRng) -> QoS {
    match rng.random_range(0..3) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

pub(crate) fn millis(rng: &mut StdRng, range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rng.random_range(range))
}

/// Shared subscriptions, for 5.0 clients: two groups on one filter's
/// topics would be one group, so each group has a filter of its own.
pub const SHARED_FILTERS: [&str; 3] = ["$share/g1/t/#", "$share/g2/+/a", "$share/g1/r/+"];

pub fn generate(scenario: &Scenario, seed: u64) -> Plan {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rng5 = StdRng::seed_from_u64(seed ^ 0x5555_5555_5555_5555);
    let mut clients = Vec::new();
    let mut faults = Vec::new();
    for i in 0..scenario.observers {
        let mut plan = observer(scenario, i, &mut rng);
        // One observer in three speaks 5.0, so both kinds watch everything.
        plan.v5 = i % 3 == 1 && scenario.v5.clients > 0.0;
        clients.push(plan);
    }
    for i in 0..scenario.clients {
        let name = format!("c{i}");
        let mut plan = churner(scenario, &name, &name, &mut rng, &mut faults);
        speak_v5(&scenario.v5, &mut plan, &mut rng5);
        clients.push(plan);
    }
    for i in 0..scenario.twins {
        for twin in 0..2 {
            let name = format!("w{i}-{twin}");
            let mut plan = churner(scenario, &name, &format!("twin{i}"), &mut rng, &mut faults);
            plan.twin = true;
            for connection in &mut plan.connections {
                connection.clean = true;
            }
            speak_v5(&scenario.v5, &mut plan, &mut rng5);
            clients.push(plan);
        }
    }
    let active_ms = scenario.active.as_millis() as u64;
    for _ in 0..scenario.holds {
        let host = clients[rng.random_range(0..clients.len())].name.clone();
        let at = millis(&mut rng, 0..active_ms);
        faults.push((
            at,
            Fault::Hold {
                host,
                for_: millis(&mut rng, scenario.hold_ms.clone()),
            },
        ));
    }
    for _ in 0..scenario.bounces {
        faults.push((
            millis(&mut rng, active_ms / 4..active_ms),
            Fault::BounceBroker,
        ));
    }
    // After every draw of the generators above, so that the plans they
    // made do not change with these.
    clients.extend(crate::observers::generate(scenario, seed));
    clients.extend(crate::adversary::generate(scenario, seed));
    if let Some(security) = &scenario.security {
        security.apply(&mut clients, seed);
    }
    if let Some(tls) = &scenario.tls {
        tls.apply(&mut clients, seed);
    }
    clients.extend(crate::corners::generate(scenario, seed));
    let jumps = crate::clock::jumps(scenario, seed);
    clients.extend(crate::clock::clients(scenario, seed, &jumps));
    faults.extend(
        jumps
            .into_iter()
            .map(|(at, by)| (at, Fault::ClockJump { by })),
    );
    let (probes, holds) = crate::grace::generate(scenario, seed);
    clients.extend(probes);
    faults.extend(holds);
    faults.extend(crate::network::slow_spells(scenario, seed));
    faults.sort_by_key(|(at, _)| *at);
    Plan { clients, faults }
}

fn observer(scenario: &Scenario, i: usize, rng: &mut StdRng) -> ClientPlan {
    let filters: &[&str] = match i % 3 {
        0 => &["#"],
        1 => &["t/#", "r/+", "will/#"],
        _ => &["+/a", "will/#", "u/#"],
    };
    let mut actions: Vec<(Duration, Action)> = filters
        .iter()
        .map(|f| (Duration::ZERO, Action::Subscribe(f.to_string(), qos(rng))))
        .collect();
    // Stay until the quiet phase is nearly over.
    let stay = scenario.stay_until();
    actions.push((stay, Action::StopReading(Duration::ZERO)));
    let connection = ConnectionPlan {
        ack_delay: millis(rng, 0..100),
        ..ConnectionPlan::plain(true, 10, actions, End::Disconnect)
    };
    let name = format!("o{i}");
    ClientPlan {
        observer: true,
        ..ClientPlan::plain(name.clone(), name, Duration::ZERO, vec![connection])
    }
}

/// Makes some clients 5.0 ones and gives them its features.
fn speak_v5(mix: &V5Mix, plan: &mut ClientPlan, rng: &mut StdRng) {
    if !rng.random_bool(mix.clients) {
        return;
    }
    plan.v5 = true;
    let persistent = plan.connections.first().is_some_and(|c| !c.clean);
    plan.session_expiry = match persistent {
        false => 0,
        true if rng.random_bool(mix.short_expiry) => rng.random_range(1..=4),
        true => EXPIRY_OUTLIVES_RUN,
    };
    for (k, connection) in plan.connections.iter_mut().enumerate() {
        connection.topic_alias_max = topic_alias_max(&plan.name, k);
        if rng.random_bool(mix.receive_maximum) {
            connection.receive_maximum = Some(rng.random_range(1..=3));
        }
        if connection.will.is_some() && rng.random_bool(mix.will_delay) {
            connection.will_delay = rng.random_range(1..=3);
        }
        for (_, action) in &mut connection.actions {
            match action {
                Action::Publish { expiry, .. } if rng.random_bool(mix.message_expiry) => {
                    *expiry = Some(rng.random_range(1..=3));
                }
                Action::Subscribe(filter, _) if rng.random_bool(mix.shared) => {
                    *filter = pick(rng, &SHARED_FILTERS).to_owned();
                }
                _ => {}
            }
        }
    }
}

/// Some 5.0 connections take topic aliases from the broker, as few as one
/// (each new topic replaces the last) or many. Drawn from the client's name,
/// not from the seeded generator, so that the rest of every plan is what
/// it was before aliases were sent.
fn topic_alias_max(name: &str, connection: usize) -> u16 {
    let hash = name
        .bytes()
        .chain([connection as u8])
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    [0, 0, 1, 2, 16][(hash % 5) as usize]
}

fn churner(
    scenario: &Scenario,
    name: &str,
    client_id: &str,
    rng: &mut StdRng,
    faults: &mut Vec<(Duration, Fault)>,
) -> ClientPlan {
    let active_ms = scenario.active.as_millis() as u64;
    let start = millis(rng, 0..active_ms / 2);
    let persistent = rng.random_bool(scenario.persistent_chance);
    let mut at = start;
    let mut connections = Vec::new();
    for _ in 0..rng.random_range(1..=3) {
        let gap = millis(rng, 0..2_000);
        at += gap;
        let (actions, length) = actions(scenario, rng);
        let mut end = match rng.random_range(0..3) {
            0 => End::Disconnect,
            1 => End::Drop,
            _ => End::Hang,
        };
        let keep_alive = rng.random_range(1..=5);
        at += length;
        if at + Duration::from_secs(2) >= scenario.active {
            break;
        }
        if rng.random_bool(scenario.crash_chance) {
            end = End::Hang;
            let silent = rng.random_bool(scenario.silent_death_chance);
            faults.push((
                at + Duration::from_millis(100),
                Fault::Crash {
                    host: name.to_owned(),
                    silent,
                },
            ));
            connections.push(plan_connection(
                scenario, rng, gap, persistent, keep_alive, actions, end,
            ));
            // A crashed host does nothing more.
            break;
        }
        connections.push(plan_connection(
            scenario, rng, gap, persistent, keep_alive, actions, end,
        ));
        if end == End::Hang {
            // Keepalive closes it; the next connection waits for that.
            at += Duration::from_millis(u64::from(keep_alive) * 1500 + 500);
        }
    }
    ClientPlan::plain(name.to_owned(), client_id.to_owned(), start, connections)
}

fn plan_connection(
    scenario: &Scenario,
    rng: &mut StdRng,
    gap: Duration,
    persistent: bool,
    keep_alive: u16,
    actions: Vec<(Duration, Action)>,
    end: End,
) -> ConnectionPlan {
    let will = rng.random_bool(scenario.will_chance).then(|| {
        (
            pick(rng, &["will/a", "will/b"]).to_owned(),
            qos(rng),
            rng.random_bool(0.3),
        )
    });
    ConnectionPlan {
        gap,
        will,
        ack_delay: millis(rng, 0..300),
        ..ConnectionPlan::plain(!persistent, keep_alive, actions, end)
    }
}

/// A connection's actions and how long they take.
fn actions(scenario: &Scenario, rng: &mut StdRng) -> (Vec<(Duration, Action)>, Duration) {
    let mut actions = Vec::new();
    let mut total = Duration::ZERO;
    let mut push = |delay: Duration, action: Action, actions: &mut Vec<(Duration, Action)>| {
        total += delay;
        actions.push((delay, action));
    };
    for _ in 0..rng.random_range(0..3) {
        let filter = pick(rng, &FILTERS).to_owned();
        push(
            millis(rng, 0..200),
            Action::Subscribe(filter, qos(rng)),
            &mut actions,
        );
    }
    if rng.random_bool(scenario.slow_reader_chance) {
        push(
            millis(rng, 0..200),
            Action::StopReading(millis(rng, 2_000..8_000)),
            &mut actions,
        );
    }
    for _ in 0..rng.random_range(scenario.publishes_per_connection.clone()) {
        let topic = pick(rng, &TOPICS).to_owned();
        let retain = rng.random_bool(scenario.retain_chance);
        let empty = retain && rng.random_bool(0.2);
        let action = Action::Publish {
            topic,
            qos: qos(rng),
            retain,
            empty,
            expiry: None,
            heavy: None,
        };
        push(millis(rng, 0..500), action, &mut actions);
    }
    if rng.random_bool(0.2) {
        let filter = pick(rng, &FILTERS).to_owned();
        push(
            millis(rng, 0..300),
            Action::Unsubscribe(filter),
            &mut actions,
        );
    }
    push(
        millis(rng, 0..1_000),
        Action::StopReading(Duration::ZERO),
        &mut actions,
    );
    (actions, total)
}
