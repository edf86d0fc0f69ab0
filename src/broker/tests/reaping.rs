//! An ended session's many filters leave the index in slices, and nothing
//! is routed to them meanwhile.

use super::*;

#[test]
fn a_big_sessions_filters_leave_in_slices_and_route_nothing_meanwhile() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "deep", true);
    connect(&mut broker, 2, "pub", true);
    // 100 filters of 200 levels: 20,000 levels, over one slice.
    let deep = |i: usize| format!("{i}{}", "/l".repeat(199));
    for i in 0..100 {
        subscribe(&mut broker, 1, &deep(i), QoS::AtMostOnce);
    }
    broker.connection_lost(ConnId(1), true);
    drain_effects(&mut broker);
    assert_eq!(broker.stats().subscriptions, 0);
    assert_eq!(broker.stats().subscriptions_ending, 100);
    let routed = publish(
        &mut broker,
        2,
        message(&deep(7), QoS::AtMostOnce, None, "x"),
    );
    assert!(deliveries(&routed).is_empty(), "{routed:?}");
    assert!(broker.reap(), "one slice is not all of it");
    assert!(!broker.reap());
    assert_eq!(broker.stats().subscriptions_ending, 0);
    assert_eq!(broker.index.len(), 0);
    broker.check().unwrap();
}
