//! The TLS port (`sim/src/tls.rs`): it answers only TLS, and TLS works.
//! A CONNACK to plain MQTT on it would mean that the broker read MQTT from
//! the bare socket, however well the TLS clients did; and TLS clients
//! that never get in would go unnoticed by the other checks, which owe
//! nothing to a client that never connected.

use super::model::Model;
use crate::workload::{Scenario, Wire};

pub fn all(scenario: &Scenario, model: &Model) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, wire) in &model.wires {
        if *wire != Wire::PlainToTlsPort {
            continue;
        }
        let (client, conn) = key;
        if let Some(conn_) = model.conns.get(key) {
            problems.push(format!(
                "{client} sent plain MQTT to the TLS port and was let in (connection {conn}, \
                 CONNACK at {:?})",
                conn_.start
            ));
        } else if let Some((at, code)) = model.refused.get(key) {
            problems.push(format!(
                "{client} sent plain MQTT to the TLS port and got a CONNACK ({code}) at {at:?}"
            ));
        }
    }
    // A restart or a held link can cut a handshake short; none working
    // at all is the broker's fault.
    let tls_in = model
        .wires
        .iter()
        .filter(|(key, wire)| **wire == Wire::Tls && model.conns.contains_key(*key))
        .count();
    let failed = &model.handshakes_failed;
    if scenario.tls.is_some() && tls_in == 0 {
        let first = failed.first().map_or_else(
            || "no client tried".to_owned(),
            |(at, client, error)| format!("first: {client} at {at:?}: {error}"),
        );
        problems.push(format!(
            "no connection over TLS got in; {} handshakes failed ({first})",
            failed.len()
        ));
    }
    problems
}
