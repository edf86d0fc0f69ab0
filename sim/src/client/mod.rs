//! A simulated MQTT client: a turmoil host that speaks real MQTT bytes, built
//! on tern's codec, over turmoil's TCP, following its plan and recording all
//! it sends and sees into the history.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tern::codec::{
    self, Ack, Connect, DecodeOptions, LastWill, Packet, PacketId, Properties, Property,
    ProtocolVersion, Publish, QoS, Subscribe, SubscriptionOptions, TopicAliases, Unsubscribe,
};
use tern::topic::{TopicFilter, TopicName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};
use tokio_rustls::TlsConnector;
use turmoil::net::TcpStream;

use crate::history::{Ending, Event, History, MessageId};
use crate::tls::{BROKER_NAME, BROKER_TLS_PORT};
use crate::workload::{Action, ClientPlan, ConnectionPlan, End, Heavy, Login, Wire};

mod receive;

pub const BROKER_PORT: u16 = 1883;

/// What the harness can see of a client between steps.
#[derive(Default)]
pub struct ClientState {
    /// Which connection is live, if any (for recording a crash).
    pub connected: Cell<Option<u32>>,
    next_connection: Cell<usize>,
    connections_made: Cell<u32>,
    next_seq: Cell<u64>,
    /// QoS 2 ids received and not yet released: a resend is not new. Kept
    /// across the connections of a persistent session, as a real client does.
    received_qos2: RefCell<BTreeSet<PacketId>>,
    /// Our QoS 1/2 publishes not yet complete, in send order: the message,
    /// and whether PUBREC came (so PUBREL is what to resend). A persistent
    /// session resends them on reconnect [MQTT-4.4.0-1], and their ids stay
    /// taken until then.
    outgoing: RefCell<Vec<Outgoing>>,
    last_packet_id: Cell<u16>,
    /// Subscription Identifiers are unique per client, so a delivery names
    /// the subscription it came through.
    last_sub_id: Cell<u32>,
}

#[derive(Clone)]
struct Outgoing {
    id: MessageId,
    publish: Publish,
    released: bool,
}

/// A connection's two directions, over TCP or inside TLS.
type Reader = Box<dyn AsyncRead + Unpin>;
type Writer = Box<dyn AsyncWrite + Unpin>;

/// The host's software: runs the plan's remaining connections in turn;
/// `tls`, the run's client settings, if it has a TLS port.
pub async fn run(
    plan: Rc<ClientPlan>,
    state: Rc<ClientState>,
    history: History,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> turmoil::Result {
    sleep(plan.start).await;
    loop {
        let index = state.next_connection.get();
        let Some(connection) = plan.connections.get(index) else {
            return Ok(());
        };
        state.next_connection.set(index + 1);
        sleep(connection.gap).await;
        let Some(stream) = connect_with_retry(&plan, tls.as_ref(), &history).await else {
            if plan.wire != Wire::Plain {
                let client = plan.name.clone();
                history.record(Event::GaveUp { client });
            }
            continue;
        };
        if plan.wire == Wire::TlsToPlainPort {
            let tls = tls.expect("a scenario with TLS probes has the run's TLS");
            hello_to_plain_port(&plan, stream, &tls, &history).await;
            return Ok(());
        }
        let conn = state.connections_made.get() + 1;
        state.connections_made.set(conn);
        let mut session = Session::new(&plan, connection, conn, stream, &state, &history);
        session.run().await;
        state.connected.set(None);
    }
}

/// The broker may be restarting; try for a few seconds. A TLS client
/// tries again after a failed handshake too: a restart can cut one short.
async fn connect_with_retry(
    plan: &ClientPlan,
    tls: Option<&Arc<rustls::ClientConfig>>,
    history: &History,
) -> Option<(Reader, Writer)> {
    let wire = plan.wire;
    let port = match wire {
        Wire::Plain | Wire::TlsToPlainPort => BROKER_PORT,
        Wire::Tls | Wire::PlainToTlsPort => BROKER_TLS_PORT,
    };
    for _ in 0..10 {
        if let Ok(stream) = TcpStream::connect((BROKER_NAME, port)).await {
            if wire != Wire::Tls {
                let (reader, writer) = stream.into_split();
                return Some((Box::new(reader), Box::new(writer)));
            }
            let tls = tls.expect("a scenario with TLS clients has the run's TLS");
            let server =
                rustls_pki_types::ServerName::try_from(BROKER_NAME).expect("a valid DNS name");
            let handshake = TlsConnector::from(tls.clone()).connect(server, stream);
            let error = match timeout(ANSWER_WAIT, handshake).await {
                Ok(Ok(stream)) => {
                    let (reader, writer) = tokio::io::split(stream);
                    return Some((Box::new(reader), Box::new(writer)));
                }
                Ok(Err(error)) => error.to_string(),
                Err(elapsed) => elapsed.to_string(),
            };
            let client = plan.name.clone();
            history.record(Event::HandshakeFailed { client, error });
        }
        sleep(Duration::from_millis(500)).await;
    }
    None
}

/// How long a probe or a CONNECT waits for the broker's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// A probe (`Wire::TlsToPlainPort`): the opening of a TLS handshake,
/// as rustls writes it, on the plain port; then whatever the broker
/// sends back until it closes the connection or `ANSWER_WAIT` passes.
async fn hello_to_plain_port(
    plan: &ClientPlan,
    (mut reader, mut writer): (Reader, Writer),
    tls: &Arc<rustls::ClientConfig>,
    history: &History,
) {
    let server = rustls_pki_types::ServerName::try_from(BROKER_NAME).expect("a valid DNS name");
    let mut hello = Vec::new();
    let mut tls = rustls::ClientConnection::new(tls.clone(), server).expect("a client session");
    while tls.wants_write() {
        tls.write_tls(&mut hello).expect("writing to memory");
    }
    let _ = writer.write_all(&hello).await;
    let _ = writer.flush().await;
    let sent = Instant::now();
    let mut answer = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf).await {
                Ok(n) if n > 0 => answer.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
    };
    let closed = timeout(ANSWER_WAIT, read_all).await.is_ok();
    let closed_after = closed.then(|| sent.elapsed());
    // Enough to name it: a CONNACK is four bytes (3.1.1).
    answer.truncate(16);
    history.record(Event::HelloAnswered {
        client: plan.name.clone(),
        answer,
        closed_after,
    });
}

