//! A 3.1.1 client sends SUBSCRIBE `#` and SUBSCRIBE `r/+` together, after
//! a retained message on `r/1`: each subscription gets its own retained
//! copy, and the copies carry nothing to say whose is whose. The model took
//! only copies that came before `r/+` went out as `#`'s, so both were
//! `r/+`'s and `#`'s was missing (slow_subscriber seed 9400282: the two
//! SUBSCRIBEs 3 ms apart, both SUBACKs and both copies in one 10 ms step).
//! Now such copies count for each subscription they may be for, as long as
//! there are enough of them.

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::check;
use tern_sim::history::{Event, History};
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, Plan};

use crate::plans::{client, secs, story, subscribes_before_first_suback};

/// `#` granted `first`, `r/+` granted `second`; the message is at QoS 1.
fn plan(first: QoS, second: QoS) -> Plan {
    let retained = Action::Publish {
        topic: "r/1".into(),
        qos: QoS::AtLeastOnce,
        retain: true,
        empty: false,
        expiry: None,
        heavy: None,
    };
    let subscribe = |after, filter: &str, qos| (secs(after), Action::Subscribe(filter.into(), qos));
    // Connected past the check's delivery window (6 s), which it needs.
    let wait = || (secs(8.0), Action::StopReading(Duration::ZERO));
    Plan {
        clients: vec![
            client("p", vec![(secs(0.2), retained), wait()]),
            client(
                "s",
                vec![
                    subscribe(1.0, "#", first),
                    subscribe(0.003, "r/+", second),
                    wait(),
                ],
            ),
        ],
        faults: Vec::new(),
    }
}

fn is_retained_copy(event: &Event) -> bool {
    matches!(event, Event::Received { client, topic, retain: true, .. }
        if client == "s" && topic == "r/1")
}

#[test]
fn each_of_two_overlapping_subscribes_in_flight_gets_a_retained_copy() {
    each_gets_its_copy(QoS::AtMostOnce, QoS::AtMostOnce);
}

/// The later one's copy is above the earlier one's grant: it still counts
/// as a copy that may be the later one's.
#[test]
fn the_same_with_the_later_granted_more() {
    each_gets_its_copy(QoS::AtMostOnce, QoS::AtLeastOnce);
}

fn each_gets_its_copy(first: QoS, second: QoS) {
    let mut outcome = run_plan(
        &story("overlapping_retained"),
        1,
        plan(first, second),
        &mut |_, _| {},
    )
    .unwrap_or_else(|f| panic!("{f}"));
    let entries = outcome.history.entries();
    // Both went out before the first SUBACK came, or this shows nothing.
    assert_eq!(subscribes_before_first_suback(&entries), 2);
    // `r/+` strictly after `#`: sent at one instant, neither would count
    // as the later one, and the copies would not be in doubt.
    let sent: Vec<_> = entries
        .iter()
        .filter(|e| matches!(e.event, Event::SubscribeSent { .. }))
        .map(|e| e.at)
        .collect();
    assert!(sent[0] < sent[1], "{sent:?}");
    let copies: Vec<usize> = (0..entries.len())
        .filter(|&i| is_retained_copy(&entries[i].event))
        .collect();
    assert_eq!(copies.len(), 2, "one copy for each subscription");

    // Either copy taken out of the history, the check finds one missing:
    // two subscriptions cannot share one copy.
    for &dropped in &copies {
        let history = History::default();
        for (i, entry) in entries.iter().enumerate() {
            if i != dropped {
                history.record_at(entry.at, entry.event.clone());
            }
        }
        outcome.history = history;
        let problems = check::all(&story("overlapping_retained"), &outcome);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("expected retained Some(\"p:1\") on r/1, got []")),
            "{problems:#?}"
        );
    }
}
