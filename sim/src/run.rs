//! One simulation run: the broker and the clients as turmoil hosts, faults
//! at their planned times, the broker's own consistency checked as it goes,
//! and at the end the census, a graceful shutdown, and the invariants.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tern::{Endpoint, Server, ShutdownReport};

use crate::check::{self, BoundsWatch};
use crate::client::{self, ClientState, BROKER_PORT};
use crate::history::{Ending, Event, History};
pub use crate::outcome::Outcome;
use crate::tls::{RunTls, BROKER_TLS_PORT};
use crate::workload::{self, ClientPlan, Fault, Plan, Scenario};

/// A run that broke an invariant, with what is needed to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub scenario: &'static str,
    pub problems: Vec<String>,
}

/// The broker host's current server and the report of its last shutdown.
#[derive(Default)]
struct BrokerSlot {
    server: Option<Server>,
    shutdown: Option<ShutdownReport>,
    /// A jump of the broker host's clock, for the host to make (only its
    /// own runtime can move its clock).
    clock_jump: Option<Duration>,
}

/// Steps between the broker's consistency checks: often enough to see a
/// limit exceeded while it is, rarely enough to keep runs fast.
const CHECK_EVERY_STEPS: u64 = 50;

/// A client and what the harness can see of it, on some host.
type HostedClient = (Rc<ClientPlan>, Rc<ClientState>);

/// Each host's clients, by name, with what the harness can see of them.
type ClientsByHost = BTreeMap<String, Vec<(String, Rc<ClientState>)>>;

/// Clients on one host when none of them is to be crashed.
const CLIENTS_PER_SHARED_HOST: usize = 8;

pub fn run(scenario: &Scenario, seed: u64) -> Result<Outcome, Failure> {
    run_plan(
        scenario,
        seed,
        workload::generate(scenario, seed),
        &mut |_, _| {},
    )
}

/// Runs a given plan; `probe` sees the broker between steps, for scenarios
/// that check the census as it changes.
pub fn run_plan(
    scenario: &Scenario,
    seed: u64,
    plan: Plan,
    probe: &mut dyn FnMut(Duration, &Server),
) -> Result<Outcome, Failure> {
    let fail = |problems: Vec<String>| Failure {
        seed,
        scenario: scenario.name,
        problems,
    };
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        .simulation_duration(scenario.active + scenario.quiet + Duration::from_secs(60))
        .tick_duration(Duration::from_millis(10))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(crate::network::USUAL_LATENCY)
        .build();
    let history = History::default();
    let slot = Rc::new(RefCell::new(BrokerSlot::default()));
    let tls = scenario.tls.as_ref().map(|_| Rc::new(RunTls::new(seed)));
    add_broker(&mut sim, scenario, &slot, tls.clone());
    let Plan { clients, faults } = plan;
    let client_tls = tls.map(|tls| tls.client.clone());
    let (clients, host_of) = add_clients(&mut sim, clients, &faults, &history, client_tls);
    let mut faults = faults.into_iter().peekable();
    // Held links to release, and (with no host) the end of a slow spell.
    let mut releases: Vec<(Duration, String)> = Vec::new();
    let end = scenario.active + scenario.quiet;
    let mut steps = 0u64;
    let mut bounds = BoundsWatch::default();
    while sim.elapsed() < end {
        let now = sim.elapsed();
        while let Some((_, mut fault)) = faults.next_if(|(at, _)| *at <= now) {
            if let Fault::Hold { host, .. } = &mut fault {
                *host = host_of[host.as_str()].clone();
            }
            inject(&mut sim, fault, &clients, &history, &slot, &mut releases);
        }
        releases.retain(|(at, host)| {
            if *at > now {
                return true;
            }
            if host.is_empty() {
                // The end of a slow spell.
                sim.set_max_message_latency(crate::network::USUAL_LATENCY);
                return false;
            }
            sim.release("broker", host.as_str());
            for (client, _) in &clients[host] {
                let client = client.clone();
                history.record_at(now, Event::Released { client });
            }
            false
        });
        step(&mut sim).map_err(|e| fail(vec![e]))?;
        steps += 1;
        if let Some(server) = &slot.borrow().server {
            probe(sim.elapsed(), server);
        }
        if steps.is_multiple_of(CHECK_EVERY_STEPS) {
            if let Some(server) = &slot.borrow().server {
                server
                    .check()
                    .map_err(|e| fail(vec![format!("broker state at {now:?}: {e}")]))?;
                let census = server.census_with_peaks();
                bounds.check(&scenario.config, &census, now, seed);
            }
        }
    }
    let server = slot
        .borrow()
        .server
        .clone()
        .expect("the broker host started");
    let idle = server.census_with_peaks();
    let dropped_by_client = server.dropped_by_client();
    bounds.check(&scenario.config, &idle, sim.elapsed(), seed);
    server.stop();
    for _ in 0..10_000 {
        if slot.borrow().shutdown.is_some() {
            break;
        }
        step(&mut sim).map_err(|e| fail(vec![e]))?;
    }
    let shutdown = slot.borrow_mut().shutdown.take();
    let Some(shutdown) = shutdown else {
        return Err(fail(vec!["the broker did not finish its shutdown".into()]));
    };
    let outcome = Outcome {
        history,
        idle,
        shutdown,
        dropped_by_client,
        steps,
    };
    let mut problems = bounds.problems();
    problems.extend(check::all(scenario, &outcome));
    if let Some(path) = std::env::var_os("SIM_HISTORY") {
        // For a replay: the whole history, one event a line.
        let text: String = outcome
            .history
            .entries()
            .iter()
            .map(|e| format!("{e}\n"))
            .collect();
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("cannot write SIM_HISTORY: {error}");
        }
    }
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(fail(problems))
    }
}

