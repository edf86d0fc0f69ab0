//! A rumqttc client, its event loop driven by a background task, with
//! bounded waits for what the broker sends it. rumqttc is a client we did not
//! write, so a round trip through it checks our bytes against someone else's
//! reading of the specification.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ConnAck, Event, Incoming, MqttOptions, Publish, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::WAIT;

pub struct Client {
    pub mqtt: AsyncClient,
    events: mpsc::UnboundedReceiver<Result<Incoming, String>>,
    /// Packets that arrived while the test waited for another kind, in
    /// arrival order.
    stash: VecDeque<Incoming>,
    driver: JoinHandle<()>,
}

/// Options for a clean session, with a keepalive no test reaches.
pub fn options(addr: SocketAddr, client_id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(60));
    options
}

impl Client {
    /// Connects with a clean session; panics unless the broker accepts.
    pub async fn connect(addr: SocketAddr, client_id: &str) -> Client {
        Client::connect_with(options(addr, client_id)).await.0
    }

    pub async fn connect_with(options: MqttOptions) -> (Client, ConnAck) {
        let (mqtt, eventloop) = AsyncClient::new(options, 100);
        let (events_tx, events) = mpsc::unbounded_channel();
        let driver = tokio::spawn(drive(eventloop, events_tx));
        let mut client = Client {
            mqtt,
            events,
            stash: VecDeque::new(),
            driver,
        };
        let connack = client
            .expect("CONNACK", |p| match p {
                Incoming::ConnAck(c) => Some(c.clone()),
                _ => None,
            })
            .await;
        (client, connack)
    }

    /// The first packet `pick` accepts, from the stash or the network; the
    /// others are kept for later waits.
    pub async fn expect<T>(&mut self, what: &str, pick: impl Fn(&Incoming) -> Option<T>) -> T {
        if let Some(i) = self.stash.iter().position(|p| pick(p).is_some()) {
            let packet = self.stash.remove(i).expect("position is in range");
            return pick(&packet).expect("picked just above");
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let Ok(event) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                panic!(
                    "timed out waiting for {what}; received meanwhile: {:?}",
                    self.stash
                );
            };
            let packet = match event {
                Some(Ok(packet)) => packet,
                Some(Err(error)) => panic!("connection failed waiting for {what}: {error}"),
                None => panic!("connection ended waiting for {what}"),
            };
            if let Some(found) = pick(&packet) {
                return found;
            }
            if !matches!(packet, Incoming::PingResp) {
                self.stash.push_back(packet);
            }
        }
    }

    /// The next PUBLISH, in the order the broker sent them.
    pub async fn recv(&mut self) -> Publish {
        self.expect("PUBLISH", |p| match p {
            Incoming::Publish(publish) => Some(publish.clone()),
            _ => None,
        })
        .await
    }

    /// Subscribes to one filter; returns what the SUBACK granted.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubscribeReasonCode {
        self.mqtt
            .subscribe(filter, qos)
            .await
            .expect("rumqttc takes the request");
        let codes = self
            .expect("SUBACK", |p| match p {
                Incoming::SubAck(suback) => Some(suback.return_codes.clone()),
                _ => None,
            })
            .await;
        assert_eq!(codes.len(), 1, "one code per filter");
        codes[0]
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        self.mqtt
            .unsubscribe(filter)
            .await
            .expect("rumqttc takes the request");
        self.expect("UNSUBACK", |p| {
            matches!(p, Incoming::UnsubAck(_)).then_some(())
        })
        .await;
    }

    /// Publishes and, for QoS 1 and 2, waits until the broker has
    /// acknowledged it, that is, routed it.
    pub async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &str) {
        let payload = Bytes::copy_from_slice(payload.as_bytes());
        self.mqtt
            .publish_bytes(topic, qos, retain, payload)
            .await
            .expect("rumqttc takes the request");
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.expect("PUBACK", |p| matches!(p, Incoming::PubAck(_)).then_some(()))
                    .await
            }
            QoS::ExactlyOnce => {
                self.expect("PUBCOMP", |p| {
                    matches!(p, Incoming::PubComp(_)).then_some(())
                })
                .await
            }
        }
    }

    /// Sends DISCONNECT and waits for the broker to close the connection.
    pub async fn disconnect(mut self) {
        self.mqtt
            .disconnect()
            .await
            .expect("rumqttc takes the request");
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Err(_) => panic!("the broker did not close after DISCONNECT"),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return,
            }
        }
    }
}

impl Drop for Client {
    /// Ends the event loop, which closes the socket without DISCONNECT.
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Runs the event loop until the connection fails, forwarding what arrives.
/// It does not reconnect: each test decides when a client comes back.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    events: mpsc::UnboundedSender<Result<Incoming, String>>,
) {
    loop {
        let forwarded = match eventloop.poll().await {
            Ok(Event::Incoming(packet)) => events.send(Ok(packet)),
            Ok(Event::Outgoing(_)) => Ok(()),
            Err(error) => {
                let _ = events.send(Err(error.to_string()));
                return;
            }
        };
        if forwarded.is_err() {
            return;
        }
    }
}
