//! The tail of a durable session's queue that is on disk only: mosquitto
//! holds every queued message in memory, so 10 GB of offline queues need
//! 10 GB of RAM. Here, once the messages waiting in memory weigh more than
//! `offline_memory_max_bytes`, a new QoS 1/2 message for an offline durable
//! session is written to the store as any queued message is, and counted
//! in the session's tail, but not kept: the batch holds its body until the
//! commit. While a session has a tail every new message for it goes there
//! too, so that the queue keeps its order.
//!
//! When the session is online and the head of its queue runs low, the
//! broker asks the runtime for the next chunk (`take_tail_reads`); the
//! runtime reads it off the lock, after the commit of every change noted
//! before the ask, and hands it back (`tail_read`), which appends it to the
//! head. A chunk is bounded, so one hold appends a bounded amount. A read
//! whose session has ended or gone offline, or whose tail has moved on, is
//! dropped.

use super::journal::Stored;
use super::outbox::{Counts, Message, Outbox};
use super::{Broker, SessionId};
use crate::config::planted;

/// Messages one read brings back at most, and their stored bytes: what
/// one hold of the lock appends to a session's head.
pub const CHUNK_MESSAGES: usize = 256;
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// A head with fewer messages than this asks for the next chunk.
const LOW_MESSAGES: usize = CHUNK_MESSAGES / 2;

/// The messages of a queue on disk only: every stored message of the
/// session from `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub from: u64,
    pub count: usize,
    /// Their weight (`Message::weight`), against `queued_bytes_max`.
    pub bytes: usize,
    /// A read is asked for and not yet back.
    pub reading: bool,
}

impl Tail {
    /// A tail read back at start: its first message, of `weight`.
    pub fn on_disk(from: u64, weight: usize) -> Tail {
        Tail {
            from,
            count: 1,
            bytes: weight,
            reading: false,
        }
    }
}

/// A read of a session's tail for the runtime to do, off the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailRead {
    pub sid: SessionId,
    pub from: u64,
}

impl Counts {
    /// Queues `message` on disk only: noted for the store with its body,
    /// which the batch holds until its commit.
    pub(super) fn spill(&mut self, out: &mut Outbox, mut message: Message) {
        let key = Counts::number(out, &mut message);
        let (seq, weight) = (message.seq, message.weight());
        let tail = out.tail_from(seq);
        tail.count += 1;
        tail.bytes += weight;
        self.note_key(out, seq, key, move || Some(Stored::Queued(message)));
        self.queued += 1;
        self.on_disk += 1;
        self.on_disk_bytes += weight;
        self.spilled += 1;
    }

    /// Appends a chunk read back from the tail to the head, in order,
    /// as a start restores messages (one found sent, or released, though
    /// a tail holds none, goes where a start would put it). Every row
    /// from the tail's start on is taken out of it, so each read makes
    /// progress; rows before it (none, unless the store is wrong) are
    /// passed over.
    fn unspill(&mut self, out: &mut Outbox, rows: Vec<(u64, Stored)>, skip_first: bool) {
        for (i, (seq, stored)) in rows.into_iter().enumerate() {
            let Some(tail) = out.tail_mut().filter(|t| seq >= t.from) else {
                continue;
            };
            let weight = match &stored {
                Stored::Queued(message) | Stored::Sent(_, message) => message.weight(),
                Stored::Released(_) => 0,
            };
            tail.from = seq + 1;
            tail.count -= 1;
            tail.bytes = tail.bytes.saturating_sub(weight);
            self.on_disk -= 1;
            self.on_disk_bytes = self.on_disk_bytes.saturating_sub(weight);
            if tail.count == 0 {
                let left = tail.bytes;
                out.set_tail(None);
                self.on_disk_bytes = self.on_disk_bytes.saturating_sub(left);
            }
            // Counted again by `restore`, as waiting or in flight.
            self.queued -= 1;
            if skip_first && i == 0 {
                continue;
            }
            self.read_back += 1;
            self.restore(out, seq, stored);
        }
    }