struct Session<'a> {
    plan: &'a ClientPlan,
    connection: &'a ConnectionPlan,
    conn: u32,
    reader: Reader,
    writer: Writer,
    /// Written to TLS and maybe not yet to the socket: TLS keeps what the
    /// socket would not take until a flush (plain TCP keeps nothing).
    unflushed: bool,
    state: &'a ClientState,
    history: &'a History,
    rbuf: BytesMut,
    wbuf: BytesMut,
    subscribes: BTreeMap<PacketId, Vec<String>>,
    unsubscribes: BTreeMap<PacketId, Vec<String>>,
    /// Acknowledgements held back by `ack_delay`.
    delayed_acks: VecDeque<(Instant, Packet)>,
    reading_resumes: Option<Instant>,
    version: ProtocolVersion,
    /// QoS 1/2 messages received on this connection and not yet answered
    /// with PUBACK or PUBCOMP: never more than our Receive Maximum.
    unanswered: BTreeSet<PacketId>,
    /// The topic aliases the broker has set on this connection: one it
    /// sets beyond our maximum fails to decode, and fails the run.
    aliases: TopicAliases,
}

impl<'a> Session<'a> {
    fn new(
        plan: &'a ClientPlan,
        connection: &'a ConnectionPlan,
        conn: u32,
        (reader, writer): (Reader, Writer),
        state: &'a ClientState,
        history: &'a History,
    ) -> Self {
        Session {
            plan,
            connection,
            conn,
            reader,
            writer,
            unflushed: false,
            state,
            history,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            subscribes: BTreeMap::new(),
            unsubscribes: BTreeMap::new(),
            delayed_acks: VecDeque::new(),
            reading_resumes: None,
            version: if plan.v5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            },
            unanswered: BTreeSet::new(),
            aliases: TopicAliases::new(match plan.v5 {
                true => connection.topic_alias_max,
                false => 0,
            }),
        }
    }

    fn v5(&self) -> bool {
        self.version == ProtocolVersion::V5
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            version: self.version,
            ..DecodeOptions::default()
        }
    }

    /// The session expiry this connection asks for, as the history records
    /// it: 3.1.1's clean and persistent sessions are 0 and forever.
    fn session_expiry(&self) -> u32 {
        match (self.v5(), self.connection.clean) {
            (true, _) => self.plan.session_expiry,
            (false, true) => 0,
            (false, false) => u32::MAX,
        }
    }

    fn name(&self) -> String {
        self.plan.name.clone()
    }

    fn send(&mut self, packet: &Packet) {
        match packet {
            Packet::PubAck(ack) | Packet::PubComp(ack) => {
                self.unanswered.remove(&ack.packet_id);
            }
            _ => {}
        }
        codec::encode(packet, self.version, &mut self.wbuf);
    }

    /// An id no incomplete publish of ours holds. SUBSCRIBE and UNSUBSCRIBE
    /// ids are short-lived and share the counter.
    fn packet_id(&mut self) -> PacketId {
        let outgoing = self.state.outgoing.borrow();
        loop {
            let next = self.state.last_packet_id.get().wrapping_add(1).max(1);
            self.state.last_packet_id.set(next);
            let id = PacketId::new(next).expect("kept non-zero");
            if !outgoing.iter().any(|o| o.publish.packet_id == Some(id)) {
                return id;
            }
        }
    }

    /// On a resumed session, the unfinished publishes again, in order; on a
    /// new one, they are gone with the old session.
    fn resume(&mut self, session_present: bool) {
        if !session_present {
            // The broker kept nothing: the packet ids of QoS 2 messages we
            // were receiving are free again, and a new message may reuse one.
            self.state.outgoing.borrow_mut().clear();
            self.state.received_qos2.borrow_mut().clear();
            return;
        }
        let outgoing = self.state.outgoing.borrow().clone();
        for o in outgoing {
            let id = o.publish.packet_id.expect("QoS 1/2 publishes have ids");
            if o.released {
                self.send(&Packet::PubRel(Ack::success(id)));
            } else {
                self.history.record(Event::PublishResent {
                    client: self.name(),
                    conn: self.conn,
                    id: o.id,
                });
                self.send(&Packet::Publish(Publish {
                    dup: true,
                    ..o.publish
                }));
            }
        }
    }

    async fn run(&mut self) {
        let will = self
            .connection
            .will
            .as_ref()
            .map(|(topic, qos, retain)| LastWill {
                topic: TopicName::new(topic).expect("plan topics are valid"),
                payload: Bytes::from(format!("will:{}:{}", self.plan.name, self.conn)),
                qos: *qos,
                retain: *retain,
                properties: match self.connection.will_delay {
                    0 => Properties::new(),
                    delay => Properties::from(vec![Property::WillDelayInterval(delay)]),
                },
            });
        let mut properties = Properties::new();
        if self.v5() && self.plan.session_expiry > 0 {
            properties.push(Property::SessionExpiryInterval(self.plan.session_expiry));
        }
        if let Some(max) = self.connection.receive_maximum {
            properties.push(Property::ReceiveMaximum(max));
        }
        if let Some(max) = self.connection.packet_size_max {
            properties.push(Property::MaximumPacketSize(max));
        }
        if self.v5() && self.connection.topic_alias_max > 0 {
            properties.push(Property::TopicAliasMaximum(self.connection.topic_alias_max));
        }
        let connect = Connect {
            version: self.version,
            clean_session: self.connection.clean,
            keep_alive: self.connection.keep_alive,
            client_id: self.plan.client_id.clone(),
            will: will.clone(),
            username: self.plan.login.user.clone(),
            password: self.plan.login.password.clone().map(Bytes::from),
            properties,
        };
        self.send(&Packet::Connect(connect.into()));
        self.history.record(Event::ConnectSent {
            client: self.name(),
            client_id: self.plan.client_id.clone(),
            conn: self.conn,
            clean: self.connection.clean,
            v5: self.v5(),
            expiry: self.session_expiry(),
            keep_alive: self.connection.keep_alive,
            adversary: self.plan.adversary,
        });
        if self.plan.login != Login::default() {
            self.history.record(Event::Login {
                client: self.name(),
                conn: self.conn,
                user: self.plan.login.user.clone(),
                password: self.plan.login.password.clone(),
            });
        }
        if self.plan.wire != Wire::Plain {
            self.history.record(Event::Wire {
                client: self.name(),
                conn: self.conn,
                wire: self.plan.wire,
            });
        }
        if self.connection.clean {
            self.state.received_qos2.borrow_mut().clear();
        }
        match self.connack().await {
            Some((session_present, assigned)) => {
                self.resume(session_present);
                self.state.connected.set(Some(self.conn));
                self.history.record(Event::Connected {
                    client: self.name(),
                    conn: self.conn,
                    clean: self.connection.clean,
                    session_present,
                    will: will.map(|w| (w.topic.as_str().to_owned(), w.qos, w.retain)),
                    will_delay: self.connection.will_delay,
                });
                if self.plan.client_id.is_empty() {
                    self.history.record(Event::AssignedId {
                        client: self.name(),
                        conn: self.conn,
                        id: assigned,
                    });
                }
            }
            None => return,
        }
        let how = self.serve().await;
        self.history.record(Event::Ended {
            client: self.name(),
            conn: self.conn,
            how,
        });
        // Ended once the DISCONNECT is written: a crash while we wait for
        // the broker to close must not count as a crash of this connection,
        // whose will the broker has rightly discarded.
        self.state.connected.set(None);
        if how == Ending::Disconnect {
            self.drain_until_closed().await;
        }
    }

    /// Writes CONNECT and waits for CONNACK: whether a session was
    /// present, and the client id it assigned if any; None if refused,
    /// closed or unanswered. Off plain TCP to the plain port, a CONNECT that got no
    /// CONNACK is recorded.
    async fn connack(&mut self) -> Option<(bool, Option<String>)> {
        let deadline = Instant::now() + ANSWER_WAIT;
        let mut answer = self.await_connack(deadline).await;
        if self.plan.wire != Wire::Plain && answer == Answer::Garbage {
            // A TLS port's alert to plain MQTT, say: whether the broker
            // then closes is what matters.
            let mut sink = BytesMut::new();
            let closed = timeout_at(deadline, async {
                while matches!(self.reader.read_buf(&mut sink).await, Ok(n) if n > 0) {
                    sink.clear();
                }
            });
            if closed.await.is_ok() {
                answer = Answer::Closed;
            }
        }
        if let Answer::Closed | Answer::Silent | Answer::Garbage = answer {
            if self.plan.wire != Wire::Plain {
                self.history.record(Event::Unanswered {
                    client: self.name(),
                    conn: self.conn,
                    closed: answer == Answer::Closed,
                });
            }
        }
        match answer {
            Answer::Accepted {
                session_present,
                assigned,
            } => Some((session_present, assigned)),
            _ => None,
        }
    }

    async fn await_connack(&mut self, deadline: Instant) -> Answer {
        if self.writer.write_all(&self.wbuf).await.is_err() || self.writer.flush().await.is_err() {
            return Answer::Closed;
        }
        self.wbuf.clear();
        loop {
            let options = self.decode_options();
            match codec::decode(&mut self.rbuf, &options) {
                Ok(Some(Packet::ConnAck(ack))) if ack.code == codec::ConnectCode::Accepted => {
                    let assigned = ack.properties.assigned_client_identifier();
                    return Answer::Accepted {
                        session_present: ack.session_present,
                        assigned: assigned.map(str::to_owned),
                    };
                }
                Ok(Some(Packet::ConnAck(ack))) => {
                    self.history.record(Event::Refused {
                        client: self.name(),
                        conn: self.conn,
                        code: format!("{:?}", ack.code),
                    });
                    return Answer::Refused;
                }
                Ok(Some(_)) | Err(_) => return Answer::Garbage,
                Ok(None) => {}
            }
            tokio::select! {
                read = self.reader.read_buf(&mut self.rbuf) => match read {
                    Ok(n) if n > 0 => {}
                    _ => return Answer::Closed,
                },
                () = sleep_until(deadline) => return Answer::Silent,
            }
        }
    }

    /// Runs the actions, answers the broker, and ends as planned.
    async fn serve(&mut self) -> Ending {
        let mut actions = self.connection.actions.iter();
        let mut next = actions
            .next()
            .map(|(delay, action)| (Instant::now() + *delay, action));
        let ping_every = Duration::from_millis(u64::from(self.connection.keep_alive) * 500);
        let mut next_ping = Instant::now() + ping_every;
        let mut hanging = false;
        // What came in the same read as the CONNACK: a resumed session's
        // messages. Left for the next read, they would wait for bytes that
        // a full window never sends.
        if !self.rbuf.is_empty() && !self.on_bytes(hanging) {
            return Ending::ClosedByBroker;
        }
        loop {
            let reading = self.reading_resumes.is_none_or(|at| at <= Instant::now());
            let next_ack = self.delayed_acks.front().map(|(at, _)| *at);
            let next_action = next.as_ref().map(|(at, _)| *at);
            tokio::select! {
                read = self.reader.read_buf(&mut self.rbuf), if reading => match read {
                    Ok(n) if n > 0 => {
                        if !self.on_bytes(hanging) {
                            return Ending::ClosedByBroker;
                        }
                    }
                    _ => return Ending::ClosedByBroker,
                },
                written = write_or_flush(&mut self.writer, &self.wbuf), if (!self.wbuf.is_empty() || self.unflushed) && !hanging => match written {
                    Ok(Some(n)) if n > 0 => {
                        self.wbuf.advance(n);
                        self.unflushed = self.plan.wire == Wire::Tls;
                    }
                    Ok(None) => self.unflushed = false,
                    _ => return Ending::ClosedByBroker,
                },
                () = sleep_until(next_action.unwrap_or_else(far_future)), if next_action.is_some() && !hanging => {
                    let (_, action) = next.take().expect("guarded by is_some");
                    if !self.act(action) {
                        match self.connection.end {
                            End::Disconnect => {
                                self.say_disconnect();
                                self.write_and_shut_down().await;
                                return Ending::Disconnect;
                            }
                            End::Drop => return Ending::Dropped,
                            End::Hang => {
                                hanging = true;
                                self.history.record(Event::Hung { client: self.name(), conn: self.conn });
                            }
                        }
                    }
                    next = actions.next().map(|(delay, action)| (Instant::now() + *delay, action));
                },
                () = sleep_until(next_ack.unwrap_or_else(far_future)), if next_ack.is_some() && !hanging => {
                    let (_, ack) = self.delayed_acks.pop_front().expect("guarded by is_some");
                    self.send(&ack);
                },
                () = sleep_until(next_ping), if self.connection.keep_alive > 0 && !hanging => {
                    self.send(&Packet::PingReq);
                    next_ping = Instant::now() + ping_every;
                },
                () = sleep_until(self.reading_resumes.unwrap_or_else(far_future)), if !reading => {
                    self.reading_resumes = None;
                },
            }
        }
    }

    /// DISCONNECT, with the session expiry the plan sets in it, if any.
    fn say_disconnect(&mut self) {
        let mut disconnect = codec::Disconnect::new(codec::ReasonCode::SUCCESS);
        if let Some(expiry) = self.connection.disconnect_expiry.filter(|_| self.v5()) {
            disconnect
                .properties
                .push(Property::SessionExpiryInterval(expiry));
            self.history.record(Event::ExpiryOnDisconnect {
                client: self.name(),
                conn: self.conn,
                expiry,
            });
        }
        self.send(&Packet::Disconnect(disconnect));
    }

    /// Writes what is buffered (the DISCONNECT), then half-closes.
    async fn write_and_shut_down(&mut self) {
        if self.writer.write_all(&self.wbuf).await.is_ok() {
            let _ = self.writer.shutdown().await;
        }
        self.wbuf.clear();
    }

    /// Reads until the broker closes, for at most 2 s: a socket closed with
    /// unread data resets, and a reset may destroy the DISCONNECT before the
    /// broker reads it.
    async fn drain_until_closed(&mut self) {
        let drain = async {
            let mut sink = BytesMut::new();
            while matches!(self.reader.read_buf(&mut sink).await, Ok(n) if n > 0) {
                sink.clear();
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }

    /// Does one action; false when the plan says to end the connection.
    fn act(&mut self, action: &Action) -> bool {
        let client = self.name();
        let conn = self.conn;
        match action {
            Action::Subscribe(filter, qos) => {
                self.subscribe(&[(filter.clone(), *qos)], None);
            }
            Action::SubscribeWith(filter, options) => {
                self.subscribe(&[(filter.clone(), options.qos)], Some(*options));
            }
            Action::SubscribeMany(filters) => self.subscribe(filters, None),
            Action::Unsubscribe(filter) => {
                let packet_id = self.packet_id();
                self.history.record(Event::UnsubscribeSent {
                    client,
                    conn,
                    filter: filter.clone(),
                });
                self.unsubscribes.insert(packet_id, vec![filter.clone()]);
                let filter = TopicFilter::new(filter).expect("plan filters are valid");
                self.send(&Packet::Unsubscribe(Unsubscribe {
                    packet_id,
                    filters: vec![filter],
                    properties: Default::default(),
                }));
            }
            Action::Publish {
                topic,
                qos,
                retain,
                empty,
                expiry,
                heavy,
            } => {
                let properties = expiry
                    .map(Property::MessageExpiryInterval)
                    .into_iter()
                    .chain(heavy.iter().flat_map(user_properties))
                    .collect();
                self.publish(topic, *qos, *retain, *empty, properties)
            }
            Action::StopReading(Duration::ZERO) => return false,
            Action::StopReading(for_) => {
                self.history.record(Event::Paused { client, conn });
                self.reading_resumes = Some(Instant::now() + *for_);
            }
        }
        true
    }

    /// One SUBSCRIBE of `filters`, each recorded, under one Subscription
    /// Identifier (5.0); with `options` (No Local, Retain As Published,
    /// Retain Handling: 5.0) rather than the defaults, if given.
    fn subscribe(&mut self, filters: &[(String, QoS)], options: Option<SubscriptionOptions>) {
        let packet_id = self.packet_id();
        let sub_id = self.v5().then(|| {
            let id = self.state.last_sub_id.get() + 1;
            self.state.last_sub_id.set(id);
            id
        });
        for (filter, qos) in filters {
            self.history.record(Event::SubscribeSent {
                client: self.name(),
                conn: self.conn,
                filter: filter.clone(),
                qos: *qos,
                sub_id,
                options,
                packet_id: packet_id.get(),
            });
        }
        let names = filters.iter().map(|(filter, _)| filter.clone()).collect();
        self.subscribes.insert(packet_id, names);
        let filters = filters
            .iter()
            .map(|(filter, qos)| {
                let filter = TopicFilter::new(filter).expect("plan filters are valid");
                let options = SubscriptionOptions {
                    qos: *qos,
                    ..options.unwrap_or(SubscriptionOptions::qos(*qos))
                };
                (filter, options)
            })
            .collect();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties: sub_id
                .map(Property::SubscriptionIdentifier)
                .into_iter()
                .collect(),
        }));
    }

    /// A PUBLISH of the next message of this client, recorded before it
    /// goes, and kept until acknowledged if it is QoS 1 or 2.
    fn publish(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        empty: bool,
        properties: Properties,
    ) {
        let client = self.name();
        let conn = self.conn;
        let seq = self.state.next_seq.get() + 1;
        self.state.next_seq.set(seq);
        let id = MessageId {
            publisher: client.clone(),
            seq,
        };
        let payload = if empty {
            Bytes::new()
        } else {
            Bytes::from(id.payload())
        };
        let packet_id = (qos != QoS::AtMostOnce).then(|| self.packet_id());
        self.history.record(Event::PublishSent {
            client,
            conn,
            id: id.clone(),
            topic: topic.to_owned(),
            qos,
            retain,
            empty,
            expiry: properties.message_expiry_interval(),
        });
        let topic = TopicName::new(topic).expect("plan topics are valid");
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id,
            payload,
            properties,
        };
        if packet_id.is_some() {
            let outgoing = Outgoing {
                id,
                publish: publish.clone(),
                released: false,
            };
            self.state.outgoing.borrow_mut().push(outgoing);
        }
        self.send(&Packet::Publish(publish));
    }
}

/// What a CONNECT got back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Accepted {
        session_present: bool,
        assigned: Option<String>,
    },
    Refused,
    /// The broker closed the connection, or a write failed.
    Closed,
    /// Nothing within `ANSWER_WAIT`.
    Silent,
    /// A packet that is not a CONNACK, or bytes that do not decode.
    Garbage,
}

/// `heavy.count` User Properties whose encoding is `heavy.bytes` long, near
/// enough: a one-byte key and a value each, with their length prefixes.
fn user_properties(heavy: &Heavy) -> impl Iterator<Item = Property> {
    const OVERHEAD: usize = 1 + 2 + 1 + 2;
    let value = (heavy.bytes / heavy.count.max(1)).saturating_sub(OVERHEAD);
    (0..heavy.count).map(move |i| {
        let key = char::from(b'a' + (i % 26) as u8).to_string();
        Property::UserProperty(key, "v".repeat(value))
    })
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Writes some of `wbuf`, or with nothing to write, flushes (None).
async fn write_or_flush(writer: &mut Writer, wbuf: &[u8]) -> std::io::Result<Option<usize>> {
    match wbuf.is_empty() {
        true => writer.flush().await.map(|()| None),
        false => writer.write(wbuf).await.map(Some),
    }
}
