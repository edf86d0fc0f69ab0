//! A will may reach subscribers before its client has its CONNACK: the
//! broker takes the CONNECT, will and all, and may end the connection (here
//! by keepalive) while its link holds the CONNACK back. The model counted
//! the will as routable only from the CONNACK, so a subscriber gone by then
//! had it "with no subscription covering it" (partition_heal seed 9800317:
//! c6's CONNACK held from 7.26 s to 11.33 s, its will at c3 at 8.76 s, c3
//! gone at 9.51 s).

use std::time::Duration;

use tern::codec::QoS;
use tern_sim::history::Event;
use tern_sim::run::run_plan;
use tern_sim::workload::{Action, Plan};

use crate::plans::{client, first_at, held_alone, secs, story};

/// `w` connects at 1 s with a will on `will/b` and keepalive 1 s, and its
/// link is held from `hold` for 4 s; `s`, subscribed to `will/b`, leaves
/// at 4 s.
fn plan(hold: f64) -> Plan {
    let mut will = client("w", vec![(secs(8.0), Action::StopReading(Duration::ZERO))]);
    will.start = secs(1.0);
    will.connections[0].keep_alive = 1;
    will.connections[0].will = Some(("will/b".into(), QoS::AtMostOnce, false));
    let subscriber = client(
        "s",
        vec![
            (
                secs(0.2),
                Action::Subscribe("will/b".into(), QoS::AtMostOnce),
            ),
            (secs(3.8), Action::StopReading(Duration::ZERO)),
        ],
    );
    Plan {
        clients: vec![will, subscriber],
        faults: held_alone("w", hold, 4.0, 12.0),
    }
}

#[test]
fn a_will_sent_before_its_connack_came_is_covered() {
    // At 1.03 s the CONNECT (sent at 1.01 s) is through and the CONNACK
    // is not: the network's latency decides that, so it is asserted.
    let outcome = run_plan(&story("will_before_connack"), 1, plan(1.03), &mut |_, _| {})
        .unwrap_or_else(|f| panic!("{f}"));
    let entries = outcome.history.entries();
    let at = |found: &dyn Fn(&Event) -> bool| first_at(&entries, found);
    let connack = at(&|e| matches!(e, Event::Connected { client, .. } if client == "w"));
    let will = at(&|e| {
        matches!(e, Event::Received { client, payload, .. }
            if client == "s" && payload.starts_with("will:w"))
    });
    let left = at(&|e| matches!(e, Event::Ended { client, .. } if client == "s"));
    assert!(
        will < left && left < connack,
        "will {will:?}, s left {left:?}, w's CONNACK {connack:?}"
    );
}
