//! A session's QoS 1/2 messages on their way to its client, and the
//! broker-wide counts of them. The counts must always equal the sum over the
//! sessions, so the only code that changes a queue's length is here, and it
//! changes the count with it: `Outbox` is read from anywhere, and changed
//! only through `Counts`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::journal::{Key, Stored};
use super::tail::Tail;
use super::window_ids::WindowIds;
use super::{GroupId, Millis, SessionId};
use crate::codec::{PacketId, Publish, QoS};
use crate::prefetch::prefetch_whole;

/// A message on its way to one session.
#[derive(Debug, Clone)]
pub struct Message {
    /// As it will be sent, but for its packet id and the Message Expiry
    /// Interval, which is the time left when it is sent. Shared by the
    /// sessions that take a routed message as forwarded (`fanout.rs`):
    /// changed only through `Arc::make_mut`, which copies a shared one.
    pub publish: Arc<Publish>,
    pub expires_at: Option<Millis>,
    /// The shared subscription that chose this session, so that another
    /// member gets it if this session ends before acknowledging it.
    pub group: Option<GroupId>,
    /// The packet id it was sent with before, if it was sent and then put
    /// back in the queue because a resumed session's client allows fewer
    /// messages in flight: it is sent again under that id, with DUP.
    pub resend_id: Option<PacketId>,
    /// What another member's copy is made from.
    pub published: Published,
    /// Its place in its session's queue, for the store; 0 until it is in
    /// an outbox, which numbers it.
    pub seq: u64,
}

/// QoS and retain flag as published, before one session's copy lowered them.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub qos: QoS,
    pub retain: bool,
}

impl Message {
    /// What it counts against a session's queue bytes: payload, topic and
    /// properties, all of which a client chooses.
    pub fn weight(&self) -> usize {
        self.publish.weight()
    }
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: PacketId,
    pub stage: Stage,
    /// The message's `seq`, kept once its PUBLISH is done with.
    pub seq: u64,
}

#[derive(Debug, Clone)]
pub enum Stage {
    /// QoS 1 sent, PUBACK awaited; QoS 2 sent, PUBREC awaited. The message is
    /// kept for redelivery with DUP.
    Unacked(Message),
    /// QoS 2 PUBREL sent, PUBCOMP awaited.
    Released,
}

/// QoS 1/2 messages to one client: those sent and not yet acknowledged
/// (`inflight`, in send order) and those waiting for room in the window.
#[derive(Debug)]
pub struct Outbox {
    /// `None` while nothing is in flight or waiting, as for most idle
    /// sessions: inline, the empty queues cost each one 144 bytes.
    queues: Option<Box<Queues>>,
    last_id: Option<PacketId>,
    /// The most QoS 1/2 messages in flight to the client: the broker's
    /// limit, or the client's Receive Maximum if lower.
    window: usize,
    /// The session it belongs to, and whether that session outlives its
    /// connection: only then are its changes written to the store.
    sid: SessionId,
    durable: bool,
    /// The session has a connection: its queues stay made while empty.
    attached: bool,
    /// The `seq` of the last message that entered it.
    pub(super) last_seq: u64,
}

/// An outbox's messages, made with its first one and dropped when the last
/// has gone while the session has no connection. A connected subscriber
/// that acknowledges each message before the next empties them each time:
/// dropped then, they were made again per message, and fan-in 8 to 1 at
/// QoS 1 took 3-9% more CPU a delivery.
#[derive(Debug)]
struct Queues {
    inflight: VecDeque<Inflight>,
    /// The packet id of each entry of `inflight`, in the same order: a
    /// search for a free id or an acknowledged one reads 2 bytes an entry
    /// here rather than a 190-byte entry there (fan-out to 1,000 sessions
    /// searched 1,000 windows a message).
    ids: WindowIds,
    pending: VecDeque<Message>,
    /// The weight of the messages in `pending` (`Message::weight`).
    pending_bytes: usize,
    /// Messages in `pending` with a `resend_id`, which stays taken.
    pending_with_ids: usize,
    /// Messages behind `pending` kept on disk only (`tail.rs`): counted
    /// here, their bodies in the store.
    tail: Option<Tail>,
}

