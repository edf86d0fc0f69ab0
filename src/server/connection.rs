//! One task per connection: it reads and decodes the client's packets, hands
//! them to the broker, and drains the connection's outbox into one buffer
//! (`writes.rs`) and one write. Reading and writing share one `select!`, so a client that stops
//! reading never stops us from reading it, and there is no second task to
//! leak. Whatever ends the task, the broker forgets the connection: `finish`
//! detaches it, and if the task ends otherwise, its drop guard (`Detach`,
//! then the `Connection` itself) leaves it to the timers task.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{ready, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use tokio_util::either::Either;
use tracing::Level;

use super::deadlines::Deadlines;
use super::duplex::Duplex;
use super::endpoint::Slot;
use super::outbox::{Bounds, Drained, Outbound, Outbox, Told};
use super::queues::{Queues, QUEUE_KEPT_PACKETS};
use super::write_through::{Lent, Routed, Turn};
use super::writes::Writes;
use super::Shared;
use crate::broker::{Clipped, ConnId};
use crate::codec::{self, DecodeError, Packet, PacketId, PublishLayout, SharedFrame};
use crate::config::planted;
use crate::link::{End, Inbound, Link};
use crate::net::{Arrivals, NextAcks};
use crate::transport::{Opened, Secured, Stream};

/// A connection's task. Not an `async fn`: one keeps its arguments for its
/// whole life, and each idle connection's task would hold these twice,
/// once as arguments and once moved into its `Connection`.
pub(super) fn run<S>(
    stream: S,
    peer: SocketAddr,
    conn: ConnId,
    outbox: Arc<Outbox>,
    slot: Slot,
    shared: Arc<Shared>,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Arrivals + Unpin + Send,
{
    // Boxed: the TLS or WebSocket handshake's state and CONNECT's are larger
    // than all a connection keeps while it serves (the boxed future is
    // 2,400 bytes against 624 in release, `-Zprint-type-sizes`), and
    // awaited in place they would size every connection's task for good.
    let starting = Box::pin(start(stream, peer, conn, outbox, slot, shared));
    async move {
        let Some((mut connection, keep_alive)) = starting.await else {
            return;
        };
        let end = connection.session(keep_alive).await;
        // Before the connection moves: the stream lent may be left lendable
        // by a drain that ended the session.
        connection.outbox.withdraw_writes();
        // Boxed too: only the session's own state is kept in place.
        Box::pin(finish(connection, end, true)).await;
    }
}

/// Opens the connection's transport, sets up its state with its drop
/// guard, and takes its CONNECT: the keepalive to enforce; or says why it
/// could not, and detaches it. Boxed where it is awaited, with what it
/// awaits (the transport's handshake and the CONNECT's, each with its
/// timer): they would size every connection's task for good.
async fn start<S>(
    stream: S,
    peer: SocketAddr,
    conn: ConnId,
    outbox: Arc<Outbox>,
    slot: Slot,
    shared: Arc<Shared>,
) -> Option<(Connection<S>, u16)>
where
    S: AsyncRead + AsyncWrite + Arrivals + Unpin + Send,
{
    // Not graceful until shown otherwise: a panic is no DISCONNECT. The
    // connection takes over from it once it exists.
    let detach = Detach {
        shared: shared.clone(),
        conn,
        finished: false,
    };
    // One deadline for the transport's handshake and CONNECT together,
    // so that a slow client cannot hold its place for twice the timeout.
    let connect_by = tokio::time::Instant::now() + shared.config.connect_timeout();
    let Opened { stream, identity } = match open(&slot, stream, connect_by, &shared).await {
        Ok(opened) => opened,
        Err(end) => {
            let who = Who {
                conn,
                peer,
                client_id: None,
            };
            log_end(&end, who, &shared);
            detach.finish(false);
            return None;
        }
    };
    let mut connection = Connection {
        stream: Duplex::new(stream),
        rbuf: BytesMut::new(),
        writes: Writes::default(),
        rbuf_big: false,
        reads_ahead: 0,
        put_off: 0,
        rbuf_busy: false,
        queues: None,
        routing: false,
        acks_put_off: false,
        ack_owed: false,
        first_unanswered: true,
        link: Link::new(&shared.config),
        identity: identity.map(String::into_boxed_str),
        client_id: None,
        detached: false,
        conn,
        peer,
        outbox,
        slot,
        shared,
    };
    detach.hand_over();
    match connection.connect(connect_by).await {
        Ok(keep_alive) => Some((connection, keep_alive)),
        Err(end) => {
            finish(connection, end, false).await;
            None
        }
    }
}

/// Opens the connection's transport by `deadline`.
async fn open<S>(
    slot: &Slot,
    stream: S,
    deadline: tokio::time::Instant,
    shared: &Shared,
) -> Result<Opened<S>, End>
where
    S: AsyncRead + AsyncWrite + Arrivals + Unpin + Send,
{
    if planted!(shared.config, TransportSkipped) {
        let stream = Either::Left(Either::Left(stream));
        return Ok(Opened {
            stream,
            identity: None,
        });
    }
    let opening = tokio::time::timeout_at(deadline, slot.endpoint().transport.open(stream));
    tokio::select! {
        () = shared.cancel.cancelled() => Err(End::Shutdown),
        opened = opening => match opened {
            Err(_) => Err(End::ConnectTimeout(shared.config.connect_timeout())),
            Ok(Err(error)) => {
                if planted!(shared.config, HandshakeFailureShutsListener) {
                    slot.endpoint().shut();
                }
                Err(End::Transport(error))
            }
            Ok(Ok(mut opened)) => {
                if planted!(shared.config, TlsReadAheadLost) {
                    if let Either::Left(Either::Right(tls)) = &mut opened.stream {
                        let mut lost = [0; 4096];
                        let _ = std::io::Read::read(&mut tls.get_mut().get_mut().1.reader(), &mut lost);
                    }
                }
                Ok(opened)
            }
        },
    }
}

/// Which connection a log line is about. Each line says so itself: a span
/// held for the connection's life cost every idle one 400 bytes of heap.
#[derive(Clone, Copy)]
struct Who<'a> {
    conn: ConnId,
    peer: SocketAddr,
    /// Once CONNECT is accepted.
    client_id: Option<&'a str>,
}

