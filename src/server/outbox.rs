//! A connection's outbound queue. The router pushes to it without waiting;
//! the connection's task drains it into one buffer and one write. It is
//! bounded: QoS 0 beyond the bound is dropped, and the connection stops
//! reading its own client until its writes catch up.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use std::sync::Arc;

use bytes::Bytes;

use super::traffic::Traffic;
use super::write_through::Lent;
use super::writes::Writes;
use crate::broker::Owing;
use crate::codec::{Packet, PacketId, QoS, SharedFrame};
use crate::config::{planted, Config};
use crate::link::End;

#[derive(Default)]
pub struct Outbox {
    /// Its waker too: a `tokio::sync::Notify` beside the state made the
    /// outbox 16 bytes larger, and its `Notified` future, which every
    /// idle connection's task keeps, 56 bytes larger than `notified`'s.
    state: Mutex<State>,
}

/// The bounds of an outbound queue. The same for every connection, they
/// come with each push: kept in each outbox, they made it 120 bytes, and
/// with its `Arc` one allocation of 136 bytes, a block of 160 where 112
/// now do (`an_outbox_and_its_arc_fit_112_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Packets that may wait; QoS 0 PUBLISHes beyond are dropped.
    pub packets: usize,
    /// Bytes of QoS 0 PUBLISHes that may wait; 0 is no limit.
    pub shed_bytes: usize,
}

impl Bounds {
    pub fn of(config: &Config) -> Bounds {
        let shed_bytes = match planted!(config, OutboundWithoutByteLimit) {
            true => 0,
            false => config.outbound_bytes_max,
        };
        Bounds {
            packets: config.outbound_packets_max,
            shed_bytes,
        }
    }
}

/// What waits to be written: a packet, or a PUBLISH shared with the other
/// subscribers that get the same bytes, encoded once: at QoS 0 as it is,
/// at QoS 1 with our packet id written in.
#[derive(Debug)]
pub enum Outbound {
    Packet(Packet),
    Frame(Arc<SharedFrame>),
    FrameAs(Arc<SharedFrame>, PacketId),
    /// The rest of packets another task began to write to the socket
    /// (`Outbox::write_through`): it goes first, whole.
    Rest(Bytes),
}

impl Outbound {
    /// QoS 0 PUBLISHes may be dropped when the queue is full; nothing else.
    fn sheddable(&self) -> bool {
        match self {
            Outbound::Packet(Packet::Publish(p)) => p.qos == QoS::AtMostOnce,
            Outbound::Packet(_) | Outbound::FrameAs(..) | Outbound::Rest(_) => false,
            Outbound::Frame(_) => true,
        }
    }

    pub(super) fn is_publish(&self) -> bool {
        matches!(
            self,
            Outbound::Packet(Packet::Publish(_)) | Outbound::Frame(_) | Outbound::FrameAs(..)
        )
    }

    /// Whether it must wait for the commit of the hold that made it. A QoS
    /// 0 or 1 PUBLISH to a subscriber acknowledges nothing, and a crash
    /// before its commit can only make it come again, which QoS 1 allows:
    /// holding it made a subscriber's window of 20 wait for a commit each
    /// (sync fan-in at 0.13 of in memory). Everything else waits: replies
    /// acknowledge, and a QoS 2 PUBLISH or PUBREL carries a packet id and a
    /// stage that must be on disk before the client sees them.
    fn waits_for_commit(&self) -> bool {
        match self {
            Outbound::Packet(Packet::Publish(p)) => p.qos == QoS::ExactlyOnce,
            Outbound::Packet(_) => true,
            // QoS 0, and QoS 1 (`Broker::send_frame_as` shares no QoS 2).
            Outbound::Frame(_) | Outbound::FrameAs(..) => false,
            Outbound::Rest(_) => false,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Outbound::Packet(packet) => packet.kind(),
            Outbound::Frame(_) | Outbound::FrameAs(..) => "PUBLISH",
            Outbound::Rest(_) => "rest of a write",
        }
    }