impl Queues {
    const EMPTY: Queues = Queues {
        inflight: VecDeque::new(),
        ids: WindowIds::EMPTY,
        pending: VecDeque::new(),
        pending_bytes: 0,
        pending_with_ids: 0,
        tail: None,
    };
}

/// What an outbox without its queues reads.
static NO_QUEUES: Queues = Queues::EMPTY;

impl Outbox {
    pub fn new(sid: SessionId) -> Outbox {
        Outbox {
            queues: None,
            last_id: None,
            window: 1,
            sid,
            durable: false,
            attached: false,
            last_seq: 0,
        }
    }

    /// Whether the session has a connection; its queues, once made, are
    /// kept while it has.
    pub fn set_attached(&mut self, attached: bool) {
        self.attached = attached;
        self.release_if_empty();
    }

    #[cfg(test)]
    pub fn holds_queues(&self) -> bool {
        self.queues.is_some()
    }

    pub(super) fn prefetch_queues(&self) {
        if let Some(queues) = &self.queues {
            prefetch_whole::<Queues>(&**queues);
        }
    }

    /// Where the next message sent goes in the window, and its id.
    pub(super) fn prefetch_window(&self) {
        let Some(q) = &self.queues else {
            return;
        };
        let end = |(a, b): (&[Inflight], &[Inflight])| match b {
            [] => a.as_ptr_range().end,
            _ => b.as_ptr_range().end,
        };
        prefetch_whole(end(q.inflight.as_slices()));
        q.ids.prefetch_back();
    }

    fn queues(&self) -> &Queues {
        self.queues.as_deref().unwrap_or(&NO_QUEUES)
    }

    fn queues_mut(&mut self) -> &mut Queues {
        self.queues.get_or_insert_with(|| Box::new(Queues::EMPTY))
    }

    /// Drops the queues once nothing is in them, as `Queues` says.
    fn release_if_empty(&mut self) {
        let Some(q) = &self.queues else {
            return;
        };
        let empty = q.inflight.is_empty() && q.pending.is_empty() && q.tail.is_none();
        if empty && !self.attached {
            self.queues = None;
        }
    }

    /// Sets or clears the tail (`tail.rs`).
    pub(super) fn set_tail(&mut self, tail: Option<Tail>) {
        self.queues_mut().tail = tail;
        self.release_if_empty();
    }

    pub(super) fn tail_mut(&mut self) -> Option<&mut Tail> {
        self.queues.as_mut()?.tail.as_mut()
    }

    /// The tail, begun at `from` if there is none.
    pub(super) fn tail_from(&mut self, from: u64) -> &mut Tail {
        self.queues_mut().tail.get_or_insert(Tail {
            from,
            count: 0,
            bytes: 0,
            reading: false,
        })
    }

    pub(super) fn take_tail(&mut self) -> Option<Tail> {
        let tail = self.queues.as_mut()?.tail.take();
        self.release_if_empty();
        tail
    }

    /// Whether its changes go to the store: set with the session's expiry.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// Each CONNECT sets it anew; what is already in flight stays there.
    pub fn set_window(&mut self, window: usize) {
        self.window = window;
    }

    pub fn inflight_len(&self) -> usize {
        self.queues().inflight.len()
    }

    pub fn pending_len(&self) -> usize {
        self.queues().pending.len()
    }

