//! Hand-written plans for the stories: one client, one connection, its
//! actions; each story changes what it needs of the rest.

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::history::{Entry, Event, History};
use tern_sim::workload::{Action, ClientPlan, ConnectionPlan, End, Fault, Plan, Scenario};

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A clean 3.1.1 client that starts at once, acknowledges at once and ends
/// with DISCONNECT after `actions`.
pub fn client(name: &str, actions: Vec<(Duration, Action)>) -> ClientPlan {
    let connection = ConnectionPlan::plain(true, 5, actions, End::Disconnect);
    ClientPlan::plain(name.into(), name.into(), Duration::ZERO, vec![connection])
}

/// A story of hand-written clients alone: no drawn clients, no observers,
/// 15 s of actions and 5 quiet.
pub fn story(name: &'static str) -> Scenario {
    let mut scenario = Scenario::base(name, 0, secs(15.0));
    scenario.quiet = secs(5.0);
    scenario.observers = 0;
    scenario
}

/// The SUBSCRIBEs that went out before the first SUBACK came back.
pub fn subscribes_before_first_suback(entries: &[Entry]) -> usize {
    entries
        .iter()
        .take_while(|e| !matches!(e.event, Event::Subscribed { .. }))
        .filter(|e| matches!(e.event, Event::SubscribeSent { .. }))
        .count()
}

/// `host`'s link held from `from` for `for_`, and the host crashed at
/// `crash_at`, long after its client ended: a client to be crashed has a
/// host of its own, so that the hold is its alone.
pub fn held_alone(host: &str, from: f64, for_: f64, crash_at: f64) -> Vec<(Duration, Fault)> {
    vec![
        (
            secs(from),
            Fault::Hold {
                host: host.into(),
                for_: secs(for_),
            },
        ),
        (
            secs(crash_at),
            Fault::Crash {
                host: host.into(),
                silent: false,
            },
        ),
    ]
}

/// When the first event that is `found` came.
pub fn first_at(entries: &[Entry], found: impl Fn(&Event) -> bool) -> Duration {
    (entries.iter().find(|e| found(&e.event)))
        .map(|e| e.at)
        .expect("in the history")
}

/// A PUBLISH of a payload.
pub fn publish(topic: &str, qos: QoS, retain: bool) -> Action {
    Action::Publish {
        topic: topic.into(),
        qos,
        retain,
        empty: false,
        expiry: None,
        heavy: None,
    }
}

/// A story whose clients' inflight windows hold one message: a QoS 1/2
/// copy waits while one is unacknowledged.
pub fn window_of_one(name: &'static str) -> Scenario {
    let mut scenario = story(name);
    scenario.config.inflight_messages_max = 1;
    scenario
}

/// `entries` again, each event as `change` leaves it; `None` drops it.
pub fn rewritten(entries: &[Entry], change: impl Fn(Event) -> Option<Event>) -> History {
    let history = History::default();
    for entry in entries {
        if let Some(event) = change(entry.event.clone()) {
            history.record_at(entry.at, event);
        }
    }
    history
}

/// A SUBSCRIBE at QoS 1, `after` seconds after the action before.
pub fn subscribe(after: f64, filter: &str) -> (Duration, Action) {
    (
        secs(after),
        Action::Subscribe(filter.into(), QoS::AtLeastOnce),
    )
}

/// `p` doing `publishes` and `s` doing `subscribes`, `s` acknowledging
/// each message 0.5 s late; both then stay connected past the check's
/// delivery window (6 s), which it needs.
pub fn publisher_and_late_acker(
    publishes: Vec<(Duration, Action)>,
    subscribes: Vec<(Duration, Action)>,
) -> Plan {
    let wait = || (secs(8.0), Action::StopReading(Duration::ZERO));
    let with_wait = |mut actions: Vec<(Duration, Action)>| {
        actions.push(wait());
        actions
    };
    let mut subscriber = client("s", with_wait(subscribes));
    subscriber.connections[0].ack_delay = secs(0.5);
    Plan {
        clients: vec![client("p", with_wait(publishes)), subscriber],
        faults: Vec::new(),
    }
}
