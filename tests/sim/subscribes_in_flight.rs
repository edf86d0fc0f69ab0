//! Two SUBSCRIBEs to one filter in flight at once, at QoS 1 then 0, after
//! a retained message on a topic it matches: each gets its own retained
//! copy at its own grant. The model matched a SUBACK to the latest
//! SUBSCRIBE to its filter still unanswered, so the first SUBACK was taken
//! as the second's and each subscription got the other's grant; the first
//! one's copy, at QoS 1, was then above "its" grant of 0 and was not
//! counted as its (slow_subscriber seed 180). SUBACKs are matched by packet
//! id now.

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, Plan};

use crate::plans::{client, secs, story, subscribes_before_first_suback};

fn plan() -> Plan {
    let retained = Action::Publish {
        topic: "t/a".into(),
        qos: QoS::AtLeastOnce,
        retain: true,
        empty: false,
        expiry: None,
        heavy: None,
    };
    let subscribe = |after, qos| (secs(after), Action::Subscribe("t/+".into(), qos));
    let mut subscriber = client(
        "s",
        vec![
            subscribe(1.0, QoS::AtLeastOnce),
            subscribe(0.0, QoS::AtMostOnce),
            (secs(10.0), Action::StopReading(Duration::ZERO)),
        ],
    );
    subscriber.v5 = true;
    Plan {
        clients: vec![
            client(
                "p",
                vec![
                    (secs(0.2), retained),
                    (secs(1.0), Action::StopReading(Duration::ZERO)),
                ],
            ),
            subscriber,
        ],
        faults: Vec::new(),
    }
}

#[test]
fn each_subscribe_gets_its_retained_copy_at_its_grant() {
    let run = run_plan(&story("subscribes_in_flight"), 1, plan(), &mut |_, _| {})
        .map_err(|f| f.to_string());
    let entries = run.unwrap().history.entries();
    // Both went out before the first SUBACK came, or this shows nothing.
    assert_eq!(subscribes_before_first_suback(&entries), 2);
}