    /// About what it holds: its bytes on the wire, near enough.
    fn bytes(&self) -> usize {
        match self {
            Outbound::Packet(Packet::Publish(p)) => p.weight(),
            Outbound::Packet(_) => 0,
            Outbound::Frame(frame) | Outbound::FrameAs(frame, _) => frame.len(),
            Outbound::Rest(bytes) => bytes.len(),
        }
    }

    /// Encodes a frame fanned out into `writes`, as a connection that
    /// names no topics by alias does (`Connection::write_frame`); false
    /// for anything else.
    pub(super) fn encode_frame(&self, writes: &mut Writes) -> bool {
        match self {
            Outbound::Frame(frame) => writes.encoded_frame(frame, None),
            Outbound::FrameAs(frame, id) => writes.encoded_frame(frame, Some(*id)),
            Outbound::Packet(_) | Outbound::Rest(_) => return false,
        }
        true
    }
}

#[derive(Default)]
struct State {
    packets: VecDeque<Outbound>,
    /// Packets in `packets` that may not be dropped: all but QoS 0 PUBLISH.
    /// This and the next are 32 bits, and `retained_owed` is here, not an
    /// atomic beside the lock, so that the lent stream fits: 112 bytes
    /// with the `Arc`'s counts, not 128.
    kept: u32,
    /// Bytes of the ones that may, at most `u32::MAX`.
    shed_bytes: u32,
    /// The session owes retained messages that wait for room here: the
    /// connection asks for the next slice when it has some.
    retained_owed: bool,
    taken_over: bool,
    /// The server shuts down (`Outbox::shut_down`).
    shut_down: bool,
    /// The connection's alarm rang (`alarms.rs`).
    rung: bool,
    /// Whether the committer knows to wake it (`Outbox::gate_registered`).
    registered: bool,
    /// Only with a store, and only while packets wait for its commit:
    /// inline, with the counters that placed them, they cost every idle
    /// connection 40 bytes.
    gates: Option<Box<Gates>>,
    /// Something happened since the connection last looked (`notified`).
    woken: bool,
    /// The connection's task, while it waits in `notified`: taken by a
    /// wake, dropped with the wait, so that a task is not woken for
    /// nothing, nor its memory kept by the waker, once it waits no more.
    waker: Option<Waker>,
    /// The connection's stream, from the start of its session to its
    /// end (`offer_writes`)...
    lent: Option<Lent>,
    /// ...which a task that routes to it may write to while this is set:
    /// from a `drain` that found nothing for the connection to write to the
    /// end of its next wait in `notified`.
    lendable: bool,
    /// A turn holds back the wake for what is pushed here: it writes it
    /// or wakes the connection when it ends (`write_through`).
    held: bool,
}

/// Packets that may not be written before a commit of the store: from the
/// place in the queue at which each run begins, the commit it waits for.
/// Those behind them wait too, to keep the connection's order.
#[derive(Default)]
struct Gates {
    /// Each run's place counts packets from the queue's head as it was when
    /// the first run was gated: `drained` of them have been written since.
    runs: VecDeque<(u64, u64)>,
    drained: u64,
}

/// What woke a connection besides packets (`Outbox::told`).
#[derive(Debug)]
pub enum Told {
    Nothing,
    Rung,
    End(End),
}

/// What draining found besides packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    Open,
    TakenOver,
    /// Packets still wait for a commit, and the store has failed: they
    /// will never be released (`Connection::drain_outbox` says so).
    StoreFailed,
}

impl Outbox {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `packet`; returns false when a QoS 0 PUBLISH was dropped
    /// because the queue is at its bounds. Everything else is queued:
    /// QoS 1/2 messages are bounded by the inflight window, and the
    /// connection's own replies by its paused reads.
    pub fn push(&self, packet: Packet, bounds: Bounds) -> bool {
        self.push_all(std::iter::once(Outbound::Packet(packet)), bounds) == 0
    }

