//! A delivery written by the task that routed it. A subscriber's task that
//! waits with nothing to write leaves its stream in its outbox
//! (`Outbox::offer_writes`); a publisher's task that routes a message to
//! it then writes the message itself, once the routing lock is let go and
//! before its own replies, as mosquitto's one thread does. Otherwise the
//! publisher wrote its PUBACK first, the publishing client's thread woke
//! and took the CPU, and only then did the subscriber's task run: the
//! QoS 1 latency scenario's median was twice mosquitto's. Then it gives
//! way (`Arrivals::give_way`): the client its write woke often waited on
//! this CPU for the PUBACK and the rest of the turn.
//!
//! Only for a few subscribers a turn (`ROUTED_MAX`): a fan-out's thousand
//! are left to their own tasks, which batch what piles up.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

use super::duplex::Duplex;
use super::outbox::Outbox;
use super::traffic::Traffic;

/// Subscribers one turn of a connection writes to itself, at most.
const ROUTED_MAX: usize = 8;

/// A connection's stream, lent to other tasks while its own task waits
/// with nothing to write. Kept in the connection's outbox, under its
/// lock, and taken back under that lock before the task writes again or
/// its stream can move or drop (`Outbox::withdraw_writes`).
#[derive(Clone, Copy)]
pub(super) struct Lent {
    stream: *const (),
    write: unsafe fn(*const (), &[u8]) -> Poll<io::Result<usize>>,
}

// SAFETY: the stream behind the pointer is reached only through its
// `Duplex`, whose lock makes each write exclusive; the stream is Send.
unsafe impl Send for Lent {}

impl Lent {
    /// Lends `duplex`.
    ///
    /// # Safety
    /// The caller makes it lendable (`Outbox::drain`) only while `duplex`
    /// stays where it is and its owner does not write to it, and withdraws
    /// it (`Outbox::withdraw_writes`) before `duplex` can move or drop.
    pub(super) unsafe fn of<T: AsyncWrite + Unpin + Send>(duplex: &Duplex<T>) -> Lent {
        Lent {
            stream: std::ptr::from_ref(duplex).cast(),
            write: write_lent::<T>,
        }
    }

    /// Writes what the socket takes now, without waiting.
    ///
    /// # Safety
    /// The lender has not taken it back: the caller holds the outbox's
    /// lock and found it there.
    pub(super) unsafe fn write(&self, bytes: &[u8]) -> Poll<io::Result<usize>> {
        // SAFETY: the caller's, above.
        unsafe { (self.write)(self.stream, bytes) }
    }
}

/// # Safety
/// `stream` is a live `Duplex<T>`, as `Lent::write` requires.
unsafe fn write_lent<T: AsyncWrite + Unpin>(
    stream: *const (),
    bytes: &[u8],
) -> Poll<io::Result<usize>> {
    // SAFETY: the caller's.
    let duplex = unsafe { &*stream.cast::<Duplex<T>>() };
    // Nothing waits on this write: a socket that is full says so, and the
    // connection's own task writes what is left when it runs.
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(&mut duplex.half()).poll_write(&mut cx, bytes)
}

thread_local! {
    /// The outboxes this thread's turn routed to while their streams were
    /// lent, their wakes held back; `None` outside a turn.
    static ROUTED: RefCell<Option<Vec<Arc<Outbox>>>> = const { RefCell::new(None) };
}

/// What a turn did for the idle subscribers (those whose streams were
/// lent) it routed to: their deliveries are what clients wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routed {
    /// It routed to none.
    Nothing,
    /// It left their deliveries to their tasks, or their sockets took
    /// none of it.
    Woken,
    /// It wrote to at least one of their sockets.
    Written,
}

/// A connection's turn of routing, during which pushes to outboxes whose
/// streams are lent hold back their wakes (`may_write_through`); `finish`
/// writes to them. Dropped unfinished, it wakes them.
pub(super) struct Turn {
    active: bool,
}

impl Turn {
    pub(super) fn begin() -> Turn {
        let active = ROUTED.with_borrow_mut(|routed| match routed {
            // A turn inside a turn leaves the outer one to finish.
            Some(_) => false,
            None => {
                *routed = Some(Vec::new());
                true
            }
        });
        Turn { active }
    }

