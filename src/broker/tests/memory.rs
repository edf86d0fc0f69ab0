//! Router transcripts with memory over `memory_max_bytes`, which the
//! runtime measures and the broker is told of (`set_memory_full`).

use super::*;

#[test]
fn memory_full_refuses_new_messages_and_sessions_but_not_a_resume() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", true);
    connect(&mut broker, 2, "pub", true);
    connect(&mut broker, 3, "away", false);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    broker.connection_lost(ConnId(3), true);
    let routed = publish(&mut broker, 2, message("t", QoS::ExactlyOnce, Some(5), "x"));
    assert_eq!(deliveries(&routed).len(), 1);

    broker.set_memory_full(true);
    // 3.1.1 cannot refuse: nothing, no ack, so the client keeps them.
    assert_eq!(
        publish(&mut broker, 2, message("t", QoS::AtMostOnce, None, "0")),
        vec![]
    );
    assert_eq!(
        publish(&mut broker, 2, message("t", QoS::AtLeastOnce, Some(6), "1")),
        vec![]
    );
    // A QoS 2 resend was routed before: it is answered as before.
    let resend = Publish {
        dup: true,
        ..message("t", QoS::ExactlyOnce, Some(5), "x")
    };
    assert_eq!(
        publish(&mut broker, 2, resend),
        vec![Effect::Send(ConnId(2), Packet::PubRec(Ack::success(id(5))))]
    );
    assert_eq!(broker.stats().dropped.memory_full, 2);

    assert_eq!(
        connack_code(&connect(&mut broker, 4, "new", true)),
        ConnectCode::ServerUnavailable
    );
    assert_eq!(
        connack_code(&connect(&mut broker, 5, "away", false)),
        ConnectCode::Accepted
    );
    assert_eq!(broker.stats().connects_refused_memory, 1);

    broker.set_memory_full(false);
    let after = publish(&mut broker, 2, message("t", QoS::AtLeastOnce, Some(7), "2"));
    assert_eq!(deliveries(&after).len(), 1);
}