/// The broker host: a `tern::Server` on turmoil's listener, and on a
/// second with TLS if the scenario has it, put in `slot` so that the
/// harness can read it between steps.
fn add_broker(
    sim: &mut turmoil::Sim<'_>,
    scenario: &Scenario,
    slot: &Rc<RefCell<BrokerSlot>>,
    tls: Option<Rc<RunTls>>,
) {
    let config = scenario.config.clone();
    let broker_slot = slot.clone();
    let jumps = scenario.clock_jumps > 0;
    // Parsed once, before the run: nothing reads the disk while it goes.
    let rules = scenario.security.as_ref().map(|security| {
        let passwords = tern::auth::PasswordFile::parse(&security.password_text())
            .expect("the simulated users make a valid password file");
        let acl = tern::auth::AclFile::parse(&security.acl_text())
            .expect("the simulated rules make a valid ACL file");
        (passwords, acl)
    });
    sim.host("broker", move || {
        let slot = broker_slot.clone();
        let config = config.clone();
        let rules = rules.clone();
        let tls = tls.clone();
        async move {
            let bind =
                |port| turmoil::net::TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), port));
            let mut listeners = vec![(bind(BROKER_PORT).await?, Endpoint::plain(&config))];
            if let Some(tls) = tls {
                let endpoint = Endpoint::secured(&config, tls.server());
                listeners.push((bind(BROKER_TLS_PORT).await?, endpoint));
            }
            let server = match rules {
                Some((passwords, acl)) => Server::with_rules(config, Some(passwords), Some(acl)),
                None => Server::new(config),
            };
            slot.borrow_mut().server = Some(server.clone());
            if jumps {
                tokio::task::spawn_local(crate::clock::jumper(slot.clone(), |slot| {
                    slot.borrow_mut().clock_jump.take()
                }));
            }
            let report = server.serve(listeners, std::future::pending()).await;
            slot.borrow_mut().shutdown = Some(report);
            Ok(())
        }
    });
}

