//! A subscription's retained copy at QoS 1, queued while the client's
//! inflight window is full, goes out when the window opens, even if the
//! client has unsubscribed in between: the broker forgets what it still
//! owed, not what it had queued, as [MQTT-3.10.4-3] allows. The copy is
//! queued when a live message on its topic comes while the walk still owes
//! it (`broker/backlog.rs`, "Order"). The model ended the unsubscribed
//! subscription's window for copies at its UNSUBACK, and blamed the copy on
//! another subscription matching the topic (churn seed 9980173).

use tern::codec::QoS;
use tern_sim::check;
use tern_sim::history::Event;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, Plan, Scenario};

use crate::plans::{
    first_at, publish, publisher_and_late_acker, rewritten, secs, subscribe, window_of_one,
};

/// `s` subscribes to `+/+/y` before `p` retains `t/b/y`, so it is owed
/// none. `p` then sends `s` a message on `a` that `s` holds unacknowledged
/// for 0.5 s, a window of one full; meanwhile `s` subscribes to `#`, `p`
/// publishes live on `t/b/y` at QoS 0, and `s` unsubscribes `#`.
fn plan() -> Plan {
    publisher_and_late_acker(
        vec![
            (secs(0.2), publish("t/b/y", QoS::AtLeastOnce, true)),
            (secs(1.3), publish("a", QoS::AtLeastOnce, false)),
            (secs(0.2), publish("t/b/y", QoS::AtMostOnce, false)),
        ],
        vec![
            subscribe(0.1, "+/+/y"),
            subscribe(0.9, "a"),
            subscribe(0.6, "#"),
            (secs(0.2), Action::Unsubscribe("#".into())),
        ],
    )
}

fn scenario() -> Scenario {
    window_of_one("retained_after_unsuback")
}

#[test]
fn a_retained_copy_queued_before_an_unsubscribe_may_come_after_its_unsuback() {
    let mut outcome =
        run_plan(&scenario(), 1, plan(), &mut |_, _| {}).unwrap_or_else(|f| panic!("{f}"));
    let entries = outcome.history.entries();
    let copy = first_at(&entries, |e| {
        matches!(e, Event::Received { client, topic, retain: true, .. }
            if client == "s" && topic == "t/b/y")
    });
    let live = first_at(&entries, |e| {
        matches!(e, Event::Received { client, topic, retain: false, .. }
            if client == "s" && topic == "t/b/y")
    });
    let unsuback = first_at(
        &entries,
        |e| matches!(e, Event::Unsubscribed { client, filter, .. } if client == "s" && filter == "#"),
    );
    // Otherwise this shows nothing.
    assert!(
        live < unsuback && unsuback < copy,
        "live {live:?}, UNSUBACK {unsuback:?}, copy {copy:?}"
    );
    let problems = check::all(&scenario(), &outcome);
    assert!(problems.is_empty(), "{problems:#?}");

    // With another payload, the copy is wrong; at QoS 0, which no window
    // holds back, it came after the UNSUBACK for none of them.
    for (change, found) in [
        (
            (Some("p:9"), None),
            "expected retained None on t/b/y, got [\"p:9\"]",
        ),
        (
            (None, Some(QoS::AtMostOnce)),
            "expected retained None on t/b/y, got [\"p:1\"]",
        ),
    ] {
        let history = rewritten(&entries, |mut event| {
            if let Event::Received {
                topic,
                payload,
                qos,
                retain: true,
                ..
            } = &mut event
            {
                if topic == "t/b/y" {
                    if let Some(changed) = change.0 {
                        *payload = changed.into();
                    }
                    if let Some(changed) = change.1 {
                        *qos = changed;
                    }
                }
            }
            Some(event)
        });
        outcome.history = history;
        let problems = check::all(&scenario(), &outcome);
        let blamed = |p: &String| p.contains("subscribed to +/+/y at") && p.contains(found);
        assert!(problems.iter().any(blamed), "{problems:#?}");
    }
}
