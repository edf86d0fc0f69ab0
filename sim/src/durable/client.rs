//! The durable scenario's clients: persistent subscribers that come and go,
//! and persistent publishers that keep every unfinished QoS 1/2 flow and
//! finish it after any reconnect, as the protocol asks. Each records what
//! it was acknowledged and what it received, for the checks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::Rng;
use tern::codec::{
    self, Ack, Connect, DecodeOptions, Packet, PacketId, Properties, Property, ProtocolVersion,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use tern::topic::{TopicFilter, TopicName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep, timeout};
use turmoil::net::TcpStream;

use crate::client::BROKER_PORT;

/// Simulated seconds since the start.
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// One connection to the broker, read and written in turn.
struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    version: ProtocolVersion,
}

impl Conn {
    /// Connects with a persistent session; the CONNACK's session present,
    /// or `None` when the broker is not there or refuses.
    async fn open(client_id: &str, version: ProtocolVersion) -> Option<(Conn, bool)> {
        let stream = TcpStream::connect(("broker", BROKER_PORT)).await.ok()?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::new(),
            version,
        };
        let mut properties = Properties::new();
        if version == ProtocolVersion::V5 {
            properties.push(Property::SessionExpiryInterval(u32::MAX));
        }
        let connect = Connect {
            version,
            clean_session: false,
            keep_alive: 30,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties,
        };
        conn.send(&Packet::Connect(connect.into())).await.ok()?;
        match timeout(Duration::from_secs(5), conn.recv()).await {
            Ok(Some(Packet::ConnAck(ack))) if ack.code == codec::ConnectCode::Accepted => {
                Some((conn, ack.session_present))
            }
            _ => None,
        }
    }

    async fn send(&mut self, packet: &Packet) -> std::io::Result<()> {
        let mut buf = BytesMut::new();
        codec::encode(packet, self.version, &mut buf);
        self.stream.write_all(&buf).await
    }

    /// The next packet; `None` once the connection is gone.
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            let options = DecodeOptions {
                version: self.version,
                ..DecodeOptions::default()
            };
            match codec::decode(&mut self.rbuf, &options) {
                Ok(Some(packet)) => return Some(packet),
                Ok(None) => {}
                Err(_) => return None,
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

/// What a subscriber saw.
#[derive(Debug)]
pub struct Subscriber {
    pub client_id: String,
    pub qos: QoS,
    /// When its SUBACK came; messages published before are not its own.
    pub subscribed_at: Option<Duration>,
    /// When it is to unsubscribe from `u/#`, and when its UNSUBACK came:
    /// no `u/` message sent after that may reach it.
    pub unsubscribe_at: Duration,
    pub unsubscribed_at: Option<Duration>,
    /// Payloads delivered to it, with how often: a QoS 2 message whose id
    /// it holds (PUBREC sent, PUBREL not yet come) is not delivered again.
    pub delivered: BTreeMap<Bytes, u32>,
    awaiting_release: BTreeSet<PacketId>,
    /// CONNACKs without the session after it had subscribed.
    pub sessions_lost: Vec<Duration>,
}

impl Subscriber {
    pub fn new(client_id: String, qos: QoS, unsubscribe_at: Duration) -> Subscriber {
        Subscriber {
            client_id,
            qos,
            subscribed_at: None,
            unsubscribe_at,
            unsubscribed_at: None,
            delivered: BTreeMap::new(),
            awaiting_release: BTreeSet::new(),
            sessions_lost: Vec::new(),
        }
    }
}

/// Comes and goes until `settle`, then stays and reads until the end.
pub async fn subscribe(me: Rc<RefCell<Subscriber>>, mut rng: StdRng, settle: Duration) {
    let (client_id, qos) = {
        let me = me.borrow();
        (me.client_id.clone(), me.qos)
    };
    let version = match rng.random_bool(0.5) {
        true => ProtocolVersion::V5,
        false => ProtocolVersion::V311,
    };
    loop {
        let Some((mut conn, present)) = Conn::open(&client_id, version).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        if me.borrow().subscribed_at.is_some() && !present {
            me.borrow_mut().sessions_lost.push(now());
        }
        if me.borrow().subscribed_at.is_none() {
            let subscribe = Subscribe {
                packet_id: id(1),
                filters: ["d/#", "u/#"]
                    .map(|f| {
                        (
                            TopicFilter::new(f).expect("valid"),
                            SubscriptionOptions::qos(qos),
                        )
                    })
                    .into(),
                properties: Properties::new(),
            };
            if conn.send(&Packet::Subscribe(subscribe)).await.is_err() {
                continue;
            }
        }
        let unsubscribe_due = {
            let me = me.borrow();
            me.subscribed_at.is_some() && me.unsubscribed_at.is_none() && now() >= me.unsubscribe_at
        };
        if unsubscribe_due {
            let unsubscribe = tern::codec::Unsubscribe {
                packet_id: id(2),
                filters: vec![TopicFilter::new("u/#").expect("valid")],
                properties: Properties::new(),
            };
            if conn.send(&Packet::Unsubscribe(unsubscribe)).await.is_err() {
                continue;
            }
        }
        let online = if now() >= settle {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(rng.random_range(300..3000))
        };
        let _ = timeout(online, read(&me, &mut conn)).await;
        if rng.random_bool(0.5) {
            let _ = conn
                .send(&Packet::Disconnect(codec::Disconnect::new(
                    codec::ReasonCode::SUCCESS,
                )))
                .await;
        }
        drop(conn);
        sleep(Duration::from_millis(rng.random_range(0..2000))).await;
    }
}

async fn read(me: &RefCell<Subscriber>, conn: &mut Conn) {
    while let Some(packet) = conn.recv().await {
        let reply = match packet {
            // Refused (0x80, the store failed): not subscribed, and it
            // asks again when it next connects.
            Packet::SubAck(ack) if ack.codes.iter().all(|code| !code.is_error()) => {
                me.borrow_mut().subscribed_at.get_or_insert_with(now);
                None
            }
            Packet::UnsubAck(ack) if ack.codes.iter().all(|code| !code.is_error()) => {
                me.borrow_mut().unsubscribed_at.get_or_insert_with(now);
                None
            }
            Packet::Publish(publish) => {
                let mut me = me.borrow_mut();
                let fresh = match (publish.qos, publish.packet_id) {
                    (QoS::ExactlyOnce, Some(pid)) => me.awaiting_release.insert(pid),
                    _ => true,
                };
                if fresh {
                    *me.delivered.entry(publish.payload.clone()).or_default() += 1;
                }
                match (publish.qos, publish.packet_id) {
                    (QoS::AtLeastOnce, Some(pid)) => Some(Packet::PubAck(Ack::success(pid))),
                    (QoS::ExactlyOnce, Some(pid)) => Some(Packet::PubRec(Ack::success(pid))),
                    _ => None,
                }
            }
            Packet::PubRel(ack) => {
                me.borrow_mut().awaiting_release.remove(&ack.packet_id);
                Some(Packet::PubComp(Ack::success(ack.packet_id)))
            }
            _ => None,
        };
        if let Some(reply) = reply {
            if conn.send(&reply).await.is_err() {
                return;
            }
        }
    }
}

/// One message a publisher sent, as the checks need it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// When it was first sent, and when the broker acknowledged it (PUBACK
    /// for QoS 1, PUBREC for QoS 2: where the broker takes it on).
    pub sent_at: Duration,
    pub acked_at: Option<Duration>,
}