    /// Queues `packets` in order under one lock and with one wake, each as
    /// `push` would; returns how many QoS 0 PUBLISHes were dropped.
    pub fn push_all(&self, packets: impl Iterator<Item = Outbound>, bounds: Bounds) -> usize {
        self.push_gated(packets, bounds, 0)
    }

    /// `push_all` for packets that may not be written before commit
    /// `gate` of the store (0: none).
    pub fn push_gated(
        &self,
        packets: impl Iterator<Item = Outbound>,
        bounds: Bounds,
        gate: u64,
    ) -> usize {
        self.push_routed(packets, bounds, gate, false).0
    }

    /// `push_gated`, and when `may_write_through` and the connection has
    /// lent its stream with nothing else queued, holds back the wake for
    /// the routing task to write them (`write_through`); returns the QoS 0
    /// PUBLISHes dropped and whether it held the wake back.
    pub fn push_routed(
        &self,
        packets: impl Iterator<Item = Outbound>,
        bounds: Bounds,
        gate: u64,
        may_write_through: bool,
    ) -> (usize, bool) {
        let mut state = self.state();
        // Held already: the turn that holds it writes this too, or wakes.
        let held = state.held;
        let mut through = !held
            && may_write_through
            && state.lendable
            && state.lent.is_some()
            && state.packets.is_empty();
        let mut dropped = 0;
        let mut queued = false;
        for packet in packets {
            through &= matches!(packet, Outbound::Frame(_) | Outbound::FrameAs(..));
            let sheddable = packet.sheddable();
            let waits = gate > 0 && packet.waits_for_commit();
            let bytes = if sheddable { packet.bytes() } else { 0 };
            // One is always let through to an empty queue, however large.
            let over_bytes = bounds.shed_bytes > 0
                && state.shed_bytes > 0
                && state.shed_bytes as usize + bytes > bounds.shed_bytes;
            if sheddable && (state.packets.len() >= bounds.packets || over_bytes) {
                dropped += 1;
                continue;
            }
            state.kept += u32::from(!sheddable);
            state.shed_bytes = state.shed_bytes.saturating_add(clamp(bytes));
            state.packets.push_back(packet);
            if waits {
                let behind = state.packets.len() as u64 - 1;
                let gates = state.gates.get_or_insert_with(Box::default);
                // One behind a packet that waits waits too: the order holds.
                if gates.runs.back().is_none_or(|&(_, g)| g < gate) {
                    let at = gates.drained + behind;
                    gates.runs.push_back((at, gate));
                }
            }
            queued = true;
        }
        // Gated packets wait for a commit, not for a write.
        through &= queued && state.gates.is_none();
        state.held |= through;
        if queued && !state.held {
            wake(state);
        }
        (dropped, through)
    }

    /// Lends the connection's stream, from now until `withdraw_writes`,
    /// to be written only from a `drain` that lends it to the end of the
    /// next `notified`: the connection must not move it meanwhile.
    pub fn offer_writes(&self, lent: Lent) {
        self.state().lent = Some(lent);
    }

    /// Takes the stream back.
    pub fn withdraw_writes(&self) {
        let mut state = self.state();
        state.lent = None;
        state.lendable = false;
    }

    /// The rest of a PUBLISH another task began to write, if it waits at
    /// the head of the queue.
    pub fn take_rest(&self) -> Vec<Bytes> {
        let mut state = self.state();
        let mut rest = Vec::new();
        while let Some(Outbound::Rest(_)) = state.packets.front() {
            if let Some(Outbound::Rest(bytes)) = state.packets.pop_front() {
                state.kept -= 1;
                rest.push(bytes);
            }
        }
        rest
    }

    /// A wake held back for a write-through that did not come.
    pub fn wake_now(&self) {
        let mut state = self.state();
        state.held = false;
        wake(state);
    }