    /// Writes to each outbox routed to, outside every lock but its own,
    /// if the turn has `replies` of its own to write after, or `handled`
    /// only one packet; else wakes them. A turn of many packets with
    /// nothing of ours to come first is a busy publisher's: the
    /// subscribers' tasks run next anyway, and each writes all that piled
    /// up from every publisher in one write (written through, fan-in at
    /// QoS 0 lost a quarter of its rate). A lone QoS 0 PUBLISH is a
    /// quiet one's, which the subscriber should get without a task between
    /// (the QoS 0 latency scenario's median: 0.98-1.06 of mosquitto's in
    /// three pairs, against 1.02-1.09 woken; fan-in at QoS 0 unchanged).
    pub(super) fn finish(
        mut self,
        traffic: &Traffic,
        handled: usize,
        replies: impl FnOnce() -> bool,
    ) -> Routed {
        let routed = self.take();
        if routed.is_empty() {
            return Routed::Nothing;
        }
        let through = handled == 1 || replies();
        let mut left = Left(routed.into_iter());
        let mut written = false;
        for outbox in left.0.by_ref() {
            match through {
                true => written |= outbox.write_through(traffic),
                false => outbox.wake_now(),
            }
        }
        match written {
            true => Routed::Written,
            false => Routed::Woken,
        }
    }

    fn take(&mut self) -> Vec<Arc<Outbox>> {
        if !std::mem::take(&mut self.active) {
            return Vec::new();
        }
        ROUTED.with_borrow_mut(Option::take).unwrap_or_default()
    }
}

/// The outboxes a finishing turn has yet to write to: woken if it
/// unwinds, or their held wakes would never come.
struct Left(std::vec::IntoIter<Arc<Outbox>>);

impl Drop for Left {
    fn drop(&mut self) {
        for outbox in self.0.by_ref() {
            outbox.wake_now();
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        for outbox in self.take() {
            outbox.wake_now();
        }
    }
}

/// Whether a push may hold back its wake for the turn to write: inside a
/// turn, with room in it.
pub(super) fn may_write_through() -> bool {
    ROUTED.with_borrow(|routed| routed.as_ref().is_some_and(|r| r.len() < ROUTED_MAX))
}

/// Leaves `outbox`, whose wake a push held back, to the turn.
pub(super) fn routed(outbox: &Arc<Outbox>) {
    ROUTED.with_borrow_mut(|routed| match routed {
        Some(routed) => routed.push(Arc::clone(outbox)),
        // Not in a turn after all: its wake was held back for nothing.
        None => outbox.wake_now(),
    });
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::future::Future;

    use bytes::Bytes;
    use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream, ReadBuf};

    use super::*;
    use crate::codec::{Ack, Packet, PacketId, ProtocolVersion, Publish, QoS, SharedFrame};
    use crate::server::outbox::{Bounds, Outbound};
    use crate::topic::TopicName;

    const BOUNDS: Bounds = Bounds {
        packets: 100,
        shed_bytes: 0,
    };