/// What a publisher sent and was told.
#[derive(Debug, Default)]
pub struct Publisher {
    pub client_id: String,
    /// Everything it sent, in order; a message's place is its number.
    pub sent: Vec<Sent>,
    /// Flows not finished: by packet id, the message's number and whether
    /// PUBREC came (PUBREL is then what to send again).
    pub(super) open: BTreeMap<u16, (usize, bool)>,
    pub(super) next_id: u16,
}

/// Messages in flight at once.
const WINDOW: usize = 4;

/// Publishes until `stop`, finishing every open flow across reconnects.
pub async fn publish(me: Rc<RefCell<Publisher>>, mut rng: StdRng, start: Duration, stop: Duration) {
    sleep(start.saturating_sub(now())).await;
    let client_id = me.borrow().client_id.clone();
    let version = match rng.random_bool(0.5) {
        true => ProtocolVersion::V5,
        false => ProtocolVersion::V311,
    };
    loop {
        let Some((mut conn, _)) = Conn::open(&client_id, version).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        // The open flows again, in order: PUBLISH with DUP, or PUBREL.
        let resends: Vec<Packet> = {
            let me = me.borrow();
            me.open
                .iter()
                .map(|(&pid, &(n, released))| match released {
                    true => Packet::PubRel(Ack::success(id(pid))),
                    false => Packet::Publish(packet(&me.sent[n], pid, true)),
                })
                .collect()
        };
        let mut alive = true;
        for packet in resends {
            alive = alive && conn.send(&packet).await.is_ok();
        }
        while alive {
            let room = me.borrow().open.len() < WINDOW;
            if room && now() < stop {
                let (packet, _) = next_message(&me, &mut rng);
                alive = conn.send(&packet).await.is_ok();
                // Now and then it drops the connection with replies unread
                // and stays away: a QoS 2 flow it resends after the broker
                // has restarted must not be routed twice.
                if rng.random_bool(0.01) {
                    drop(conn);
                    sleep(Duration::from_millis(rng.random_range(0..3000))).await;
                    break;
                }
                continue;
            }
            match timeout(Duration::from_millis(50), conn.recv()).await {
                Ok(Some(packet)) => alive = handle(&me, &mut conn, packet).await,
                Ok(None) => alive = false,
                Err(_) => {
                    sleep(Duration::from_millis(rng.random_range(5..40))).await;
                }
            }
        }
        sleep(Duration::from_millis(100)).await;
    }
}