    /// The messages waiting, in order.
    pub fn pending(&self) -> impl Iterator<Item = &Message> + '_ {
        self.queues().pending.iter()
    }

    pub fn pending_bytes(&self) -> usize {
        self.queues().pending_bytes
    }

    /// Whether a new message may go out at once: nothing waits before it,
    /// and the window has room.
    pub fn may_send_now(&self) -> bool {
        let q = self.queues();
        q.pending.is_empty() && q.inflight.len() < self.window
    }

    /// Whether `message` fits in the queue, its head and tail together,
    /// under these limits.
    pub fn may_queue(&self, message: &Message, max_queued: usize, max_bytes: usize) -> bool {
        let q = self.queues();
        let (count, bytes) = q.tail.map_or((0, 0), |t| (t.count, t.bytes));
        q.pending.len() + count < max_queued
            && q.pending_bytes + bytes + message.weight() <= max_bytes
    }

    /// Messages on disk only, and their weight.
    pub fn tail(&self) -> Option<&Tail> {
        self.queues().tail.as_ref()
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// QoS 2 messages released and awaiting PUBCOMP.
    pub fn released(&self) -> usize {
        self.queues()
            .inflight
            .iter()
            .filter(|e| matches!(e.stage, Stage::Released))
            .count()
    }

    /// The weight of queued messages that were put back from the window.
    pub fn put_back_bytes(&self) -> usize {
        self.pending()
            .filter(|m| m.resend_id.is_some())
            .map(Message::weight)
            .sum()
    }

    /// A packet id not in use by any inflight message. The window is far
    /// smaller than 65,535, so the search ends quickly.
    pub fn next_packet_id(&mut self) -> PacketId {
        let mut id = self
            .last_id
            .map_or(PacketId::new(1).expect("1 is non-zero"), PacketId::next);
        let q = self.queues();
        let taken = |id: PacketId| {
            q.ids.contains(id)
                || (q.pending_with_ids > 0 && q.pending.iter().any(|m| m.resend_id == Some(id)))
        };
        while taken(id) {
            id = id.next();
        }
        self.last_id = Some(id);
        id
    }

    fn position(&self, packet_id: PacketId) -> Option<usize> {
        self.queues().ids.position(packet_id)
    }

    fn inflight(&self, i: usize) -> &Inflight {
        &self.queues().inflight[i]
    }

    fn inflight_mut(&mut self, i: usize) -> &mut Inflight {
        &mut self.queues_mut().inflight[i]
    }

    fn push_inflight(&mut self, entry: Inflight) {
        let q = self.queues_mut();
        q.ids.push_back(entry.packet_id);
        q.inflight.push_back(entry);
    }

    fn remove_inflight(&mut self, i: usize) {
        let q = self.queues_mut();
        q.ids.remove(i);
        // Acknowledged in order, as nearly always: the first, which
        // `pop_front` takes for less than `remove(0)`'s general copy.
        if i == 0 {
            q.inflight.pop_front();
        } else {
            q.inflight.remove(i);
        }
        self.release_if_empty();
    }

    fn take_inflight(&mut self) -> VecDeque<Inflight> {
        let Some(q) = &mut self.queues else {
            return VecDeque::new();
        };
        q.ids.clear();
        let inflight = std::mem::take(&mut q.inflight);
        self.release_if_empty();
        inflight
    }

    pub(super) fn push_pending(&mut self, message: Message) {
        let q = self.queues_mut();
        if message.resend_id.is_some() {
            q.pending_with_ids += 1;
        }
        q.pending_bytes += message.weight();
        q.pending.push_back(message);
    }

    /// Puts a message that was in flight back at the head of the queue,
    /// keeping its packet id.
    fn unsend(&mut self, mut message: Message, packet_id: PacketId) {
        message.resend_id = Some(packet_id);
        let q = self.queues_mut();
        q.pending_with_ids += 1;
        q.pending_bytes += message.weight();
        q.pending.push_front(message);
    }

    fn pop_pending(&mut self) -> Option<Message> {
        let q = self.queues.as_mut()?;
        let message = q.pending.pop_front()?;
        q.pending_bytes -= message.weight();
        if message.resend_id.is_some() {
            q.pending_with_ids -= 1;
        }
        self.release_if_empty();
        Some(message)
    }
}

/// What a PUBREC did to the message it acknowledges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubRec {
    /// No message in flight has the id.
    Unknown,
    /// The id is a QoS 1 message's.
    NotQos2,
    /// A 5.0 error reason ended the flow: the message is gone.
    Ended,
    /// The message is released (or was already): PUBREL is due.
    Released,
}

/// A change to a durable session's message, noted for the store.
pub type Noted = (SessionId, u64, Option<Stored>, Key);