    /// A QoS 1 PUBLISH fanned out, and its bytes with packet id `id`.
    fn frame_as(id: u16) -> (Outbound, Vec<u8>) {
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: TopicName::new("a/b").unwrap(),
            packet_id: PacketId::new(1),
            payload: Bytes::from_static(b"through"),
            properties: Default::default(),
        };
        let frame = Arc::new(SharedFrame::new(
            Packet::Publish(publish),
            ProtocolVersion::V311,
        ));
        let mut bytes = frame.bytes().to_vec();
        let at = frame.id_at().unwrap();
        bytes[at..at + 2].copy_from_slice(&id.to_be_bytes());
        (Outbound::FrameAs(frame, PacketId::new(id).unwrap()), bytes)
    }

    /// An outbox whose connection lent `stream` and waits with nothing to
    /// write, as its task does after a `drain` that found nothing.
    fn lending(stream: &Duplex<DuplexStream>) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox::default());
        // SAFETY: every test keeps `stream` where it is and alive for as
        // long as the outbox, and writes to it only before lending it.
        outbox.offer_writes(unsafe { Lent::of(stream) });
        outbox.drain(&mut VecDeque::new(), u64::MAX, true);
        outbox
    }

    /// Routes `packet` to `outbox` in a turn, as `apply_effects` does;
    /// returns whether the push held its wake back.
    fn route(outbox: &Arc<Outbox>, packet: Outbound) -> bool {
        let (_, held) = outbox.push_routed(std::iter::once(packet), BOUNDS, 0, may_write_through());
        if held {
            routed(outbox);
        }
        held
    }

    /// The bytes `theirs` holds now, without waiting.
    fn read_now(theirs: &mut DuplexStream) -> Vec<u8> {
        let mut room = [0; 4096];
        let mut buf = ReadBuf::new(&mut room);
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(theirs).poll_read(&mut cx, &mut buf) {
            Poll::Ready(read) => read.map(|()| buf.filled().to_vec()).unwrap(),
            Poll::Pending => Vec::new(),
        }
    }

    /// What the connection would write next, in order, drained as bytes.
    fn queued_bytes(outbox: &Outbox) -> Vec<u8> {
        let mut queued = VecDeque::new();
        outbox.drain(&mut queued, u64::MAX, false);
        let mut writes = crate::server::writes::Writes::default();
        for packet in queued {
            match packet {
                Outbound::Rest(bytes) => writes.encoded(&bytes),
                frame => assert!(frame.encode_frame(&mut writes), "only frames here"),
            }
        }
        writes.take_unwritten().flat_map(|b| b.to_vec()).collect()
    }

    #[tokio::test]
    async fn a_turn_with_replies_writes_to_an_idle_subscriber_without_waking_it() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let stream = Duplex::new(ours);
        let outbox = lending(&stream);
        let traffic = Traffic::default();
        let (first, first_bytes) = frame_as(7);
        let (second, second_bytes) = frame_as(8);
        let turn = Turn::begin();
        assert!(route(&outbox, first), "held back for the turn");
        // Behind the first, from a later hold: held back by the same turn.
        assert!(!route(&outbox, second));
        assert!(!outbox.woken());
        assert_eq!(turn.finish(&traffic, 2, || true), Routed::Written);
        assert_eq!(outbox.waiting(), 0);
        assert!(!outbox.woken(), "written for it: nothing to wake it for");
        assert_eq!(traffic.counts().messages_sent, 2);
        let expected = [first_bytes, second_bytes].concat();
        let mut read = vec![0; expected.len()];
        theirs.read_exact(&mut read).await.unwrap();
        assert_eq!(read, expected);
        assert_eq!(read_now(&mut theirs), b"", "nothing more");
    }

    #[test]
    fn what_the_socket_does_not_take_waits_whole_and_first_for_the_connection() {
        let (first, first_bytes) = frame_as(7);
        let (second, second_bytes) = frame_as(8);
        let (third, third_bytes) = frame_as(9);
        let (ours, mut theirs) = tokio::io::duplex(first_bytes.len() + 3);
        let stream = Duplex::new(ours);
        let outbox = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&outbox, first));
        assert!(!route(&outbox, second));
        assert_eq!(
            turn.finish(&Traffic::default(), 2, || true),
            Routed::Written
        );
        assert!(outbox.woken(), "the rest is the connection's to write");
        // Pushed after the partial write: behind its rest.
        outbox.push_all(std::iter::once(third), BOUNDS);
        let written = read_now(&mut theirs);
        assert_eq!(written.len(), first_bytes.len() + 3);
        assert_eq!(
            [written, queued_bytes(&outbox)].concat(),
            [first_bytes, second_bytes, third_bytes].concat()
        );
    }

    #[test]
    fn a_full_socket_leaves_everything_to_the_connection() {
        let (first, first_bytes) = frame_as(7);
        let (ours, mut theirs) = tokio::io::duplex(4);
        let stream = Duplex::new(ours);
        let mut cx = Context::from_waker(Waker::noop());
        let filled = Pin::new(&mut stream.half()).poll_write(&mut cx, b"full");
        assert!(matches!(filled, Poll::Ready(Ok(4))));
        let outbox = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&outbox, first));
        assert_eq!(turn.finish(&Traffic::default(), 2, || true), Routed::Woken);
        assert!(outbox.woken());
        assert_eq!(read_now(&mut theirs), b"full", "nothing written through");
        assert_eq!(
            queued_bytes(&outbox),
            first_bytes,
            "still whole in the queue"
        );
    }

    #[test]
    fn no_write_through_unless_lent_and_waiting_with_nothing_to_write() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let stream = Duplex::new(ours);
        let outside = lending(&stream);
        assert!(!route(&outside, frame_as(1).0), "outside a turn");
        assert!(outside.woken());
        let turn = Turn::begin();
        let never_lent = Arc::new(Outbox::default());
        never_lent.drain(&mut VecDeque::new(), u64::MAX, true);
        assert!(
            !route(&never_lent, frame_as(2).0),
            "TLS, WebSocket, aliases"
        );
        let not_lending = lending(&stream);
        not_lending.drain(&mut VecDeque::new(), u64::MAX, false);
        assert!(
            !route(&not_lending, frame_as(3).0),
            "a drain that did not lend"
        );
        let withdrawn = lending(&stream);
        withdrawn.withdraw_writes();
        assert!(!route(&withdrawn, frame_as(4).0), "withdrawn");
        // The wait's end takes it back: the connection may write next.
        let waited = lending(&stream);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::pin!(waited.notified()).poll(&mut cx).is_pending());
        assert!(!route(&waited, frame_as(5).0), "after a wait ended");
        // Not a frame fanned out: the connection encodes it its own way.
        let ack = Outbound::Packet(Packet::PubAck(Ack::success(PacketId::new(6).unwrap())));
        assert!(!route(&lending(&stream), ack));
        assert_eq!(
            turn.finish(&Traffic::default(), 2, || true),
            Routed::Nothing
        );
        for outbox in [&never_lent, &not_lending, &withdrawn, &waited] {
            assert!(outbox.woken());
            assert_eq!(outbox.waiting(), 1);
        }
        assert_eq!(read_now(&mut theirs), b"");
    }

    #[test]
    fn a_turn_without_replies_or_dropped_unfinished_wakes_the_subscriber() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let stream = Duplex::new(ours);
        let quiet = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&quiet, frame_as(1).0));
        assert!(!quiet.woken(), "held back");
        assert_eq!(turn.finish(&Traffic::default(), 2, || false), Routed::Woken);
        assert!(quiet.woken());
        assert_eq!(quiet.waiting(), 1);
        let dropped = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&dropped, frame_as(2).0));
        drop(turn);
        assert!(dropped.woken());
        assert_eq!(read_now(&mut theirs), b"");
    }

    #[test]
    fn a_turn_of_one_packet_writes_through_without_replies() {
        let (first, bytes) = frame_as(3);
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let stream = Duplex::new(ours);
        let quiet = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&quiet, first));
        assert_eq!(
            turn.finish(&Traffic::default(), 1, || false),
            Routed::Written
        );
        assert!(!quiet.woken(), "written by the turn, no task woken");
        assert_eq!(quiet.waiting(), 0);
        assert_eq!(read_now(&mut theirs), bytes);
    }

    #[test]
    fn a_turn_writes_through_to_a_few_subscribers_and_wakes_the_rest() {
        let streams: Vec<_> = (0..ROUTED_MAX + 2)
            .map(|_| tokio::io::duplex(4096))
            .map(|(ours, theirs)| (Duplex::new(ours), theirs))
            .collect();
        let outboxes: Vec<_> = streams.iter().map(|(ours, _)| lending(ours)).collect();
        let turn = Turn::begin();
        let held: Vec<bool> = outboxes.iter().map(|o| route(o, frame_as(1).0)).collect();
        assert_eq!(held.iter().filter(|&&h| h).count(), ROUTED_MAX);
        let woken: Vec<bool> = outboxes.iter().map(|o| o.woken()).collect();
        assert_eq!(woken, held.iter().map(|h| !h).collect::<Vec<_>>());
        turn.finish(&Traffic::default(), 2, || true);
        for ((_, mut theirs), held) in streams.into_iter().zip(held) {
            assert_eq!(read_now(&mut theirs).is_empty(), !held);
        }
    }

    #[test]
    fn a_rest_goes_out_before_a_farewell() {
        let (first, first_bytes) = frame_as(7);
        let (ours, _theirs) = tokio::io::duplex(3);
        let stream = Duplex::new(ours);
        let outbox = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&outbox, first));
        turn.finish(&Traffic::default(), 2, || true);
        let rest: Vec<u8> = outbox.take_rest().iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(rest, first_bytes[3..]);
        assert_eq!((outbox.waiting(), outbox.kept()), (0, 0));
    }
}