fn packet(sent: &Sent, pid: u16, dup: bool) -> Publish {
    Publish {
        dup,
        qos: sent.qos,
        retain: sent.retain,
        topic: TopicName::new(&sent.topic).expect("valid"),
        packet_id: Some(id(pid)),
        payload: sent.payload.clone(),
        properties: Properties::new(),
    }
}

/// A new message: mostly to `d/...`, QoS 1 or 2; now and then a retained
/// one, or the clearing of one, on this publisher's own `r/...` topics.
fn next_message(me: &RefCell<Publisher>, rng: &mut StdRng) -> (Packet, usize) {
    let mut me = me.borrow_mut();
    let n = me.sent.len();
    let name = me.client_id.clone();
    let retained = rng.random_bool(0.15);
    let (topic, payload, qos) = if retained {
        let topic = format!("r/{name}/{}", rng.random_range(0..3));
        let payload = match rng.random_bool(0.25) {
            true => Bytes::new(),
            false => Bytes::from(format!("{name}-{n}")),
        };
        (topic, payload, QoS::AtLeastOnce)
    } else {
        let qos = match rng.random_bool(0.5) {
            true => QoS::ExactlyOnce,
            false => QoS::AtLeastOnce,
        };
        let prefix = match rng.random_bool(0.2) {
            true => "u",
            false => "d",
        };
        let topic = format!("{prefix}/{}", rng.random_range(0..4));
        (topic, Bytes::from(format!("{name}-{n}")), qos)
    };
    me.sent.push(Sent {
        topic,
        payload,
        qos,
        retain: retained,
        sent_at: now(),
        acked_at: None,
    });
    // Ids of open flows stay taken.
    let mut pid = me.next_id;
    loop {
        pid = pid.checked_add(1).unwrap_or(1);
        if !me.open.contains_key(&pid) {
            break;
        }
    }
    me.next_id = pid;
    me.open.insert(pid, (n, false));
    (Packet::Publish(packet(&me.sent[n], pid, false)), n)
}

