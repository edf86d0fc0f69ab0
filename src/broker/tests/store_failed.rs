//! Router transcripts after the data store failed a commit, which the
//! runtime tells the broker of (`set_store_failed`): nothing that needs a
//! durable promise is taken on again.

use super::*;
use crate::codec::Unsubscribe;

#[test]
fn after_a_store_failure_qos_1_and_2_and_durable_sessions_are_refused() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "sub", false);
    connect(&mut broker, 2, "pub", true);
    subscribe(&mut broker, 1, "t", QoS::AtLeastOnce);
    broker.set_store_failed();

    // QoS 0 promises nothing to keep: it still flows.
    let routed = publish(&mut broker, 2, message("t", QoS::AtMostOnce, None, "0"));
    assert_eq!(deliveries(&routed).len(), 1);
    // 3.1.1 cannot refuse a message: the connection ends unacknowledged,
    // so the client keeps it.
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let refused = broker.publish(ConnId(2), message("t", qos, Some(6), "1"));
        assert_eq!(refused, Err(BrokerError::StoreFailed), "{qos:?}");
        assert_eq!(drain_effects(&mut broker), vec![], "no ack, no delivery");
    }
    assert_eq!(broker.stats().dropped.store_failed, 2);

    // A session the store would keep, or one it keeps, is refused; a clean
    // one that touches none is let in.
    broker.connection_lost(ConnId(1), true);
    assert_eq!(
        connack_code(&connect(&mut broker, 3, "sub", false)),
        ConnectCode::ServerUnavailable,
        "resuming a durable session"
    );
    assert_eq!(
        connack_code(&connect(&mut broker, 4, "sub", true)),
        ConnectCode::ServerUnavailable,
        "ending a durable session with a clean start"
    );
    assert_eq!(
        connack_code(&connect(&mut broker, 5, "new", false)),
        ConnectCode::ServerUnavailable,
        "a new durable session"
    );
    assert_eq!(
        connack_code(&connect(&mut broker, 6, "other", true)),
        ConnectCode::Accepted
    );
    let stats = broker.stats();
    assert_eq!(
        (stats.store_failed, stats.connects_refused_store),
        (true, 3)
    );
}

#[test]
fn after_a_store_failure_a_5_0_client_is_told_0x80_for_each_message() {
    let mut broker = Broker::new(config());
    mqtt5::connect5(&mut broker, 1, "pub", 0, vec![]);
    broker.set_store_failed();
    let acks = publish(&mut broker, 1, message("t", QoS::AtLeastOnce, Some(1), "1"));
    assert_eq!(
        acks,
        vec![Effect::Send(
            ConnId(1),
            Packet::PubAck(Ack::with_reason(id(1), ReasonCode::UNSPECIFIED_ERROR))
        )]
    );
    let recs = publish(&mut broker, 1, message("t", QoS::ExactlyOnce, Some(2), "2"));
    assert_eq!(
        recs,
        vec![Effect::Send(
            ConnId(1),
            Packet::PubRec(Ack::with_reason(id(2), ReasonCode::UNSPECIFIED_ERROR))
        )]
    );
}

fn unsubscribe(broker: &mut Broker, conn: u64, filter: &str) -> Result<Vec<Effect>, BrokerError> {
    let unsubscribe = Unsubscribe {
        packet_id: id(2),
        filters: vec![TopicFilter::new(filter).unwrap()],
        properties: Default::default(),
    };
    broker.unsubscribe(ConnId(conn), unsubscribe)?;
    Ok(drain_effects(broker))
}

fn suback_codes(effects: &[Effect]) -> Vec<ReasonCode> {
    match effects {
        [Effect::Send(_, Packet::SubAck(suback)), ..] => suback.codes.clone(),
        other => panic!("no SUBACK first: {other:?}"),
    }
}

/// A durable session that was online when the store failed keeps its
/// connection, but what it subscribes or unsubscribes cannot be kept: it
/// is refused, not acknowledged as if it were. A clean session's changes
/// are not the store's to keep, and go on.
#[test]
fn after_a_store_failure_a_durable_session_cannot_change_its_subscriptions() {
    let mut broker = Broker::new(config());
    connect(&mut broker, 1, "durable3", false);
    mqtt5::connect5(&mut broker, 2, "durable5", 60, vec![]);
    connect(&mut broker, 3, "clean", true);
    for conn in [1, 2] {
        subscribe(&mut broker, conn, "kept", QoS::AtLeastOnce);
    }
    broker.set_store_failed();

    for conn in [1, 2] {
        let codes = suback_codes(&subscribe(&mut broker, conn, "new", QoS::AtMostOnce));
        assert_eq!(codes, vec![ReasonCode::UNSPECIFIED_ERROR], "conn {conn}");
    }
    let codes = suback_codes(&subscribe(&mut broker, 3, "new", QoS::AtMostOnce));
    assert_eq!(codes, vec![ReasonCode::SUCCESS]);

    assert_eq!(
        unsubscribe(&mut broker, 1, "kept"),
        Err(BrokerError::StoreFailed),
        "3.1.1's UNSUBACK has no code to refuse with"
    );
    let unsuback = unsubscribe(&mut broker, 2, "kept").unwrap();
    assert!(
        matches!(&unsuback[..], [Effect::Send(_, Packet::UnsubAck(u))] if u.codes == [ReasonCode::UNSPECIFIED_ERROR]),
        "{unsuback:?}"
    );
    // Both still hold the subscription they could not drop.
    let routed = publish(&mut broker, 3, message("kept", QoS::AtMostOnce, None, "x"));
    assert_eq!(deliveries(&routed).len(), 2);
}