    /// Writes what waits to the connection's stream if it is still lent and
    /// takes it now; wakes the connection for whatever is left. Its task
    /// writes nothing while its stream is lent, and takes the stream back
    /// under this lock, so the order of its writes holds. Whether it wrote
    /// any of it.
    pub fn write_through(&self, traffic: &Traffic) -> bool {
        let mut state = self.state();
        state.held = false;
        let written = match state.lent {
            Some(lent) if state.lendable && state.gates.is_none() => SCRATCH
                .with_borrow_mut(|writes| write_lent(lent, &mut state.packets, writes, traffic)),
            _ => false,
        };
        if written {
            state.kept = state.packets.len() as u32;
            state.shed_bytes = 0;
        }
        if !state.packets.is_empty() {
            wake(state);
        }
        written
    }

    /// Packets waiting to be written.
    pub fn waiting(&self) -> usize {
        self.state().packets.len()
    }

    /// Bytes of the QoS 0 PUBLISHes waiting, added up packet by packet
    /// (not read from the count the limit is kept with), if two or more
    /// wait: one alone is let into an empty queue whatever its size. For
    /// the census's peaks.
    pub fn shed_bytes_of_two_or_more(&self) -> usize {
        let state = self.state();
        let mut sheddable = state.packets.iter().filter(|p| p.sheddable());
        match (sheddable.next(), sheddable.next()) {
            (Some(first), Some(second)) => {
                first.bytes() + second.bytes() + sheddable.map(Outbound::bytes).sum::<usize>()
            }
            _ => 0,
        }
    }

    /// Waiting packets by kind, for reports.
    pub fn kinds(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut kinds = std::collections::BTreeMap::new();
        for packet in &self.state().packets {
            *kinds.entry(packet.kind()).or_default() += 1;
        }
        kinds
    }

    /// Waiting packets that cannot be dropped. The connection pauses its
    /// reads on this, not on `waiting`: a flood of QoS 0 for the client is
    /// shed, and must not stop us reading its PINGREQs.
    pub fn kept(&self) -> usize {
        self.state().kept as usize
    }

    /// What woke its connection besides packets: a newer connection has
    /// taken its client id, the server shuts down, or its alarm rang.
    pub fn told(&self) -> Told {
        let mut state = self.state();
        match (state.taken_over, state.shut_down) {
            (true, _) => Told::End(End::TakenOver),
            (false, true) => Told::End(End::Shutdown),
            (false, false) if std::mem::take(&mut state.rung) => Told::Rung,
            (false, false) => Told::Nothing,
        }
    }

    /// Its connection's alarm rang: it looks at its deadlines.
    pub fn ring(&self) {
        let mut state = self.state();
        state.rung = true;
        wake(state);
    }

    /// Tells a serving connection that the server shuts down: it waits on
    /// its outbox, and a second waiter, on the server's cancellation
    /// token, cost every idle connection's task 80 bytes.
    pub fn shut_down(&self) {
        let mut state = self.state();
        state.shut_down = true;
        wake(state);
    }

    pub fn take_over(&self) {
        let mut state = self.state();
        state.taken_over = true;
        wake(state);
    }

    /// Moves every waiting packet to `into`, which must be empty; swapping
    /// keeps both queues' capacity, so a steady stream allocates nothing
    /// (and an empty `into` leaves an idle outbox holding nothing).
    /// Only packets that wait for no commit after `committed` are moved.
    /// With `lend`, if none are, the connection's task will wait with
    /// nothing to write, writing nothing until its next `notified` ends:
    /// others may write to its stream meanwhile (`write_through`).
    pub fn drain(&self, into: &mut VecDeque<Outbound>, committed: u64, lend: bool) -> Drained {
        debug_assert!(into.is_empty());
        let mut state = self.state();
        let state = &mut *state;
        let gated = state.gates.as_deref_mut().and_then(|gates| {
            let runs = &mut gates.runs;
            while runs.front().is_some_and(|&(_, gate)| gate <= committed) {
                runs.pop_front();
            }
            let &(at, _) = runs.front()?;
            Some((at, &mut gates.drained))
        });
        match gated {
            None => {
                state.gates = None;
                std::mem::swap(&mut state.packets, into);
                state.kept = 0;
                state.shed_bytes = 0;
            }
            Some((at, drained)) => {
                let free = usize::try_from(at - *drained).expect("in memory");
                *drained += free as u64;
                into.extend(state.packets.drain(..free));
                for packet in into.iter() {
                    if packet.sheddable() {
                        state.shed_bytes = state.shed_bytes.saturating_sub(clamp(packet.bytes()));
                    } else {
                        state.kept -= 1;
                    }
                }
            }
        }
        state.lendable = lend && into.is_empty();
        if state.taken_over {
            Drained::TakenOver
        } else {
            Drained::Open
        }
    }