/// A log line about one connection, naming it and its client: `level`, a
/// `Who`, then the line's own fields and message as for `tracing::event!`.
macro_rules! conn_event {
    ($level:expr, $who:expr, $($line:tt)+) => {{
        let who: Who = $who;
        // A client id may be 256 bytes, or more if so configured.
        let client_id = who.client_id.map(|id| tracing::field::display(Clipped(id)));
        tracing::event!($level, conn = who.conn.0, peer = %who.peer, client_id, $($line)+)
    }};
}

/// Ends a connection: says why to a client whose session was `served`,
/// detaches it, and lingers for one at fault.
async fn finish<S>(mut connection: Connection<S>, end: End, served: bool)
where
    S: AsyncRead + AsyncWrite + Arrivals + Unpin + Send,
{
    // The client's end was read (or a read failed) with what it sent
    // before not all handled: a PUBLISH whose fan-out was going out in
    // slices, packets a hold's budget left waiting, whole packets not yet
    // decoded. They are still the broker's; until 2026-12-04 they were
    // dropped with the connection (the route went on without its PUBACK).
    // Handled here, not in the session's loop: any change to the loop's
    // code costs it its profile (PGO).
    let rest = !connection.rbuf.is_empty() || connection.has_work_waiting();
    let end = match end {
        End::Eof | End::Io(_) if served && rest => Box::pin(connection.last_words(end)).await,
        end => end,
    };
    if served {
        if let End::Decode(DecodeError::PacketTooLarge { .. }) = &end {
            if connection.shared.log_limit.admit("too large a packet") {
                let who = connection.who();
                conn_event!(Level::WARN, who, reason = %end, "client sent too large a packet");
            }
        }
        connection.farewell(&end).await;
    }
    let config = &connection.shared.config;
    if planted!(config, LeakOnAbruptDrop) && matches!(end, End::Eof | End::Io(_)) {
        match leak().await {}
    }
    if planted!(config, TaskLeakOnKeepAlive) && matches!(end, End::KeepAlive(_)) {
        connection.lost();
        match leak().await {}
    }
    // Only DISCONNECT, and our own shutdown, end a connection without
    // its will [MQTT-3.1.2-8]; a takeover has already published it.
    let graceful = matches!(end, End::Disconnect | End::Shutdown | End::TakenOver);
    log_end(&end, connection.who(), &connection.shared);
    // Detach before the socket closes, so that a client that sees the
    // close and reconnects at once finds its old connection gone, not a
    // connection to take over (which would send the will it cancelled).
    connection.detach(graceful);
    if end.is_clients_fault() {
        connection.linger().await;
    }
    drop(connection);
}

fn log_end(end: &End, who: Who, shared: &Shared) {
    match end {
        End::Disconnect | End::Eof | End::Shutdown => {
            conn_event!(Level::DEBUG, who, reason = %end, "connection closed")
        }
        _ if shared.log_limit.admit(end.kind()) => {
            conn_event!(Level::INFO, who, reason = %end, "connection closed")
        }
        _ => {}
    }
}

/// What a planted leak waits on: nothing, for ever (the leak: README,
/// "Where it comes from").
async fn leak() -> std::convert::Infallible {
    std::future::pending().await
}

/// Sees that the broker forgets the connection however its task ends
/// before its `Connection` exists, which then does the same (its `Drop`):
/// on the normal path the free function `finish` detaches it at once; if
/// the task panicked or was dropped with its runtime, the guard leaves the
/// connection to the timers task, since the broker's work (a will's
/// fan-out) has no place in a drop.
struct Detach {
    shared: Arc<Shared>,
    conn: ConnId,
    finished: bool,
}

impl Detach {
    fn finish(mut self, graceful: bool) {
        self.finished = true;
        self.shared.detach(self.conn, graceful);
    }

    /// The connection now exists and guards itself: a guard of its own
    /// beside it cost every idle connection's task 24 bytes.
    fn hand_over(mut self) {
        self.finished = true;
    }
}

impl Drop for Detach {
    fn drop(&mut self) {
        if !self.finished {
            lost(&self.shared, self.conn);
        }
    }
}

/// Leaves a connection whose task ended without detaching it to the
/// timers task.
fn lost(shared: &Shared, conn: ConnId) {
    let mut lost = shared.lost.lock().unwrap_or_else(PoisonError::into_inner);
    lost.push(conn);
    drop(lost);
    shared.timers_wake.notify_one();
}

struct Connection<S> {
    stream: Duplex<Stream<Secured<S>>>,
    /// Bytes read and not yet decoded; a partial packet waits here.
    rbuf: BytesMut,
    /// Encoded packets not yet written.
    writes: Writes,
    /// The read buffer has held more than `BUFFER_KEPT_BYTES` since it
    /// was last replaced.
    rbuf_big: bool,
    /// Reads since the last write while a write was waiting.
    reads_ahead: u8,
    /// Holds put off in a row because the lock was taken (`dispatch_waiting`).
    put_off: u8,
    /// A read has filled all the room there was: this client sends more
    /// than the few bytes an idle one does, and reads get `READ_ROOM_BYTES`.
    rbuf_busy: bool,
    /// A busy connection's packet queues, kept between batches: `None`
    /// while each would hold at most `QUEUE_KEPT_PACKETS` and nothing
    /// waits, as on an idle connection, whose task the three empty queues
    /// inline made 88 bytes larger.
    queues: Option<Box<Queues>>,
    /// The session's last message is still being routed, a slice a hold
    /// (`broker/fanout.rs`), or its last SUBSCRIBE handled (`subscribe.rs`):
    /// it goes on before anything else is dispatched.
    routing: bool,
    /// This client publishes to idle subscribers: its socket leaves the
    /// ACK of what we read to us, to send once what it routed is written
    /// (`net/acks.rs`). A subscriber's are left to the kernel, which sends
    /// them in the deliveries that follow, at no cost.
    acks_put_off: bool,
    /// Bytes were read since we last wrote: the client is owed an ACK.
    ack_owed: bool,
    /// No read of the session has gone unanswered yet: the first that does
    /// has its ACK sent, which takes the socket out of the delayed ACKs
    /// our CONNACK put it in (`NextAcks::Kernels`).
    first_unanswered: bool,
    /// The protocol: what each packet means, and what we answer.
    link: Link,
    /// The verified client certificate's subject CN, if any.
    identity: Option<Box<str>>,
    /// The session's, once CONNECT is accepted: for the log.
    client_id: Option<Box<str>>,
    /// The broker has been told it is gone, or the timers task will be.
    detached: bool,
    conn: ConnId,
    peer: SocketAddr,
    outbox: Arc<Outbox>,
    /// Its place on its listener, whose settings it follows.
    slot: Slot,
    shared: Arc<Shared>,
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        // Before the stream goes; every wait's end took it back already.
        self.outbox.withdraw_writes();
        if !self.detached {
            self.lost();
        }
    }
}

