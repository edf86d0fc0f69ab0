//! A subscription's retained copy at QoS 1, queued behind a full inflight
//! window on a connection that then drops, stays with the persistent
//! session and goes out when the session is resumed, however long after
//! its SUBACK: the broker forgets no QoS 1/2 message it had queued for a
//! session. The model closed each subscription's window for copies at its
//! SUBACK plus the delivery window, and blamed the copy on the subscription
//! the resumed connection made (churn seed 10010073).

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::check;
use tern_sim::history::Event;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, ConnectionPlan, End, Plan, Scenario};

use crate::plans::{client, first_at, publish, rewritten, secs, subscribe, window_of_one};

/// `s` (a persistent session) holds a message on `a` unacknowledged, so a
/// window of one is full, when it subscribes to `#`: the owed copy of
/// `t/b/y` ("p:1") is queued when a live QoS 0 message on that topic
/// passes it, and `s` drops before the window opens. `p` then retains
/// "p:4" on `t/b/y`; `s` comes back 6.5 s later and subscribes to `+/+/y`.
fn plan() -> Plan {
    let wait = || (secs(9.0), Action::StopReading(Duration::ZERO));
    let publisher = client(
        "p",
        vec![
            (secs(0.2), publish("t/b/y", QoS::AtLeastOnce, true)),
            (secs(1.1), publish("a", QoS::AtLeastOnce, false)),
            (secs(0.3), publish("t/b/y", QoS::AtMostOnce, false)),
            (secs(0.9), publish("t/b/y", QoS::AtLeastOnce, true)),
            wait(),
        ],
    );
    let mut first = ConnectionPlan::plain(
        false,
        5,
        vec![
            subscribe(0.1, "a"),
            subscribe(1.4, "#"),
            (secs(0.2), Action::StopReading(Duration::ZERO)),
        ],
        End::Drop,
    );
    first.ack_delay = secs(0.5);
    let mut second = ConnectionPlan::plain(
        false,
        5,
        vec![subscribe(0.1, "+/+/y"), wait()],
        End::Disconnect,
    );
    // Past the delivery window of `#`'s SUBACK, as in the seed.
    second.gap = secs(6.5);
    second.ack_delay = secs(0.5);
    let mut subscriber = client("s", Vec::new());
    subscriber.connections = vec![first, second];
    Plan {
        clients: vec![publisher, subscriber],
        faults: Vec::new(),
    }
}

fn scenario() -> Scenario {
    window_of_one("retained_carried_over")
}

#[test]
fn a_retained_copy_queued_on_a_dropped_connection_comes_when_the_session_resumes() {
    let mut outcome =
        run_plan(&scenario(), 1, plan(), &mut |_, _| {}).unwrap_or_else(|f| panic!("{f}"));
    let entries = outcome.history.entries();
    let stale = first_at(&entries, |e| {
        matches!(e, Event::Received { client, conn: 2, topic, payload, retain: true, .. }
            if client == "s" && topic == "t/b/y" && payload == "p:1")
    });
    let resubscribed = first_at(
        &entries,
        |e| matches!(e, Event::SubscribeSent { client, filter, .. } if client == "s" && filter == "+/+/y"),
    );
    // Otherwise this shows nothing.
    assert!(
        resubscribed < stale,
        "SUBSCRIBE +/+/y {resubscribed:?}, the queued copy {stale:?}"
    );
    let problems = check::all(&scenario(), &outcome);
    assert!(problems.is_empty(), "{problems:#?}");

    // With a payload never retained, or at QoS 0 (which no window holds
    // back), the copy is blamed on the resumed connection's subscription.
    for (payload, qos) in [("p:9", QoS::AtLeastOnce), ("p:1", QoS::AtMostOnce)] {
        outcome.history = rewritten(&entries, |mut event| {
            if let Event::Received {
                client,
                conn: 2,
                topic,
                payload: got,
                qos: got_qos,
                retain: true,
                ..
            } = &mut event
            {
                if client == "s" && topic == "t/b/y" && got == "p:1" {
                    *got = payload.into();
                    *got_qos = qos;
                }
            }
            Some(event)
        });
        let problems = check::all(&scenario(), &outcome);
        let blamed = |p: &String| p.contains("subscribed to +/+/y at") && p.contains(payload);
        assert!(
            problems.iter().any(blamed),
            "{payload} {qos:?}: {problems:#?}"
        );
    }
}