    /// Whether retained messages are owed and at most `waiting_max`
    /// packets wait, so that the next slice has room.
    pub fn retained_owed_with_room(&self, waiting_max: usize) -> bool {
        let state = self.state();
        state.retained_owed && state.packets.len() <= waiting_max
    }

    /// What the last slice of retained messages left owed; `More` wakes
    /// the connection at once, to ask for the next one.
    pub fn set_retained_owed(&self, owing: Owing) {
        let mut state = self.state();
        state.retained_owed = owing != Owing::Nothing;
        if owing == Owing::More {
            wake(state);
        }
    }

    /// Whether its connection's next wait ends at once, without ending
    /// the wait it may be in as `notified` would.
    #[cfg(test)]
    pub fn woken(&self) -> bool {
        self.state().woken
    }

    #[cfg(test)]
    fn holds_gates(&self) -> bool {
        self.state().gates.is_some()
    }

    /// Whether packets wait for a commit.
    pub fn gated(&self) -> bool {
        self.state()
            .gates
            .as_ref()
            .is_some_and(|gates| !gates.runs.is_empty())
    }

    /// The store failed: wakes the connection to see that what it holds
    /// for a commit will never be released.
    pub fn commit_failed(&self) {
        let mut state = self.state();
        state.registered = false;
        wake(state);
    }

    /// Notes that the committer is to wake it; false if it already was.
    pub fn register_gate(&self) -> bool {
        !std::mem::replace(&mut self.state().registered, true)
    }

    /// After a commit: wakes the connection to write what it released;
    /// returns whether it still waits for a later commit (and so stays
    /// registered).
    pub fn commit_released(&self, committed: u64) -> bool {
        let mut state = self.state();
        let waits = (state.gates.as_ref())
            .and_then(|gates| gates.runs.back())
            .is_some_and(|&(_, g)| g > committed);
        state.registered = waits;
        wake(state);
        waits
    }

    /// Resolves after a push, a takeover, a shutdown, owed retained
    /// messages or a commit's news since the last time it resolved. Its
    /// end takes back a stream lent by `drain`.
    pub fn notified(&self) -> Notified<'_> {
        Notified(self)
    }
}

/// The wait of `Outbox::notified`.
pub struct Notified<'a>(&'a Outbox);

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.0.state();
        if std::mem::take(&mut state.woken) {
            return Poll::Ready(());
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.waker = None;
        state.lendable = false;
    }
}

thread_local! {
    /// Where `write_through` lays out what it writes, kept by each thread.
    static SCRATCH: std::cell::RefCell<Writes> = std::cell::RefCell::default();
}

/// A write-through's scratch buffer kept no larger than a connection's.
const SCRATCH_KEPT_BYTES: usize = 64 * 1024;