/// QoS 1/2 messages waiting in all sessions (`queued`) and sent and not yet
/// acknowledged (`inflight`): changed only together with an `Outbox`.
///
/// With a store, it also notes each change to a durable session's
/// messages, in order, for `Broker::take_changes`.
#[derive(Debug, Default)]
pub struct Counts {
    /// Messages waiting, in memory and on disk.
    pub(super) queued: usize,
    inflight: usize,
    changes: Option<Vec<Noted>>,
    /// The weight of the messages waiting in memory (`Outbox::pending`).
    pub(super) memory_bytes: usize,
    /// Messages waiting on disk only, and their weight (`tail.rs`).
    pub(super) on_disk: usize,
    pub(super) on_disk_bytes: usize,
    /// Messages put on disk only, and read back, since the start.
    pub(super) spilled: u64,
    pub(super) read_back: u64,
}

impl Counts {
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn inflight(&self) -> usize {
        self.inflight
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Whether changes go to a store: only then may a queue's tail be on
    /// disk alone.
    pub fn keeps_changes(&self) -> bool {
        self.changes.is_some()
    }

    /// Starts noting changes to durable sessions' messages.
    pub fn keep_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The changes noted since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<Noted> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn note(&mut self, out: &Outbox, seq: u64, stored: impl FnOnce() -> Option<Stored>) {
        self.note_key(out, seq, Key::Seen, stored);
    }

    pub(super) fn note_key(
        &mut self,
        out: &Outbox,
        seq: u64,
        key: Key,
        stored: impl FnOnce() -> Option<Stored>,
    ) {
        if let (Some(changes), true) = (&mut self.changes, out.durable) {
            changes.push((out.sid, seq, stored(), key));
        }
    }

    /// Numbers a message that enters the outbox for the first time: its
    /// `seq` is then one no message of the session had, a new key.
    pub(super) fn number(out: &mut Outbox, message: &mut Message) -> Key {
        if message.seq != 0 {
            return Key::Seen;
        }
        out.last_seq += 1;
        message.seq = out.last_seq;
        Key::New
    }

    pub fn queue(&mut self, out: &mut Outbox, mut message: Message) {
        let key = Self::number(out, &mut message);
        self.note_key(out, message.seq, key, || {
            Some(Stored::Queued(message.clone()))
        });
        self.memory_bytes += message.weight();
        out.push_pending(message);
        self.queued += 1;
    }

    /// The next queued message, if the window has room for it.
    pub fn next_for_window(&mut self, out: &mut Outbox) -> Option<Message> {
        if out.inflight_len() >= out.window {
            return None;
        }
        let message = out.pop_pending()?;
        self.queued -= 1;
        self.memory_bytes -= message.weight();
        // Gone unless `sent` follows, which notes it again.
        self.note(out, message.seq, || None);
        Some(message)
    }

    /// `message` was sent as `packet_id` and awaits its acknowledgement.
    pub fn sent(&mut self, out: &mut Outbox, packet_id: PacketId, mut message: Message) {
        let key = Self::number(out, &mut message);
        let seq = message.seq;
        self.note_key(out, seq, key, || {
            Some(Stored::Sent(packet_id, message.clone()))
        });
        self.keep_inflight(
            out,
            Inflight {
                packet_id,
                stage: Stage::Unacked(message),
                seq,
            },
        );
    }

    fn keep_inflight(&mut self, out: &mut Outbox, entry: Inflight) {
        out.push_inflight(entry);
        self.inflight += 1;
    }

    /// Ends the flow of `packet_id` if its stage is `expected`; returns
    /// whether it did.
    pub fn complete(
        &mut self,
        out: &mut Outbox,
        packet_id: PacketId,
        expected: impl Fn(&Stage) -> bool,
    ) -> bool {
        match out.position(packet_id) {
            Some(i) if expected(&out.inflight(i).stage) => {
                let seq = out.inflight(i).seq;
                out.remove_inflight(i);
                self.inflight -= 1;
                self.note(out, seq, || None);
                true
            }
            _ => false,
        }
    }

    /// PUBREC for `packet_id`; `error` when its reason is one.
    pub fn pubrec(&mut self, out: &mut Outbox, packet_id: PacketId, error: bool) -> PubRec {
        let Some(i) = out.position(packet_id) else {
            return PubRec::Unknown;
        };
        let seq = out.inflight(i).seq;
        let outcome = match &mut out.inflight_mut(i).stage {
            Stage::Unacked(m) if m.publish.qos != QoS::ExactlyOnce => return PubRec::NotQos2,
            Stage::Unacked(_) if error => {
                out.remove_inflight(i);
                self.inflight -= 1;
                PubRec::Ended
            }
            Stage::Released => return PubRec::Released,
            stage => {
                *stage = Stage::Released;
                PubRec::Released
            }
        };
        self.note(out, seq, || match outcome {
            PubRec::Released => Some(Stored::Released(packet_id)),
            _ => None,
        });
        outcome
    }

    /// For a resumed session: takes what is in flight out to be sent again,
    /// all released messages and as many unacknowledged ones as the window
    /// has room for; the rest go back to the head of the queue, keeping
    /// their ids. Each one sent again is handed back with `resent`.
    pub fn take_for_resend(&mut self, out: &mut Outbox) -> VecDeque<Inflight> {
        let mut inflight = out.take_inflight();
        self.inflight -= inflight.len();
        // Released messages stay in flight: their PUBLISH is done with.
        let mut room = out.window.saturating_sub(
            inflight
                .iter()
                .filter(|e| matches!(e.stage, Stage::Released))
                .count(),
        );
        let mut unsent = Vec::new();
        inflight.retain(|entry| match &entry.stage {
            Stage::Released => true,
            Stage::Unacked(_) if room > 0 => {
                room -= 1;
                true
            }
            Stage::Unacked(message) => {
                unsent.push((message.clone(), entry.packet_id));
                false
            }
        });
        self.queued += unsent.len();
        for (message, packet_id) in unsent.into_iter().rev() {
            self.memory_bytes += message.weight();
            out.unsend(message, packet_id);
        }
        inflight
    }

    /// A message of a session read back from the store, as it was stored
    /// under `seq`; those of one session come in `seq` order.
    pub fn restore(&mut self, out: &mut Outbox, seq: u64, stored: Stored) {
        out.last_seq = out.last_seq.max(seq);
        // One sent before goes out again first, under its id, with DUP; as
        // `take_for_resend` leaves what the window has no room for.
        let (mut message, resend_id) = match stored {
            Stored::Queued(message) => (message, None),
            Stored::Sent(packet_id, message) => (message, Some(packet_id)),
            Stored::Released(packet_id) => {
                let stage = Stage::Released;
                self.keep_inflight(
                    out,
                    Inflight {
                        packet_id,
                        stage,
                        seq,
                    },
                );
                return;
            }
        };
        message.seq = seq;
        message.resend_id = message.resend_id.or(resend_id);
        self.memory_bytes += message.weight();
        out.push_pending(message);
        self.queued += 1;
    }

    /// An entry from `take_for_resend` was sent again and is in flight.
    pub fn resent(&mut self, out: &mut Outbox, entry: Inflight) {
        self.keep_inflight(out, entry);
    }

    /// The session has ended: its messages leave the counts. Returns those
    /// not acknowledged, in flight first, each with whether it was sent.
    /// Messages on disk only are gone with the session's rows; a shared
    /// group's among them are not rerouted, as after a restart.
    pub fn close(&mut self, out: Outbox) -> impl Iterator<Item = (Message, bool)> {
        let out = out.queues.map_or(Queues::EMPTY, |q| *q);
        self.queued -= out.pending.len();
        self.memory_bytes -= out.pending_bytes;
        if let Some(tail) = out.tail {
            self.drop_tail(tail);
        }
        self.inflight -= out.inflight.len();
        let sent = out
            .inflight
            .into_iter()
            .filter_map(|entry| match entry.stage {
                Stage::Unacked(message) => Some((message, true)),
                Stage::Released => None,
            });
        let queued = out.pending.into_iter().map(|m| {
            let sent = m.resend_id.is_some();
            (m, sent)
        });
        sent.chain(queued)
    }
}