    /// A restored session's messages left on disk at start, up to
    /// `last_seq`: new ones are numbered after it.
    pub(super) fn restore_tail(&mut self, out: &mut Outbox, tail: Tail, last_seq: u64) {
        out.last_seq = out.last_seq.max(last_seq);
        out.set_tail(Some(tail));
        self.queued += tail.count;
        self.on_disk += tail.count;
        self.on_disk_bytes += tail.bytes;
    }

    /// A tail gone whole: its session ended, or its rows are.
    pub(super) fn drop_tail(&mut self, tail: Tail) {
        self.queued -= tail.count;
        self.on_disk -= tail.count;
        self.on_disk_bytes = self.on_disk_bytes.saturating_sub(tail.bytes);
    }
}

impl Broker {
    /// Whether a QoS 1/2 message for the session goes to its tail: it has
    /// one, or it is offline and durable and the messages in memory are
    /// over their budget. Only with a store.
    pub(super) fn goes_to_tail(&self, sid: SessionId, message: &Message) -> bool {
        let session = self.sessions.get(sid);
        let out = &session.outbox;
        if out.tail().is_some() {
            return true;
        }
        let over =
            self.counts.memory_bytes() + message.weight() > self.config.offline_memory_max_bytes;
        over && session.conn().is_none() && out.is_durable() && self.counts.keeps_changes()
    }

    /// Asks for the next chunk of the session's tail if it is online, its
    /// head runs low and no read is out.
    pub(super) fn want_tail(&mut self, sid: SessionId) {
        let session = self.sessions.get_mut(sid);
        let low = session.outbox.pending_len() < LOW_MESSAGES;
        let online = session.conn().is_some();
        let Some(tail) = session.outbox.tail_mut() else {
            return;
        };
        if online && low && !tail.reading {
            tail.reading = true;
            self.tail_reads.push(TailRead {
                sid,
                from: tail.from,
            });
        }
    }

    /// The reads asked for since the last call, for the runtime to do.
    pub fn take_tail_reads(&mut self) -> Vec<TailRead> {
        std::mem::take(&mut self.tail_reads)
    }

    /// A chunk the runtime read for `read`: appended to the head unless
    /// the session ended, went offline, or its tail moved on meanwhile
    /// (a takeover keeps the session, and the read is still its). A read that
    /// failed is asked for again the next time the head runs low. Returns
    /// an error when the store held fewer messages than the tail counts:
    /// they are gone, and counted as dropped.
    pub fn tail_read(
        &mut self,
        read: TailRead,
        rows: Result<Vec<(u64, Stored)>, String>,
    ) -> Result<(), String> {
        if !self.sessions.contains(read.sid) {
            return Ok(());
        }
        let session = self.sessions.get_mut(read.sid);
        let online = session.conn().is_some();
        let out = &mut session.outbox;
        let Some(tail) = out.tail_mut().filter(|t| t.reading && t.from == read.from) else {
            return Ok(());
        };
        tail.reading = false;
        // Gone offline meanwhile: the tail stays on disk, and memory free.
        if !online {
            return Ok(());
        }
        let rows = rows?;
        if rows.is_empty() {
            let tail = out.take_tail().expect("just seen");
            let client_id = session.client_id().to_owned();
            self.counts.drop_tail(tail);
            self.dropped.queue_full += tail.count as u64;
            #[cfg(feature = "sim")]
            self.count_drops_for(read.sid, tail.count as u64);
            return Err(format!(
                "{client_id}: the store holds none of the {} messages queued on disk from {}",
                tail.count, tail.from
            ));
        }
        let skip_first = planted!(self.config, TailChunkSkipsFirst);
        self.counts.unspill(out, rows, skip_first);
        self.fill_window(read.sid);
        Ok(())
    }

    /// The session no longer outlives its connection (a CONNECT with
    /// expiry 0): its rows leave the store, the tail's with them.
    pub(super) fn lose_tail(&mut self, sid: SessionId) {
        let session = self.sessions.get_mut(sid);
        if session.outbox.is_durable() {
            return;
        }
        if let Some(tail) = session.outbox.take_tail() {
            self.counts.drop_tail(tail);
            self.dropped.queue_full += tail.count as u64;
            // The simulation holds a session's missing messages against
            // its own drops.
            #[cfg(feature = "sim")]
            self.count_drops_for(sid, tail.count as u64);
        }
    }
}
