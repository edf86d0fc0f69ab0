//! The named scenarios `cargo test` runs, and the sweep runner runs by name.

use std::time::Duration;

use crate::check::QUEUE_NEVER_FULL;
use crate::secured::Security;
use crate::tls::TlsMix;
use crate::workload::{Scenario, V5Mix};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Queues that cannot fill, so that any loss is a bug, not a limit.
fn roomy(mut scenario: Scenario) -> Scenario {
    scenario.config.queued_messages_max = QUEUE_NEVER_FULL;
    scenario.config.outbound_packets_max = QUEUE_NEVER_FULL;
    scenario
}

/// At least 200 clients connecting, subscribing, publishing and dropping
/// over 60 simulated seconds, with held links.
pub fn churn() -> Scenario {
    Scenario {
        holds: 10,
        ..roomy(Scenario::base("churn", 200, secs(60)))
    }
}

/// Every client dies silently: partitioned, then crashed; only keepalive
/// can find it.
pub fn silent_death() -> Scenario {
    Scenario {
        crash_chance: 1.0,
        silent_death_chance: 1.0,
        ..roomy(Scenario::base("silent_death", 30, secs(20)))
    }
}

/// Subscribers that stop reading for seconds, with small queues: the others
/// keep their deliveries, the queues stay within their limits.
pub fn slow_subscriber() -> Scenario {
    let mut scenario = Scenario::base("slow_subscriber", 30, secs(20));
    scenario.slow_reader_chance = 0.5;
    scenario.publishes_per_connection = 10..40;
    scenario.config.queued_messages_max = 20;
    scenario.config.outbound_packets_max = 20;
    scenario
}

/// Pairs of clients with one client id: each connection takes over the
/// other's.
pub fn takeover() -> Scenario {
    Scenario {
        twins: 10,
        ..roomy(Scenario::base("takeover", 10, secs(20)))
    }
}

/// The broker restarts twice; every session is lost with it.
pub fn broker_bounce() -> Scenario {
    Scenario {
        bounces: 2,
        ..roomy(Scenario::base("broker_bounce", 40, secs(30)))
    }
}

/// Mostly retained messages and wills, mostly abrupt ends.
pub fn retained_and_wills() -> Scenario {
    Scenario {
        retain_chance: 0.8,
        will_chance: 1.0,
        crash_chance: 0.4,
        ..roomy(Scenario::base("retained_and_wills", 60, secs(20)))
    }
}

/// MQTT 5.0 clients above all, most of them persistent, using every
/// feature the invariants watch: short session expiries, delayed wills,
/// small Receive Maximums, expiring messages, shared subscriptions.
pub fn mqtt5() -> Scenario {
    Scenario {
        persistent_chance: 0.6,
        will_chance: 0.6,
        retain_chance: 0.3,
        v5: V5Mix {
            clients: 0.9,
            short_expiry: 0.6,
            will_delay: 0.7,
            receive_maximum: 0.5,
            message_expiry: 0.3,
            shared: 0.4,
        },
        ..roomy(Scenario::base("mqtt5", 40, secs(30)))
    }
}

/// Hostile clients (`sim/src/adversary.rs`) beside a mix of everything,
/// with limits small enough that they reach every one: their queues are
/// shed and dropped, their filters and retained topics refused, their
/// largest packets refused; the others lose nothing (queues by count are
/// roomy, and their messages are far smaller than the byte limits).
pub fn adversary() -> Scenario {
    let mut scenario = roomy(Scenario::base("adversary", 40, secs(30)));
    scenario.adversaries = 4;
    let config = &mut scenario.config;
    // Each message counts about 200 bytes besides its own (`Publish::weight`).
    config.queued_bytes_max = 64 * 1024;
    config.outbound_bytes_max = 32 * 1024;
    config.packet_size_max_bytes = 4 * 1024;
    config.subscriptions_per_client_max = 20;
    config.retained_messages_max = 24;
    config.sessions_max = 1_000;
    // Their large traffic is on `$adv/` topics, out of `#`'s reach.
    config.dollar_topics_from_clients = true;
    scenario
}

