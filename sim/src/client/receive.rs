//! What a simulated client does with what the broker sends: decodes it,
//! records it in the history, checks it against its own limits, and
//! answers it. Apart from `mod.rs`, which sends and follows the plan, so
//! that each half reads at once.

use tern::codec::{self, Ack, Packet, QoS};
use tokio::time::Instant;

use super::Session;
use crate::history::Event;

impl Session<'_> {
    /// Decodes and answers what arrived; false on a malformed packet.
    pub(super) fn on_bytes(&mut self, hanging: bool) -> bool {
        loop {
            let options = self.decode_options();
            let before = self.rbuf.len();
            match codec::decode_with_aliases(&mut self.rbuf, &options, &mut self.aliases) {
                Ok(Some(packet)) => {
                    self.check_size(&packet, before - self.rbuf.len());
                    if !self.on_packet(packet, hanging) {
                        return false;
                    }
                }
                Ok(None) => return true,
                // A topic alias we did not allow, or never saw set: the
                // broker's fault, judged with the rest.
                Err(
                    error @ (codec::DecodeError::TopicAliasInvalid(_)
                    | codec::DecodeError::TopicAliasUnknown(_)),
                ) => {
                    self.history.record(Event::Violation {
                        client: self.name(),
                        conn: self.conn,
                        what: format!("a PUBLISH from the broker: {error}"),
                    });
                    return false;
                }
                Err(error) => {
                    panic!(
                        "{}: the broker sent bytes that do not decode: {error}",
                        self.plan.name
                    );
                }
            }
        }
    }

    /// Nothing larger than our Maximum Packet Size may reach us
    /// [MQTT-3.1.2-24]: the broker drops what would be.
    fn check_size(&self, packet: &Packet, size: usize) {
        let Some(max) = self.connection.packet_size_max else {
            return;
        };
        if size > max as usize {
            self.history.record(Event::Violation {
                client: self.name(),
                conn: self.conn,
                what: format!(
                    "a {} of {size} bytes, over our Maximum Packet Size of {max}",
                    packet.kind()
                ),
            });
        }
    }

    /// A PUBLISH: recorded, checked against our Receive Maximum, and its
    /// acknowledgement queued after the planned delay.
    fn on_publish(&mut self, publish: codec::Publish, hanging: bool) {
        let client = self.name();
        let conn = self.conn;
        let first = match (publish.qos, publish.packet_id) {
            (QoS::ExactlyOnce, Some(id)) => self.state.received_qos2.borrow_mut().insert(id),
            _ => true,
        };
        if let (Some(id), Some(max)) = (publish.packet_id, self.connection.receive_maximum) {
            self.unanswered.insert(id);
            if self.unanswered.len() > usize::from(max) {
                self.history.record(Event::Violation {
                    client: client.clone(),
                    conn,
                    what: format!(
                        "{} QoS 1/2 messages unanswered, over our Receive Maximum of {max}",
                        self.unanswered.len()
                    ),
                });
            }
        }
        self.history.record(Event::Received {
            client,
            conn,
            topic: publish.topic.as_str().to_owned(),
            payload: String::from_utf8_lossy(&publish.payload).into_owned(),
            qos: publish.qos,
            retain: publish.retain,
            dup: publish.dup,
            first,
            sub_ids: publish.properties.subscription_identifiers().collect(),
            expiry: publish.properties.message_expiry_interval(),
        });
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => Packet::PubAck(Ack::success(id)),
            (QoS::ExactlyOnce, Some(id)) => Packet::PubRec(Ack::success(id)),
            _ => return,
        };
        if !hanging {
            let at = Instant::now() + self.connection.ack_delay;
            self.delayed_acks.push_back((at, ack));
        }
    }

    /// Answers one packet; false when the broker said DISCONNECT (5.0).
    fn on_packet(&mut self, packet: Packet, hanging: bool) -> bool {
        let client = self.name();
        let conn = self.conn;
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, hanging),
            Packet::PubRel(ack) => {
                self.state.received_qos2.borrow_mut().remove(&ack.packet_id);
                self.send(&Packet::PubComp(Ack::success(ack.packet_id)));
            }
            Packet::PubAck(ref ack) | Packet::PubRec(ref ack) => {
                let is_rec = matches!(packet, Packet::PubRec(_));
                let mut outgoing = self.state.outgoing.borrow_mut();
                if let Some(i) = outgoing
                    .iter()
                    .position(|o| o.publish.packet_id == Some(ack.packet_id))
                {
                    if !outgoing[i].released {
                        self.history.record(Event::Acked {
                            client,
                            id: outgoing[i].id.clone(),
                        });
                    }
                    if is_rec {
                        outgoing[i].released = true;
                    } else {
                        outgoing.remove(i);
                    }
                }
                drop(outgoing);
                if is_rec {
                    self.send(&Packet::PubRel(Ack::success(ack.packet_id)));
                }
            }
            Packet::PubComp(ack) => {
                self.state
                    .outgoing
                    .borrow_mut()
                    .retain(|o| o.publish.packet_id != Some(ack.packet_id));
            }
            Packet::SubAck(suback) => {
                let filters = self
                    .subscribes
                    .remove(&suback.packet_id)
                    .unwrap_or_default();
                for (filter, code) in filters.into_iter().zip(suback.codes) {
                    let granted = QoS::from_u8(code.0);
                    self.history.record(Event::Subscribed {
                        client: client.clone(),
                        conn,
                        filter,
                        granted,
                        packet_id: suback.packet_id.get(),
                    });
                }
            }
            Packet::UnsubAck(unsuback) => {
                for filter in self
                    .unsubscribes
                    .remove(&unsuback.packet_id)
                    .unwrap_or_default()
                {
                    self.history.record(Event::Unsubscribed {
                        client: client.clone(),
                        conn,
                        filter,
                    });
                }
            }
            Packet::PingResp => {}
            Packet::Disconnect(_) if self.v5() => return false,
            other => panic!("{}: the broker sent a {}", self.plan.name, other.kind()),
        }
        true
    }
}