/// Returns whether the connection is still good.
async fn handle(me: &RefCell<Publisher>, conn: &mut Conn, packet: Packet) -> bool {
    let reply = {
        let mut me = me.borrow_mut();
        match packet {
            Packet::PubAck(ack) => {
                let pid = ack.packet_id.get();
                if let Some((n, _)) = me.open.remove(&pid) {
                    if !ack.reason.is_error() {
                        me.sent[n].acked_at.get_or_insert_with(now);
                    }
                }
                None
            }
            Packet::PubRec(ack) => {
                let pid = ack.packet_id.get();
                match me.open.get(&pid).copied() {
                    Some((n, _)) if ack.reason.is_error() => {
                        me.open.remove(&pid);
                        let _ = n;
                        None
                    }
                    Some((n, _)) => {
                        me.sent[n].acked_at.get_or_insert_with(now);
                        me.open.insert(pid, (n, true));
                        Some(Packet::PubRel(Ack::success(ack.packet_id)))
                    }
                    None => None,
                }
            }
            Packet::PubComp(ack) => {
                me.open.remove(&ack.packet_id.get());
                None
            }
            _ => None,
        }
    };
    match reply {
        Some(reply) => conn.send(&reply).await.is_ok(),
        None => true,
    }
}

/// The retained messages the broker holds at the end, by topic.
pub async fn read_retained() -> Option<BTreeMap<String, Bytes>> {
    let (mut conn, _) = Conn::open("retained-reader", ProtocolVersion::V311).await?;
    let subscribe = Subscribe {
        packet_id: id(1),
        filters: vec![(
            TopicFilter::new("r/#").expect("valid"),
            SubscriptionOptions::qos(QoS::AtMostOnce),
        )],
        properties: Properties::new(),
    };
    conn.send(&Packet::Subscribe(subscribe)).await.ok()?;
    let mut retained = BTreeMap::new();
    while let Ok(Some(packet)) = timeout(Duration::from_secs(2), conn.recv()).await {
        if let Packet::Publish(p) = packet {
            retained.insert(p.topic.as_str().to_owned(), p.payload);
        }
    }
    Some(retained)
}

/// How long the fleeting session outlives its connection.
pub const FLEETING_EXPIRY_SECS: u32 = 3;

/// A 5.0 session with a short expiry that goes offline for good at `leave`;
/// at `look` it comes back and must find it gone, however often the broker
/// restarted in between: its deadline is wall-clock time. Returns whether
/// the session was present then (`None`: it never got in to look).
pub async fn fleeting(leave: Duration, look: Duration) -> Option<bool> {
    let open = |expiry| async move {
        let stream = TcpStream::connect(("broker", BROKER_PORT)).await.ok()?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::new(),
            version: ProtocolVersion::V5,
        };
        let connect = Connect {
            version: ProtocolVersion::V5,
            clean_session: false,
            keep_alive: 30,
            client_id: "fleeting".to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Properties::from(vec![Property::SessionExpiryInterval(expiry)]),
        };
        conn.send(&Packet::Connect(connect.into())).await.ok()?;
        match timeout(Duration::from_secs(5), conn.recv()).await {
            Ok(Some(Packet::ConnAck(ack))) if ack.code == codec::ConnectCode::Accepted => {
                Some((conn, ack.session_present))
            }
            _ => None,
        }
    };
    // Online until `leave` (again after any restart), then away for good.
    while now() < leave {
        match open(FLEETING_EXPIRY_SECS).await {
            Some((mut conn, _)) => {
                let _ = timeout(leave.saturating_sub(now()), conn.recv()).await;
                let disconnect = codec::Disconnect::new(codec::ReasonCode::SUCCESS);
                let _ = conn.send(&Packet::Disconnect(disconnect)).await;
            }
            None => sleep(Duration::from_millis(100)).await,
        }
    }
    sleep(look.saturating_sub(now())).await;
    for _ in 0..100 {
        // Expiry 0: looking must not keep it alive.
        if let Some((_, present)) = open(0).await {
            return Some(present);
        }
        sleep(Duration::from_millis(100)).await;
    }
    None
}