/// Writes `packets`, all frames fanned out, to `lent`; returns whether any
/// byte was written, and then leaves in `packets` only the rest of what
/// the socket did not take, as one `Outbound::Rest` per part. Writes
/// nothing if any packet is not such a frame.
fn write_lent(
    lent: Lent,
    packets: &mut VecDeque<Outbound>,
    writes: &mut Writes,
    traffic: &Traffic,
) -> bool {
    // Empty unless an earlier write-through on this thread unwound: its
    // bytes were another connection's.
    writes.clear();
    if !packets.iter().all(|packet| packet.encode_frame(writes)) {
        writes.clear();
        return false;
    }
    let mut written = false;
    while !writes.is_empty() {
        // SAFETY: found lent under the outbox's lock, which we hold.
        match unsafe { lent.write(writes.next()) } {
            Poll::Ready(Ok(n)) if n > 0 => {
                writes.advance(n);
                written = true;
            }
            // Full, failed or closed: the connection's task finds out.
            _ => break,
        }
    }
    if written {
        traffic.sent_messages(packets.len() as u64);
        packets.clear();
        packets.extend(writes.take_unwritten().map(Outbound::Rest));
    }
    writes.clear();
    writes.release_when_empty(SCRATCH_KEPT_BYTES);
    written
}

