//! A resumed session's queued message goes out with the CONNACK; when the
//! link holds both back, the message may arrive after it expired, though
//! the broker sent it in time. The model counted a link as held only from
//! the connection's CONNACK, and called that a delivery after expiry
//! (partition_heal seed 9950152: c4's link held between its CONNECT at
//! 14.90 s and its CONNACK at 19.62 s, a message of expiry 2 s in it).

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::history::Event;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, ClientPlan, ConnectionPlan, End, Plan};

use crate::plans::{client, first_at, held_alone, secs, story};

/// `s` subscribes to `t/a` and drops; `p` (5.0) publishes there with an
/// expiry of 1 s while `s` is away; `s` comes back 1 s after it dropped,
/// and its link is held from `hold` for 4 s.
fn plan(hold: f64) -> Plan {
    let wait = || (secs(8.0), Action::StopReading(Duration::ZERO));
    let away = ConnectionPlan::plain(
        false,
        5,
        vec![
            (secs(0.2), Action::Subscribe("t/a".into(), QoS::AtLeastOnce)),
            (secs(0.8), Action::StopReading(Duration::ZERO)),
        ],
        End::Drop,
    );
    let mut back = ConnectionPlan::plain(false, 5, vec![wait()], End::Disconnect);
    back.gap = secs(1.0);
    let subscriber = ClientPlan::plain("s".into(), "s".into(), Duration::ZERO, vec![away, back]);
    let mut publisher = client(
        "p",
        vec![
            (
                secs(1.5),
                Action::Publish {
                    topic: "t/a".into(),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    empty: false,
                    expiry: Some(1),
                    heavy: None,
                },
            ),
            wait(),
        ],
    );
    publisher.v5 = true;
    Plan {
        clients: vec![subscriber, publisher],
        faults: held_alone("s", hold, 4.0, 19.0),
    }
}

#[test]
fn a_message_sent_in_time_with_a_held_connack_may_come_after_its_expiry() {
    // At 2.07 s the CONNECT (sent at 2.04 s) is through and the CONNACK is
    // not: the network's latency decides that, so it is asserted.
    let outcome = run_plan(&story("held_before_connack"), 1, plan(2.07), &mut |_, _| {})
        .unwrap_or_else(|f| panic!("{f}"));
    let entries = outcome.history.entries();
    let at = |found: &dyn Fn(&Event) -> bool| first_at(&entries, found);
    let sent = at(&|e| matches!(e, Event::ConnectSent { client, conn: 2, .. } if client == "s"));
    let held = at(&|e| matches!(e, Event::Held { client } if client == "s"));
    let connack = at(&|e| matches!(e, Event::Connected { client, conn: 2, .. } if client == "s"));
    let acked = at(&|e| matches!(e, Event::Acked { client, .. } if client == "p"));
    let got = at(&|e| {
        matches!(e, Event::Received { client, conn: 2, payload, .. }
            if client == "s" && payload == "p:1")
    });
    assert!(
        sent < held && held < connack && got >= connack && got > acked + secs(1.0),
        "CONNECT {sent:?}, held {held:?}, CONNACK {connack:?}, acked {acked:?}, got {got:?}"
    );
}
