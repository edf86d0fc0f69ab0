//! A subscription's retained copy at QoS 1 waits for room in the client's
//! inflight window; the SUBACK of a later SUBSCRIBE does not. So the copy
//! may come after a later SUBACK, and it is still this subscription's when
//! the later filter does not match its topic. The model closed the window
//! for retained copies at any later SUBACK, and wanted the copy of `t/b/y`
//! for `+/+/y` before the SUBACK of `r/1` (slow_subscriber seed 9700011: a
//! resumed session's queue had filled the window).

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::check;
use tern_sim::history::Event;
use tern_sim::run::run_plan;
use tern_sim::workload::{Plan, Scenario};

use crate::plans::{publish, publisher_and_late_acker, rewritten, secs, subscribe, window_of_one};

/// `p` retains `t/b/y`, then sends `s` a message on `a` that `s` holds
/// unacknowledged for 0.5 s, a window of one full; meanwhile `s`
/// subscribes to `+/+/y` and then to `r/1`.
fn plan() -> Plan {
    publisher_and_late_acker(
        vec![
            (secs(0.2), publish("t/b/y", QoS::AtLeastOnce, true)),
            (secs(1.3), publish("a", QoS::AtLeastOnce, false)),
        ],
        vec![
            subscribe(1.0, "a"),
            subscribe(0.6, "+/+/y"),
            subscribe(0.04, "r/1"),
        ],
    )
}

fn scenario() -> Scenario {
    window_of_one("retained_held_back")
}

#[test]
fn a_retained_copy_held_by_the_window_comes_after_a_later_suback() {
    let mut outcome =
        run_plan(&scenario(), 1, plan(), &mut |_, _| {}).unwrap_or_else(|f| panic!("{f}"));
    let entries = outcome.history.entries();
    let at = |found: &dyn Fn(&Event) -> bool| {
        let found: Vec<Duration> = entries
            .iter()
            .filter(|e| found(&e.event))
            .map(|e| e.at)
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        found[0]
    };
    let copy = at(&|e| {
        matches!(e, Event::Received { client, topic, retain: true, .. }
            if client == "s" && topic == "t/b/y")
    });
    let later_suback = at(
        &|e| matches!(e, Event::Subscribed { client, filter, .. } if client == "s" && filter == "r/1"),
    );
    // Otherwise this shows nothing.
    assert!(
        copy > later_suback,
        "copy {copy:?}, r/1's SUBACK {later_suback:?}"
    );

    // Without the copy, the check finds it missing; with another payload,
    // wrong.
    for (payload, found) in [
        (None, "expected retained Some(\"p:1\") on t/b/y, got []"),
        (
            Some("p:2"),
            "expected retained Some(\"p:1\") on t/b/y, got [\"p:2\"]",
        ),
    ] {
        let history = rewritten(&entries, |mut event| {
            if let Event::Received {
                topic, payload: p, ..
            } = &mut event
            {
                if topic == "t/b/y" {
                    *p = payload?.into();
                }
            }
            Some(event)
        });
        outcome.history = history;
        let problems = check::all(&scenario(), &outcome);
        assert!(problems.iter().any(|p| p.contains(found)), "{problems:#?}");
    }
}