/// A byte count in 32 bits: past 4 GiB queued, the count stays there.
fn clamp(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Marks the outbox woken and wakes its connection's task, if it waits,
/// once the lock is let go: the task may run at once on another thread.
fn wake(mut state: MutexGuard<'_, State>) {
    state.woken = true;
    let waker = state.waker.take();
    drop(state);
    if let Some(waker) = waker {
        waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Ack, PacketId, Publish};
    use crate::topic::TopicName;

    /// Bounds of `n` packets and no byte limit.
    fn packets(n: usize) -> Bounds {
        Bounds {
            packets: n,
            shed_bytes: 0,
        }
    }

    fn qos0() -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: TopicName::new("t").unwrap(),
            packet_id: None,
            payload: bytes::Bytes::new(),
            properties: Default::default(),
        })
    }

    #[test]
    fn qos0_is_shed_at_the_limit_and_the_rest_is_kept() {
        let outbox = Outbox::default();
        let ack = Packet::PubAck(Ack::success(PacketId::new(1).unwrap()));
        assert!(outbox.push(qos0(), packets(2)));
        assert!(outbox.push(ack.clone(), packets(2)));
        assert!(
            !outbox.push(qos0(), packets(2)),
            "QoS 0 beyond the limit is dropped"
        );
        assert!(outbox.push(ack, packets(2)), "a reply is never dropped");
        assert_eq!((outbox.waiting(), outbox.kept()), (3, 2));
        let mut into = VecDeque::new();
        assert_eq!(outbox.drain(&mut into, u64::MAX, false), Drained::Open);
        assert_eq!(into.len(), 3);
        assert_eq!((outbox.waiting(), outbox.kept()), (0, 0));
    }

    #[test]
    fn qos0_is_shed_beyond_the_byte_limit_but_one_always_fits() {
        let sized = |n: usize| match qos0() {
            Packet::Publish(p) => Packet::Publish(Publish {
                payload: bytes::Bytes::from(vec![b'x'; n]),
                ..p
            }),
            _ => unreachable!(),
        };
        let weight = |n: usize| match sized(n) {
            Packet::Publish(p) => p.weight(),
            _ => unreachable!(),
        };
        let outbox = Outbox::default();
        let bounds = Bounds {
            packets: 10,
            shed_bytes: weight(60) + weight(30),
        };
        assert!(outbox.push(sized(5000), bounds), "one fits an empty queue");
        assert!(!outbox.push(sized(1), bounds), "then the queue is over");
        let mut into = VecDeque::new();
        outbox.drain(&mut into, u64::MAX, false);
        assert!(outbox.push(sized(60), bounds));
        assert!(!outbox.push(sized(60), bounds), "two of 60 would be over");
        assert!(outbox.push(sized(30), bounds), "60 and 30 fit exactly");
    }

    #[test]
    fn packets_wait_for_their_commit_and_those_behind_them_wait_too() {
        let outbox = Outbox::default();
        let ack = |id| Packet::PubAck(Ack::success(PacketId::new(id).unwrap()));
        let one = |p| std::iter::once(Outbound::Packet(p));
        outbox.push_gated(one(ack(1)), packets(10), 0);
        outbox.push_gated(one(ack(2)), packets(10), 5);
        outbox.push_gated(one(qos0()), packets(10), 0);
        outbox.push_gated(one(ack(3)), packets(10), 6);
        let ids = |into: &VecDeque<Outbound>| -> Vec<&'static str> {
            into.iter().map(Outbound::kind).collect()
        };
        let mut into = VecDeque::new();
        outbox.drain(&mut into, 4, false);
        assert_eq!(ids(&into), ["PUBACK"], "the ungated one before commit 5");
        assert_eq!((outbox.waiting(), outbox.kept()), (3, 2));
        into.clear();
        outbox.drain(&mut into, 5, false);
        assert_eq!(ids(&into), ["PUBACK", "PUBLISH"], "up to the one for 6");
        assert_eq!((outbox.waiting(), outbox.kept()), (1, 1));
        into.clear();
        outbox.drain(&mut into, 6, false);
        assert_eq!(ids(&into), ["PUBACK"]);
        assert_eq!((outbox.waiting(), outbox.kept()), (0, 0));
        assert!(!outbox.holds_gates(), "an outbox waiting for nothing");
        // Gated again, behind one that is not: placed from the queue as
        // it is now, not from where the first gates counted.
        into.clear();
        outbox.push_gated(one(qos0()), packets(10), 0);
        outbox.push_gated(one(ack(4)), packets(10), 7);
        outbox.drain(&mut into, 6, false);
        assert_eq!(ids(&into), ["PUBLISH"]);
        into.clear();
        outbox.drain(&mut into, 7, false);
        assert_eq!(ids(&into), ["PUBACK"]);
        assert!(!outbox.holds_gates());
    }

    #[test]
    fn qos0_and_qos1_publishes_wait_only_behind_what_waits() {
        let outbox = Outbox::default();
        let publish = |qos, id| {
            let Packet::Publish(p) = qos0() else {
                unreachable!()
            };
            Outbound::Packet(Packet::Publish(Publish {
                qos,
                packet_id: PacketId::new(id),
                ..p
            }))
        };
        outbox.push_gated(
            std::iter::once(publish(QoS::AtLeastOnce, 1)),
            packets(10),
            3,
        );
        outbox.push_gated(
            std::iter::once(publish(QoS::ExactlyOnce, 2)),
            packets(10),
            4,
        );
        outbox.push_gated(
            std::iter::once(publish(QoS::AtLeastOnce, 3)),
            packets(10),
            5,
        );
        let mut into = VecDeque::new();
        outbox.drain(&mut into, 2, false);
        assert_eq!(into.len(), 1, "QoS 1 goes before its commit");
        into.clear();
        outbox.drain(&mut into, 3, false);
        assert_eq!(
            into.len(),
            0,
            "QoS 2 waits for commit 4, and what is behind it"
        );
        outbox.drain(&mut into, 4, false);
        assert_eq!(into.len(), 2);
    }

    #[test]
    fn shed_bytes_are_added_up_when_two_or_more_wait() {
        let outbox = Outbox::default();
        let ack = Packet::PubAck(Ack::success(PacketId::new(1).unwrap()));
        assert!(outbox.push(qos0(), packets(10)));
        assert!(outbox.push(ack, packets(10)));
        assert_eq!(outbox.shed_bytes_of_two_or_more(), 0, "one alone");
        assert!(outbox.push(qos0(), packets(10)));
        let Packet::Publish(one) = qos0() else {
            unreachable!()
        };
        assert_eq!(
            outbox.shed_bytes_of_two_or_more(),
            2 * one.weight(),
            "two of them"
        );
    }

    /// Every connection's outbox is one allocation with its `Arc`'s two
    /// counts; up to 112 bytes it takes a block of 112, above one of 128.
    #[test]
    fn an_outbox_and_its_arc_fit_112_bytes() {
        let size = std::mem::size_of::<Outbox>() + 2 * std::mem::size_of::<usize>();
        assert!(
            size <= 112,
            "an outbox with its Arc's counts is {size} bytes"
        );
    }
}