/// Users, anonymous clients and intruders under an ACL
/// (`sim/src/secured.rs`): nobody reads what its rules deny, retained
/// messages and wills included, no wrong login gets in, and no user
/// takes another's session; what the rules allow is delivered as ever,
/// through held links and a broker restart. A third of the clients come
/// over TLS, beside the others on plain TCP, and every one gets its
/// CONNACK; probes that speak plain MQTT to the TLS port, or TLS to the
/// plain port, get no answer but the close (`sim/src/tls.rs`).
pub fn secured() -> Scenario {
    let mut scenario = roomy(Scenario::base("secured", 40, secs(30)));
    scenario.holds = 5;
    scenario.bounces = 1;
    scenario.retain_chance = 0.3;
    scenario.will_chance = 0.6;
    scenario.security = Some(Security::standard());
    scenario.tls = Some(TlsMix {
        share: 0.35,
        plaintext_probes: 2,
        hello_probes: 2,
    });
    // Its ACL's model does not know the corner clients' topics.
    scenario.corners = false;
    scenario.config.allow_anonymous = Some(true);
    scenario
}

/// The broker host's clock jumps forward by minutes mid-run, as a
/// suspended VM's does (`sim/src/clock.rs`): expiries, delayed wills and
/// keepalive go by the broker's clock, and nothing else changes.
pub fn clock_jump() -> Scenario {
    let mut scenario = Scenario {
        clock_jumps: 1,
        persistent_chance: 0.5,
        will_chance: 0.5,
        v5: V5Mix {
            clients: 0.8,
            short_expiry: 0.6,
            will_delay: 0.6,
            receive_maximum: 0.3,
            message_expiry: 0.3,
            shared: 0.2,
        },
        ..roomy(Scenario::base("clock_jump", 30, secs(30)))
    };
    // No maximum, so that a 3.1.1 client may ask for no keepalive at all
    // (with one, mosquitto's rule refuses it).
    scenario.config.keep_alive_max_secs = 0;
    // `$SYS` on, every 2 s through the jump; the corner clients watch
    // `$SYS/#`.
    scenario.config.sys_interval_secs = 2;
    scenario
}

/// Partitions that heal: links held for 2 to 9 s, longer than most
/// keepalives' grace and shorter than some, so that some connections
/// survive them and others are closed; holds just inside the grace of
/// clients that only ping (`sim/src/grace.rs`); and spells of a network that
/// delivers slowly for seconds (`sim/src/network.rs`).
pub fn partition_heal() -> Scenario {
    Scenario {
        holds: 12,
        hold_ms: 2_000..9_000,
        grace_probes: 2,
        slow_spells: 2,
        // The long-lived clients' plans may be set back by two holds of
        // 9 s (`Scenario::stay_until`): time to finish them.
        quiet: secs(38),
        ..roomy(Scenario::base("partition_heal", 30, secs(30)))
    }
}

/// Acknowledgements put off while the routing lock is taken
/// (`dispatch_waiting` in src/server/connection.rs): the simulation's one
/// thread never finds it taken, so here every other try does, while
/// twins take each other's sessions over and clients die with acks put
/// off.
pub fn contended() -> Scenario {
    let mut scenario = Scenario {
        twins: 6,
        ..Scenario::base("contended", 30, secs(20))
    };
    scenario.config.lock_taken_one_in = 2;
    scenario
}

pub fn all() -> Vec<Scenario> {
    vec![
        mqtt5(),
        churn(),
        silent_death(),
        slow_subscriber(),
        takeover(),
        broker_bounce(),
        retained_and_wills(),
        adversary(),
        secured(),
        clock_jump(),
        partition_heal(),
        contended(),
    ]
}

pub fn by_name(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}