/// The client hosts: a host of its own for each client that is to crash,
/// a few to a host for the others. Returns each host's clients as the
/// harness sees them, and the host of each client.
fn add_clients(
    sim: &mut turmoil::Sim<'_>,
    plans: Vec<ClientPlan>,
    faults: &[(Duration, Fault)],
    history: &History,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> (ClientsByHost, BTreeMap<String, String>) {
    let crashed: BTreeSet<String> = faults
        .iter()
        .filter_map(|(_, fault)| match fault {
            Fault::Crash { host, .. } => Some(host.clone()),
            _ => None,
        })
        .collect();
    let mut hosts: BTreeMap<String, Vec<HostedClient>> = BTreeMap::new();
    let mut host_of = BTreeMap::new();
    for (i, client_plan) in plans.into_iter().enumerate() {
        // Every running host's runtime is ticked every step, a good part of
        // a step's cost: clients that are never crashed share hosts, a few
        // to each.
        let own = crashed.contains(&client_plan.name) || crate::grace::is_probe(&client_plan.name);
        let host = if own {
            client_plan.name.clone()
        } else {
            format!("h{}", i / CLIENTS_PER_SHARED_HOST)
        };
        host_of.insert(client_plan.name.clone(), host.clone());
        hosts
            .entry(host)
            .or_default()
            .push((Rc::new(client_plan), Rc::new(ClientState::default())));
    }
    for (host, clients) in &hosts {
        let clients = clients.clone();
        let history = history.clone();
        let tls = tls.clone();
        sim.host(host.as_str(), move || {
            let clients = clients.clone();
            let history = history.clone();
            let tls = tls.clone();
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                for (plan, state) in clients {
                    let run = client::run(plan, state, history.clone(), tls.clone());
                    tasks.spawn_local(run);
                }
                while let Some(done) = tasks.join_next().await {
                    done??;
                }
                Ok(())
            }
        });
    }
    let clients: ClientsByHost = hosts
        .iter()
        .map(|(host, clients)| {
            let states = clients
                .iter()
                .map(|(plan, state)| (plan.name.clone(), state.clone()))
                .collect();
            (host.clone(), states)
        })
        .collect();

    (clients, host_of)
}

/// One step; a host's error or panic is a failure of the run.
fn step(sim: &mut turmoil::Sim<'_>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.step())) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("a host failed: {error}")),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {message}"))
        }
    }
}

fn inject(
    sim: &mut turmoil::Sim<'_>,
    fault: Fault,
    clients: &ClientsByHost,
    history: &History,
    slot: &Rc<RefCell<BrokerSlot>>,
    releases: &mut Vec<(Duration, String)>,
) {
    let now = sim.elapsed();
    match fault {
        Fault::Crash { host, silent } => {
            if silent {
                // Nothing the crash sends will reach the broker: only
                // keepalive can find the connection dead.
                sim.partition("broker", host.as_str());
            }
            sim.crash(host.as_str());
            for (client, state) in &clients[&host] {
                if silent {
                    let client = client.clone();
                    history.record_at(now, Event::SilentlyCrashed { client });
                }
                if let Some(conn) = state.connected.take() {
                    let ended = Event::Ended {
                        client: client.clone(),
                        conn,
                        how: Ending::Crashed,
                    };
                    history.record_at(now, ended);
                }
            }
        }
        Fault::Hold { host, for_ } => {
            sim.hold("broker", host.as_str());
            for (client, _) in &clients[&host] {
                history.record_at(
                    now,
                    Event::Held {
                        client: client.clone(),
                    },
                );
            }
            releases.push((now + for_, host));
        }
        Fault::Slow { for_, latency } => {
            sim.set_max_message_latency(latency);
            // No host: the end of the spell.
            releases.push((now + for_, String::new()));
        }
        Fault::ClockJump { by } => {
            slot.borrow_mut().clock_jump = Some(by);
            history.record_at(now, Event::ClockJumped { by });
        }
        Fault::BounceBroker => {
            slot.borrow_mut().server = None;
            sim.bounce("broker");
            history.record_at(now, Event::BrokerRestarted);
        }
    }
}