impl<S> Connection<S> {
    /// Detaches it from the broker; `graceful` withholds its will.
    fn detach(&mut self, graceful: bool) {
        self.detached = true;
        self.shared.detach(self.conn, graceful);
    }

    /// Leaves it to the timers task to detach, as its `Drop` does.
    fn lost(&mut self) {
        self.detached = true;
        lost(&self.shared, self.conn);
    }

    fn who(&self) -> Who<'_> {
        Who {
            conn: self.conn,
            peer: self.peer,
            client_id: self.client_id.as_deref(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Arrivals + Unpin + Send> Connection<S> {
    /// CONNECT by `connect_by`, unless the server shuts down first; returns
    /// the keepalive to enforce.
    async fn connect(&mut self, connect_by: tokio::time::Instant) -> Result<u16, End> {
        let cancel = self.shared.cancel.clone();
        let handshake = tokio::select! {
            () = cancel.cancelled() => return Err(End::Shutdown),
            handshake = tokio::time::timeout_at(connect_by, self.handshake()) => handshake,
        };
        match handshake {
            Err(_) => Err(End::ConnectTimeout(self.shared.config.connect_timeout())),
            Ok(result) => result,
        }
    }

    /// Tells a 5.0 client why we close [MQTT-4.13.2], after whatever is
    /// already on its way to it, waiting a bounded time for a slow reader.
    /// A client that ended it itself gets what was answered before, if its
    /// socket takes it now.
    async fn farewell(&mut self, end: &End) {
        let packet = self.link.farewell(end);
        // A client that half-closed may still read, and mosquitto answers
        // it; tern routed a QoS 1 PUBLISH sent just before the FIN and
        // dropped its PUBACK. A client that closed both ways answers the
        // bytes with a reset, and keeps no TIME_WAIT socket for its port.
        let clients_end = matches!(end, End::Eof | End::Disconnect);
        if packet.is_none() && !end.is_clients_fault() && !clients_end {
            return;
        }
        // A PUBLISH another task began to write is finished first: cut
        // short, the bytes after it would be read as its rest.
        for rest in self.outbox.take_rest() {
            self.writes.encoded(&rest);
        }
        // What was answered before the fault goes first: which of its
        // packets were taken must not depend on when we last wrote.
        if end.is_clients_fault() {
            self.drain_outbox(false);
        }
        if clients_end {
            self.drain_committed().await;
        }
        if let Some(packet) = packet {
            self.writes.encode(&packet, self.link.version());
        }
        // A client silent for 1.5 keepalives is taken for gone, and one
        // that ended it is owed no wait: one try (a timeout polls its
        // future once before its deadline).
        let wait = match end {
            End::KeepAlive(_) | End::PacketTimeout(_) | End::Eof | End::Disconnect => {
                Duration::ZERO
            }
            _ => LAST_WORDS_WAIT,
        };
        let _ = tokio::time::timeout(wait, self.flush()).await;
    }

    /// Drains the outbox, and with a store waits a bounded time for the
    /// commit that its PUBACKs wait for: a client that half-closed after
    /// a QoS 1 PUBLISH got no PUBACK with `durability = "sync"`, whose
    /// commit came after the end's one try to write.
    async fn drain_committed(&mut self) {
        let drained = async {
            loop {
                self.drain_outbox(false);
                if !self.outbox.gated() || self.shared.commit_failed() {
                    return;
                }
                self.outbox.notified().await;
            }
        };
        let _ = tokio::time::timeout(LAST_WORDS_WAIT, drained).await;
    }

    /// Half-closes, then reads and discards what the client still sends
    /// until it closes, for a bounded time: closing with its input unread
    /// would reset the connection, and a reset may destroy our last words
    /// before the client reads them.
    async fn linger(&mut self) {
        let cancel = self.shared.cancel.clone();
        let drain = async {
            let _ = self.stream.get_mut().shutdown().await;
            loop {
                self.rbuf.clear();
                match self.stream.get_mut().read_buf(&mut self.rbuf).await {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
            }
        };
        tokio::select! {
            () = cancel.cancelled() => {}
            _ = tokio::time::timeout(LAST_WORDS_WAIT, drain) => {}
        }
    }

    fn decode(&mut self) -> Result<Option<Packet>, End> {
        self.link.decode(&mut self.rbuf)
    }

    /// Reads until one whole packet is buffered; before CONNECT nothing else
    /// needs doing.
    async fn read_packet(&mut self) -> Result<Packet, End> {
        loop {
            if let Some(packet) = self.decode()? {
                return Ok(packet);
            }
            if self.stream.get_mut().read_buf(&mut self.rbuf).await? == 0 {
                return Err(End::Eof);
            }
        }
    }

    /// CONNECT and CONNACK; returns the keepalive to enforce.
    async fn handshake(&mut self) -> Result<u16, End> {
        let decoded = self.read_packet().await;
        let mut connect = match self.link.first(decoded) {
            Ok(connect) => connect,
            Err((end, reply)) => {
                let reply = match reply {
                    None if planted!(self.shared.config, MalformedConnectAnswered)
                        && matches!(end, End::Decode(_)) =>
                    {
                        Some(Box::new(Packet::ConnAck(codec::ConnAck {
                            session_present: false,
                            code: codec::ConnectCode::UnacceptableProtocolVersion,
                            properties: Default::default(),
                        })))
                    }
                    reply => reply,
                };
                if planted!(self.shared.config, MalformedConnectKeptOpen)
                    && matches!(end, End::Decode(_))
                {
                    // Until the connect timeout around the handshake.
                    std::future::pending::<()>().await;
                }
                if let Some(reply) = reply {
                    self.writes.encode(&reply, self.link.version());
                    self.flush().await?;
                }
                return Err(end);
            }
        };
        let endpoint = self.slot.endpoint();
        let checked = match endpoint.identity_as_username {
            true => {
                let identity = self.identity.take().map(String::from);
                (self.shared.auth).take_identity(&mut connect, identity, self.peer.ip())
            }
            false => {
                let anonymous = endpoint.allow_anonymous;
                self.shared.auth.check(&connect, self.peer.ip(), anonymous)
            }
        };
        if let Err(code) = checked {
            let refusal = Packet::ConnAck(codec::ConnAck {
                session_present: false,
                code,
                properties: Default::default(),
            });
            self.writes.encode(&refusal, self.link.version());
            self.flush().await?;
            return Err(End::ConnectRefused);
        }
        let conn = self.conn;
        let outbound_max = self.outbound_max();
        let (accepted, routing) = self.shared.with_broker(|state| {
            let accepted = state.broker.connect(conn, *connect);
            // A resumed session may still owe retained messages.
            if accepted.is_some() {
                state.send_retained(conn, outbound_max);
            }
            (accepted, state.broker.route_pending(conn))
        });
        // A message the session's last connection left routing goes on
        // before this one's packets.
        self.routing = routing;
        match accepted {
            Some(accepted) => {
                self.client_id = Some(accepted.client_id.into_boxed_str());
                let version = self.link.version();
                let keep_alive = accepted.keep_alive;
                conn_event!(Level::DEBUG, self.who(), keep_alive, ?version, "connected");
                Ok(keep_alive)
            }
            None => {
                self.drain_outbox(false);
                self.flush().await?;
                Err(End::ConnectRefused)
            }
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        while !self.writes.is_empty() {
            match self.stream.get_mut().write(self.writes.next()).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => self.writes.advance(n),
            }
        }
        self.stream.get_mut().flush().await
    }

    /// Encodes what the outbox holds into the write buffer. With `lend`,
    /// the session's loop is about to wait: if there is nothing to write,
    /// others may write to the stream it lent until the wait ends
    /// (`write_through.rs`).
    fn drain_outbox(&mut self, lend: bool) -> Drained {
        let committed = self.shared.committed();
        let mut draining = Queues::take(&mut self.queues, |q| &mut q.draining);
        let lend = lend && self.writes.is_empty();
        let mut drained = self.outbox.drain(&mut draining, committed, lend);
        if drained == Drained::Open && self.shared.commit_failed() && self.outbox.gated() {
            drained = Drained::StoreFailed;
        }
        let mut publishes = 0;
        let aliases = self.link.sends_aliases();
        for outbound in draining.drain(..) {
            publishes += u64::from(outbound.is_publish());
            match outbound {
                Outbound::Packet(Packet::Publish(p)) if aliases => {
                    let naming = self
                        .link
                        .naming(p.topic.as_str(), || codec::publish_len(&p));
                    self.writes.encode_named(&p, naming);
                }
                Outbound::Packet(packet) => self.writes.encode(&packet, self.link.version()),
                // Frames are PUBLISHes fanned out, encoded once for all.
                Outbound::Frame(frame) => self.write_frame(&frame, None, aliases),
                Outbound::FrameAs(frame, id) => self.write_frame(&frame, Some(id), aliases),
                Outbound::Rest(bytes) => self.writes.encoded(&bytes),
            }
        }
        self.shared.traffic.sent_messages(publishes);
        // A few packets' queue is cheaper to allocate again than to keep on
        // every idle connection, here and (swapped) in the outbox.
        let keep = draining.capacity() > QUEUE_KEPT_PACKETS;
        Queues::put(&mut self.queues, |q| &mut q.draining, draining, keep);
        drained
    }

    /// A frame fanned out to many connections, with our packet id `id` if
    /// it needs one, its topic named by our alias if we send them.
    fn write_frame(&mut self, frame: &SharedFrame, id: Option<PacketId>, aliases: bool) {
        let bytes = frame.bytes();
        let layout = if aliases {
            PublishLayout::read(bytes)
        } else {
            None
        };
        match (layout, id) {
            (Some(layout), _) => {
                let naming = self.link.naming(layout.topic(), || bytes.len());
                self.writes.encoded_named(&layout, naming, id);
            }
            (None, id) => self.writes.encoded_frame(frame, id),
        }
    }

    /// The connected session: packets in, packets out, until something ends
    /// it. Keepalive is enforced at 1.5 times the interval [MQTT-3.1.2-24].
    async fn session(&mut self, keep_alive: u16) -> End {
        let per_second = if planted!(self.shared.config, KeepAliveSlack) {
            3000
        } else if planted!(self.shared.config, KeepAliveWithoutGrace) {
            1000
        } else {
            1500
        };
        let grace = Duration::from_millis(u64::from(keep_alive) * per_second);
        let packet_timeout = self.shared.config.packet_timeout();
        let mut deadlines = Deadlines::new(keep_alive, grace, packet_timeout, self.shared.millis());
        // A shutdown is told through the outbox (`Outbox::shut_down`), to
        // those the server found in its map of them; one that began after
        // that is told here.
        if self.shared.cancel.is_cancelled() {
            return End::Shutdown;
        }
        self.reads_ahead = 0;
        // The stream stays where it is until the session ends.
        self.lend_stream();
        self.shared
            .set_alarm(self.conn, &self.outbox, deadlines.alarm());
        // Every end of the loop breaks out of it, to take the alarm back
        // below: an inner function or a guard that did so kept 24 to 40
        // bytes more in every idle connection's task.
        // What this loop keeps across its waits is in every idle
        // connection's task: the limits are read where they are needed.
        let end = 'session: loop {
            // Subscribers this turn routes to, idle and few, are written
            // to by it, before its own replies or after its lone packet
            // (`write_through.rs`). A block: its locals would be kept in
            // the task across the waits.
            let decoded = {
                let turn = Turn::begin();
                let handled = self.handle_buffered();
                let count = *handled.as_ref().unwrap_or(&0);
                let replies = || self.outbox.waiting() > 0;
                let routed = turn.finish(&self.shared.traffic, count, replies);
                match handled {
                    Ok(decoded) => {
                        self.acks_put_off |= routed != Routed::Nothing;
                        // Their clients, woken by those writes, run
                        // before our replies and the rest of the turn.
                        // The stream's lock, held across the yield, is
                        // ours alone: the wait's end took back the lend.
                        if routed == Routed::Written {
                            self.stream.with_ref(|stream| stream.give_way());
                        }
                        decoded > 0
                    }
                    Err(end) => break 'session end,
                }
            };
            // Bytes left while the outbox has room are a packet not yet
            // whole; while it is full they wait on us, not on the client.
            let buffered =
                !self.rbuf.is_empty() || planted!(self.shared.config, PacketTimeoutWhenIdle);
            let partial = buffered && self.outbox.kept() < self.outbound_max();
            deadlines.handled(decoded, partial, || self.shared.millis());
            // A big read buffer just emptied is let go now, not at the end
            // of a wake that an idle client may never cause: a publisher
            // of large messages that fell quiet kept 15 MB this way.
            self.release_idle_buffers();
            // Retained messages owed go out as the queue drains: half empty,
            // so that a slice is worth its lock.
            // A block: a local still in scope across the waits below is
            // kept in the task, used or not.
            let may_read = {
                let outbound_max = self.outbound_max();
                if self.outbox.retained_owed_with_room(outbound_max / 2) {
                    let conn = self.conn;
                    self.shared
                        .with_broker(|state| state.send_retained(conn, outbound_max));
                }
                // Nothing more is read before what was put off is
                // dispatched, so that what comes next goes after it (and
                // the client's end, read, does not drop it).
                let put_off = self.put_off > 0 && self.has_work_waiting();
                self.outbox.kept() < outbound_max && !put_off
            };
            if self.writes.is_empty() {
                if let Some(end) = self.drain_lending() {
                    break 'session end;
                }
            }
            if self.reads_before_write(may_read) {
                match self.read_ahead().await {
                    Ok(true) => {
                        self.reads_ahead += 1;
                        continue;
                    }
                    Ok(false) => {}
                    Err(end) => break 'session end,
                }
            }
            // What was drained goes out now if the socket takes it: written
            // by the `select!` below, it cost this loop a second turn for
            // nothing (about 1,500 of a QoS 1 message's 25,500 instructions).
            // Then the outbox is drained again, as that turn did: one that
            // finds nothing lends the stream for the wait (`drain_outbox`),
            // and what it finds the `select!` writes.
            if !self.writes.is_empty() {
                if let Some(end) = self.write_now() {
                    break 'session Box::pin(self.last_words(end)).await;
                }
                if self.writes.is_empty() {
                    // Reads held back by a full outbox, or retained
                    // messages owed once it has room: worked out above,
                    // before the drain made room, so the turn is taken
                    // again, as after a write by the `select!`. Waiting
                    // here, on neither a read nor a write, nothing would
                    // wake us (found by a review, not seen).
                    let outbound_max = self.outbound_max();
                    // Work put off comes back by the yield below, after
                    // the thread's other tasks, which is its point.
                    let held_back = !may_read && !self.has_work_waiting();
                    if held_back || self.outbox.retained_owed_with_room(outbound_max / 2) {
                        continue;
                    }
                    if let Some(end) = self.drain_lending() {
                        break 'session end;
                    }
                }
                self.release_idle_buffers();
            }
            // What was routed is written, and no reply of ours carried the
            // ACK of what we read: it goes now, before the wait. The
            // stream may be lent by now (`drain_lending`).
            if self.ack_owed && (self.acks_put_off || self.first_unanswered) {
                let next = match self.acks_put_off {
                    true => NextAcks::Delayed,
                    false => NextAcks::Kernels,
                };
                self.stream.with_ref(|stream| stream.acknowledge(next));
                self.ack_owed = false;
                self.first_unanswered = false;
            }
            // An idle client's read brings its own room (`read_into`).
            if self.rbuf_busy {
                self.make_room();
            }
            let (mut reader, mut writer) = (self.stream.half(), self.stream.half());
            // A failed write is answered after the `select!`: awaited in
            // its arm, the `select!`'s output was kept beside every wait.
            let write_failed: Option<End> = tokio::select! {
                written = writer.write(self.writes.next()), if !self.writes.is_empty() => match written {
                    Ok(0) => Some(End::Eof),
                    Ok(n) => {
                        self.writes.advance(n);
                        self.reads_ahead = 0;
                        self.ack_owed = false;
                        None
                    }
                    Err(error) => Some(error.into()),
                },
                read = read_into(&mut reader, &mut self.rbuf, self.rbuf_busy), if may_read => {
                    match read {
                        Ok(0) => break 'session End::Eof,
                        // Filled the room of an idle read, or a busy one's.
                        Ok(n) => {
                            self.rbuf_busy |= n == READ_ROOM_IDLE_BYTES;
                            self.ack_owed = true;
                        }
                        Err(error) => break 'session error.into(),
                    }
                    None
                }
                // A push, a takeover, a shutdown or the alarm (the
                // keepalive, a packet begun too long ago). The takeover is checked
                // here too: while our writes are stuck behind a client that
                // does not read, the check above never runs, and a
                // taken-over connection would live on with no session.
                () = self.outbox.notified() => match self.outbox.told() {
                    Told::Nothing => None,
                    Told::End(end) => break 'session end,
                    Told::Rung => match deadlines.rang(self.shared.millis()) {
                        Ok(next) => {
                            self.shared.set_alarm(self.conn, &self.outbox, next);
                            None
                        }
                        Err(end) => break 'session end,
                    },
                },
                // Packets a hold's budget left waiting, or acks put off:
                // the other tasks on this thread run first, then they go
                // on. Not while the outbox is full: the turn would
                // dispatch nothing (`handle_buffered`), and spin; the
                // write that makes room wakes us (a review found the spin).
                () = tokio::task::yield_now(), if self.has_work_waiting() && self.outbox.kept() < self.outbound_max() => None,
            };
            if let Some(end) = write_failed {
                break 'session Box::pin(self.last_words(end)).await;
            }
            self.release_idle_buffers();
        };
        if !planted!(self.shared.config, AlarmKeptAtEnd) {
            self.shared.alarms.clear(self.conn, deadlines.alarm());
        }
        end
    }

    /// The outbox drained into our writes, the stream lent if it held
    /// nothing to write; what ends the connection, if anything does.
    fn drain_lending(&mut self) -> Option<End> {
        match self.drain_outbox(true) {
            Drained::TakenOver => Some(End::TakenOver),
            // What was released before the failure goes first.
            Drained::StoreFailed if self.writes.is_empty() => Some(End::StoreFailed),
            Drained::StoreFailed | Drained::Open => None,
        }
    }

    /// One write of what is waiting, if the socket takes it now; the
    /// `select!` waits for it otherwise. What ends the connection, if the
    /// write failed.
    fn write_now(&mut self) -> Option<End> {
        // Polled once: a socket not ready is waited for, with the task's
        // own waker, by the `select!` that follows.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut writer = self.stream.half();
        match Pin::new(&mut writer).poll_write(&mut cx, self.writes.next()) {
            Poll::Pending => None,
            Poll::Ready(Ok(0)) => Some(End::Eof),
            Poll::Ready(Ok(n)) => {
                self.writes.advance(n);
                self.reads_ahead = 0;
                self.ack_owed = false;
                None
            }
            Poll::Ready(Err(error)) => Some(error.into()),
        }
    }

    /// Lends the stream for the session to the tasks that route to us,
    /// to write while we wait with nothing to write (`write_through.rs`);
    /// taken back when the session ends. Only a plain socket's: TLS
    /// and WebSocket keep what they are given until their owner flushes,
    /// and a topic alias we send is ours to choose.
    fn lend_stream(&mut self) {
        let plain = matches!(self.stream.get_mut(), Either::Left(Either::Left(_)));
        if plain && !self.link.sends_aliases() {
            // SAFETY: the stream stays in place until `run` withdraws it
            // after the session (or the drop does, if the task ends
            // first), and is lendable only between a drain that finds
            // nothing to write and the end of the next wait, when this task
            // does not write to it (`Outbox::drain`).
            let lent = unsafe { Lent::of(&self.stream) };
            self.outbox.offer_writes(lent);
        }
    }

    /// Whether to read input already waiting before we write, so that the
    /// replies to it (and the messages its acks release) go in the same
    /// write; a few reads at most, so writes are not starved.
    fn reads_before_write(&mut self, may_read: bool) -> bool {
        if self.writes.is_empty() {
            self.reads_ahead = 0;
            return false;
        }
        may_read && self.reads_ahead < READS_AHEAD_MAX
    }

    fn outbound_max(&self) -> usize {
        self.shared.config.outbound_packets_max
    }

    /// Handles every whole packet buffered, in batches, while the outbox
    /// has room: our own replies wait there too, so while it is full we
    /// stop decoding (and so reading), and the client is slowed, not us.
    /// Returns how many packets were handled; a batch that only went on
    /// with work a hold left waiting counts as full (`handle_batch`), so a
    /// count of one is a lone packet but for a turn with room for one.
    fn handle_buffered(&mut self) -> Result<usize, End> {
        let outbound_max = self.outbound_max();
        let mut decoded = 0;
        loop {
            let room = outbound_max.saturating_sub(self.outbox.kept());
            if room == 0 {
                return Ok(decoded);
            }
            let batch = room.min(BATCH_MAX);
            let handled = self.handle_batch(batch)?;
            decoded += handled;
            // A batch cut short between holds waits for the next turn.
            if handled < batch || self.has_work_waiting() {
                return Ok(decoded);
            }
        }
    }

    /// An idle connection should not hold a burst's buffers. A BytesMut's
    /// capacity hides what it has advanced past, so the largest length seen
    /// stands for the allocation.
    fn release_idle_buffers(&mut self) {
        self.writes.release_when_empty(BUFFER_KEPT_BYTES);
        self.note_size();
        // An idle client's reads need no buffer kept (`read_into`).
        let idle = !self.rbuf_busy && self.rbuf.capacity() > 0;
        if self.rbuf.is_empty() && (self.rbuf_big || idle) {
            self.rbuf = BytesMut::new();
            self.rbuf_big = false;
            self.rbuf_busy = false;
        }
    }

    /// Room for the next read. An idle client's SUBSCRIBE and PINGREQs, and
    /// a small PUBLISH, fit in `READ_ROOM_IDLE_BYTES`, and 10,000 idle
    /// connections should not hold more; a busy client's batches would then
    /// take several reads each, so once a read has filled its room, reads
    /// get `READ_ROOM_BYTES`.
    fn make_room(&mut self) {
        let room = if self.rbuf_busy {
            READ_ROOM_BYTES
        } else {
            READ_ROOM_IDLE_BYTES
        };
        if self.rbuf.capacity() - self.rbuf.len() < room {
            self.rbuf.reserve(room);
        }
    }

    fn note_read(&mut self) {
        self.rbuf_busy |= self.rbuf.len() == self.rbuf.capacity();
    }

    /// Notes a buffer grown past what is kept once empty.
    fn note_size(&mut self) {
        self.rbuf_big |= self.rbuf.len() > BUFFER_KEPT_BYTES;
    }

    /// Reads what the socket already holds, if anything, without waiting:
    /// whether there was something.
    async fn read_ahead(&mut self) -> Result<bool, End> {
        self.make_room();
        match self.read_waiting().await {
            Some(Ok(0)) => Err(End::Eof),
            Some(Ok(_)) => {
                self.note_read();
                self.note_size();
                self.ack_owed = true;
                Ok(true)
            }
            Some(Err(error)) => Err(error.into()),
            None => Ok(false),
        }
    }

    /// One read of what the socket already holds, without waiting for more:
    /// `None` when nothing is there yet.
    async fn read_waiting(&mut self) -> Option<io::Result<usize>> {
        let read = self.stream.get_mut().read_buf(&mut self.rbuf);
        tokio::pin!(read);
        std::future::poll_fn(|cx| match read.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// The client closed (our write failed, or a read found its end); but
    /// it may have said DISCONNECT first, and then its will must not be
    /// sent. Reads what it sent before closing, for a bounded time, and
    /// handles it, a route in slices to its end. Boxed where it is awaited:
    /// in place, its state (a timer among it) made every idle connection's
    /// task larger for good.
    async fn last_words(&mut self, end: End) -> End {
        let read_rest = async {
            loop {
                match self.handle_batch(BATCH_MAX) {
                    Ok(BATCH_MAX) => continue,
                    Ok(_) if self.has_work_waiting() => continue,
                    Ok(_) => {}
                    Err(end) => return Some(end),
                }
                match self.stream.get_mut().read_buf(&mut self.rbuf).await {
                    Ok(n) if n > 0 => {}
                    _ => return None,
                }
            }
        };
        match tokio::time::timeout(LAST_WORDS_WAIT, read_rest).await {
            Ok(Some(End::Disconnect)) => End::Disconnect,
            _ => end,
        }
    }

    /// Decodes up to `max` buffered packets, then handles them under the
    /// routing state's lock and queues what they caused; returns how
    /// many were decoded. Fewer than `max` means the buffer holds no whole
    /// packet. Decoding is done before the lock: the others wait only for
    /// the broker's own work. What the last batch left waiting goes first,
    /// in a turn of its own while a hold's share does not take it all
    /// (then `max` is returned, as if the batch were full).
    fn handle_batch(&mut self, max: usize) -> Result<usize, End> {
        if self.has_work_waiting() {
            self.dispatch_hold()?;
            if self.has_work_waiting() {
                return Ok(max);
            }
        }
        let mut decoded = Ok(());
        let mut packets = Queues::take(&mut self.queues, |q| &mut q.inbound);
        while packets.len() < max {
            match self.decode() {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => break,
                Err(end) => {
                    decoded = Err(end);
                    break;
                }
            }
        }
        let handled = packets.len();
        let result = self.handle_all(packets.drain(..), decoded.is_err());
        // As with `draining`: a busy connection keeps its batch's room, an
        // idle one allocates its few packets' again rather than hold it.
        let keep = packets.capacity() > QUEUE_KEPT_PACKETS;
        Queues::put(&mut self.queues, |q| &mut q.inbound, packets, keep);
        result.and(decoded).map(|()| handled)
    }

    /// The packets of one batch, in order, until one ends the connection:
    /// the link answers what it can, and the rest go to the broker under
    /// one lock, or the first hold's share of them if they fan out widely
    /// or match many filters; the rest wait in `dispatching`.
    fn handle_all(
        &mut self,
        packets: impl Iterator<Item = Packet>,
        ending: bool,
    ) -> Result<(), End> {
        let bounds = Bounds::of(&self.shared.config);
        let mut refused = Ok(());
        let mut publishes = 0;
        let mut waiting = Queues::take(&mut self.queues, |q| &mut q.dispatching);
        for packet in packets {
            publishes += u64::from(matches!(packet, Packet::Publish(_)));
            match self.link.inbound(packet) {
                Ok(Inbound::Reply(reply)) => {
                    self.outbox.push(reply, bounds);
                }
                Ok(Inbound::Broker(packet)) => waiting.push_back(packet),
                Err(end) => {
                    refused = Err(end);
                    break;
                }
            }
        }
        self.shared.traffic.received_messages(publishes);
        let mut dispatched = self.dispatch_waiting(waiting);
        // The connection ends (a packet refused, or input that does not
        // decode): what came before is still the broker's, and there is no
        // later turn for it.
        let ending = ending || refused.is_err();
        while ending && dispatched.is_ok() && self.has_work_waiting() {
            dispatched = self.dispatch_hold();
        }
        dispatched.and(refused)
    }

    /// Whether a hold's budget left work for the next turn: packets, or a
    /// message still being routed.
    fn has_work_waiting(&self) -> bool {
        self.routing
            || self
                .queues
                .as_ref()
                .is_some_and(|q| !q.dispatching.is_empty())
    }

    /// Dispatches the packets waiting for the broker, in order, under one
    /// hold of its lock, until they have caused `EFFECTS_PER_HOLD` packets
    /// or `WORK_PER_HOLD` work on the subscription index: the others wait
    /// for a bounded amount of work, not for 64 publishes to a thousand
    /// subscribers each, nor for 64 walks over one client's overlapping
    /// filters, nor for 64 SUBSCRIBEs of a hundred deep filters each. The rest wait
    /// for the connection's next turn, so that the tasks that share its
    /// thread run between holds too.
    fn dispatch_hold(&mut self) -> Result<(), End> {
        let waiting = Queues::take(&mut self.queues, |q| &mut q.dispatching);
        self.dispatch_waiting(waiting)
    }

    /// `dispatch_hold` for the packets of `waiting`, taken out of `queues`.
    fn dispatch_waiting(&mut self, mut waiting: VecDeque<Packet>) -> Result<(), End> {
        // A batch of pings, or of nothing, costs no hold.
        if !self.routing && waiting.is_empty() {
            let keep = waiting.capacity() > QUEUE_KEPT_PACKETS;
            Queues::put(&mut self.queues, |q| &mut q.dispatching, waiting, keep);
            return Ok(());
        }
        // The last read's: what it brought came then, what earlier ones
        // brought before.
        let arrived = self.stream.get_mut().last_arrival();
        let (conn, shared) = (self.conn, &self.shared);
        let outbound_max = shared.config.outbound_packets_max;
        let routing = self.routing;
        // Acknowledgements alone, with the lock taken (by a fan-out's
        // publisher routing, say), wait for the task's next turn rather
        // than this thread for the lock: the other tasks on the thread
        // write what was routed to them meanwhile. A few times in a row at
        // most. A PUBLISH waits for the lock, as its client waits for us;
        // a SUBSCRIBE too, as it is in force from its arrival on.
        let mut may_put_off = !routing
            && self.put_off < PUT_OFF_MAX
            && waiting.iter().all(|p| {
                matches!(
                    p,
                    Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)
                )
            });
        // A hold ended by fan-out is followed by the next at once: others
        // on other threads take the lock between them, and the batch's
        // deliveries still go out in few writes (yielding here halved
        // fan-out's rate: each subscriber woke for every tenth message).
        // One ended by work on the index waits for the next turn.
        let dispatched = loop {
            let hold = |state: &mut super::State| {
                let work = state.broker.index_work();
                // A message in slices goes on first; what follows it waits.
                if routing && state.broker.resume_work(conn) {
                    return Ok(Hold::Routing);
                }
                while let Some(packet) = waiting.pop_front() {
                    Link::dispatch(&mut state.broker, conn, packet, arrived)?;
                    if state.broker.work_pending(conn) {
                        return Ok(Hold::Routing);
                    }
                    if waiting.is_empty() {
                        break;
                    }
                    if state.broker.index_work() - work >= WORK_PER_HOLD {
                        return Ok(Hold::WorkDone);
                    }
                    if state.broker.effects_queued() >= EFFECTS_PER_HOLD {
                        return Ok(Hold::FannedOut);
                    }
                }
                // A SUBSCRIBE's retained messages follow its SUBACK in the
                // hold that ends the batch, as far as there is room; the
                // rest in slices. (When the batch's last packet filled a
                // hold and ended it, they once stayed owed for good.)
                state.send_retained(conn, outbound_max);
                Ok(Hold::Done)
            };
            let held = if std::mem::take(&mut may_put_off) {
                match shared.try_with_broker(hold) {
                    Some(held) => held,
                    None => {
                        self.put_off += 1;
                        if planted!(shared.config, PutOffAcksDropped) {
                            waiting.clear();
                        }
                        Queues::put(&mut self.queues, |q| &mut q.dispatching, waiting, true);
                        return Ok(());
                    }
                }
            } else {
                shared.with_broker(hold)
            };
            match held {
                Ok(Hold::FannedOut) => {}
                other => break other,
            }
        };
        self.put_off = 0;
        self.routing = matches!(dispatched, Ok(Hold::Routing));
        let dispatched = dispatched.map(drop);
        // What an error left undispatched is dropped with the connection.
        if dispatched.is_err() {
            waiting.clear();
        }
        // As with `draining`: a busy connection keeps its batch's room, an
        // idle one allocates its few packets' again rather than hold it.
        let keep = !waiting.is_empty() || waiting.capacity() > QUEUE_KEPT_PACKETS;
        Queues::put(&mut self.queues, |q| &mut q.dispatching, waiting, keep);
        dispatched
    }
}

/// One read into `rbuf`, for the connection's wait. A busy client's goes
/// straight into it, in the room `make_room` left. An idle client's goes
/// through `READ_ROOM_IDLE_BYTES` on the stack, and is added to `rbuf` only
/// once it has come: waiting, an idle connection holds no read buffer. A
/// read that is not ready takes nothing, so either is cancel-safe.
fn read_into<'a, R: AsyncRead + Unpin>(
    reader: &'a mut R,
    rbuf: &'a mut BytesMut,
    busy: bool,
) -> impl Future<Output = io::Result<usize>> + 'a {
    if busy {
        return Either::Left(reader.read_buf(rbuf));
    }
    Either::Right(std::future::poll_fn(move |cx| {
        let mut room = [std::mem::MaybeUninit::uninit(); READ_ROOM_IDLE_BYTES];
        let mut room = ReadBuf::uninit(&mut room);
        ready!(Pin::new(&mut *reader).poll_read(cx, &mut room))?;
        rbuf.extend_from_slice(room.filled());
        Poll::Ready(Ok(room.filled().len()))
    }))
}

/// How a hold of the routing lock for a connection's packets ended.
/// Only the batch's last hold is `Done`: the others leave packets waiting.
enum Hold {
    Done,
    /// At `EFFECTS_PER_HOLD`: the next hold may follow at once.
    FannedOut,
    /// At `WORK_PER_HOLD`: the next waits for the connection's next turn.
    WorkDone,
    /// A message is still being routed: its next slice, and the packets
    /// after it, wait for the connection's next turn.
    Routing,
}

/// How long a connection whose write failed keeps reading for a DISCONNECT,
/// and how long one closed for its client's fault reads before it closes.
const LAST_WORDS_WAIT: Duration = Duration::from_secs(1);

/// Reads that may go before a waiting write, one after another.
const READS_AHEAD_MAX: u8 = 4;

/// Holds a connection puts off while the lock is taken, one after another.
const PUT_OFF_MAX: u8 = 3;
/// Packets decoded and handled as one batch at most; under one lock on the
/// routing state unless they fan out past `EFFECTS_PER_HOLD`.
const BATCH_MAX: usize = 64;

/// Packets that a batch's publishes may send, at which its lock is let go
/// and taken again for the rest: about half a millisecond of fan-out.
const EFFECTS_PER_HOLD: usize = 1024;

/// Work on the subscription index (trie nodes and subscriptions looked at
/// by publishes, filter levels put in or taken out by SUBSCRIBE and
/// UNSUBSCRIBE) that a batch may do, at which its lock is let go and taken
/// again for the rest: about half a millisecond where the trie is out of cache (a topic
/// that 65,536 overlapping filters match, 196,607 of them, took 6.5 ms),
/// while a batch of ordinary publishes, a few dozen each, stays in one
/// hold. One publish that visits more is routed in slices of its own
/// (`broker/fanout.rs`), a hold each.
const WORK_PER_HOLD: u64 = 16_384;

/// Room for each read once a client has shown it sends more than a few bytes.
const READ_ROOM_BYTES: usize = 4096;
/// Room for each read until then: on the stack while the read is polled
/// (`read_into`), or reserved for a read of what is already waiting
/// (`read_ahead`). It is kept whole before each read, so that filling it means this many bytes
/// came at once, not that a previous packet left little room.
const READ_ROOM_IDLE_BYTES: usize = 512;
/// Buffers above this are released once empty.
const BUFFER_KEPT_BYTES: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::traffic::Counted;

    /// The size of the future a six-argument `f` returns, without calling it.
    fn future_size<A, B, C, D, E, G, F: Future>(_: fn(A, B, C, D, E, G) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle connection keeps its task's future: what is awaited in
    /// place (a handshake, a timer, a path taken only at the end) adds to
    /// it for good. It was 1,248 bytes before issue 15's round, 1,000 after
    /// (1,008 with the write queue's parts boxed beside it), 928 once the
    /// session no longer waited on the cancellation token and `last_words`
    /// was boxed (`last_words` awaited in place made it 1,000, the CONNECT
    /// handshake awaited in place 1,032), then 816 with the packet queues
    /// boxed while busy, the identity a `Box<str>` and the deadlines' spans
    /// in milliseconds; 872 with the stream in place, unsplit (`duplex.rs`);
    /// 880 with the socket's last receive timestamp (`net/arrival.rs`).
    /// Then 624 in release, 632 in the test profile this test runs in (its
    /// `Connection` is 8 bytes larger): the outbox's own waker for tokio's `Notify` (56), CONNECT
    /// inside the boxed start and the end boxed (`serve`'s frame and the
    /// match on CONNECT's result kept beside the session, 104), no result
    /// of the `select!` kept across the wait on `last_words` (40), the
    /// connection its own drop guard (24), and locals read where needed.
    /// Then 488 in release and 496 here, with the keepalive's `Sleep`
    /// (112) replaced by an alarm in the server's map (`alarms.rs`) and the
    /// deadlines' times in milliseconds (8).
    /// tokio's task cell holds the future with its registration and
    /// tracker (32 bytes), its own core (24), header (32) and trailer (48):
    /// future + 136 bytes, aligned to 128 (read with `-Zprint-type-sizes`).
    /// Up to 504 in release the cell is 640 bytes, a block of 640 in
    /// mimalloc; 8 bytes more would cost every connection 128. Bounded at
    /// 512 here, where release has 8 to spare: what grows here grows there.
    #[test]
    fn a_connections_task_future_stays_small() {
        type S = Counted<crate::net::StampedTcp>;
        let size = future_size(run::<S>);
        assert!(size <= 512, "a connection's task future is {size} bytes");
    }
}
