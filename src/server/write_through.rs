//! A delivery written by the task that routed it. A subscriber's task that
//! waits with nothing to write leaves its stream in its outbox
//! (`Outbox::offer_writes`); a publisher's task that routes a message to
//! it then writes the message itself, once the routing lock is let go and
//! before its own replies, as mosquitto's one thread does. Otherwise the
//! publisher wrote its PUBACK first, the publishing client's thread woke
//! and took the CPU, and only then did the subscriber's task run: the
//! QoS 1 latency scenario's median was twice mosquitto's.
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
    /// Lends `duplex`; the caller takes it back before `duplex` can move,
    /// drop or be written by its owner.
    pub(super) fn of<T: AsyncWrite + Unpin + Send>(duplex: &Duplex<T>) -> Lent {
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
    /// if the turn has `replies` of its own to write after; else wakes
    /// them. With nothing of ours to come first, the subscribers' tasks
    /// run next anyway, and each writes all that piled up in one write:
    /// written through, fan-in at QoS 0 lost a quarter of its rate.
    pub(super) fn finish(mut self, traffic: &Traffic, replies: bool) {
        for outbox in self.take() {
            match replies {
                true => outbox.write_through(traffic),
                false => outbox.wake_now(),
            }
        }
    }

    fn take(&mut self) -> Vec<Arc<Outbox>> {
        if !std::mem::take(&mut self.active) {
            return Vec::new();
        }
        ROUTED.with_borrow_mut(Option::take).unwrap_or_default()
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

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt, DuplexStream};

    use super::*;
    use crate::codec::{Packet, PacketId, ProtocolVersion, Publish, QoS, SharedFrame};
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
        outbox.offer_writes(Lent::of(stream));
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

    /// Whether the connection's task would wake.
    fn woken(outbox: &Outbox) -> bool {
        outbox.woken()
    }

    async fn read_exactly(theirs: &mut DuplexStream, n: usize) -> Vec<u8> {
        let mut read = vec![0; n];
        theirs.read_exact(&mut read).await.unwrap();
        read
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
        assert!(!woken(&outbox));
        turn.finish(&traffic, true);
        assert_eq!(outbox.waiting(), 0);
        assert!(!woken(&outbox), "written for it: nothing to wake it for");
        assert_eq!(traffic.counts().messages_sent, 2);
        let expected = [first_bytes, second_bytes].concat();
        assert_eq!(read_exactly(&mut theirs, expected.len()).await, expected);
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_waits_whole_and_first_for_the_connection() {
        let (first, first_bytes) = frame_as(7);
        let (second, second_bytes) = frame_as(8);
        let (ours, mut theirs) = tokio::io::duplex(first_bytes.len() + 3);
        let stream = Duplex::new(ours);
        let outbox = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&outbox, first));
        assert!(!route(&outbox, second));
        turn.finish(&Traffic::default(), true);
        assert!(woken(&outbox), "the rest is the connection's to write");
        let mut rest = VecDeque::new();
        outbox.drain(&mut rest, u64::MAX, false);
        let rest: Vec<u8> = rest
            .into_iter()
            .flat_map(|packet| match packet {
                Outbound::Rest(bytes) => bytes.to_vec(),
                _ => panic!("a packet begun must go on as bytes, not again whole"),
            })
            .collect();
        let written = read_exactly(&mut theirs, first_bytes.len() + 3).await;
        assert_eq!(
            [written, rest].concat(),
            [first_bytes, second_bytes].concat()
        );
    }

    #[tokio::test]
    async fn a_full_socket_leaves_everything_to_the_connection() {
        let (first, first_bytes) = frame_as(7);
        let (ours, mut theirs) = tokio::io::duplex(first_bytes.len());
        let stream = Duplex::new(ours);
        // The socket is full before the turn.
        Pin::new(&mut stream.half())
            .poll_write(&mut Context::from_waker(Waker::noop()), &first_bytes)
            .map(Result::unwrap)
            .is_ready()
            .then_some(())
            .unwrap();
        let outbox = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&outbox, first));
        turn.finish(&Traffic::default(), true);
        assert!(woken(&outbox));
        assert_eq!(outbox.waiting(), 1, "still whole in the queue");
        assert_eq!(
            read_exactly(&mut theirs, first_bytes.len()).await,
            first_bytes
        );
    }

    #[test]
    fn no_write_through_while_the_connection_may_write_or_outside_a_turn() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let stream = Duplex::new(ours);
        let outbox = lending(&stream);
        assert!(!route(&outbox, frame_as(1).0), "outside a turn");
        assert!(woken(&outbox));
        // The wait's end took the stream back: a drain must lend it again.
        let drained = lending(&stream);
        drained.drain(&mut VecDeque::new(), u64::MAX, false);
        let turn = Turn::begin();
        assert!(!route(&drained, frame_as(2).0), "drained without lending");
        assert!(woken(&drained));
        drop(turn);
        // Not a frame fanned out: the connection encodes it its own way.
        let other = lending(&stream);
        let turn = Turn::begin();
        let ack = Outbound::Packet(Packet::PubAck(crate::codec::Ack::success(
            PacketId::new(3).unwrap(),
        )));
        assert!(!route(&other, ack));
        drop(turn);
        assert!(woken(&other));
    }

    #[test]
    fn a_turn_without_replies_or_dropped_unfinished_wakes_the_subscriber() {
        let (ours, _theirs) = tokio::io::duplex(4096);
        let stream = Duplex::new(ours);
        let quiet = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&quiet, frame_as(1).0));
        assert!(!woken(&quiet), "held back");
        turn.finish(&Traffic::default(), false);
        assert!(woken(&quiet));
        assert_eq!(quiet.waiting(), 1);
        let dropped = lending(&stream);
        let turn = Turn::begin();
        assert!(route(&dropped, frame_as(2).0));
        drop(turn);
        assert!(woken(&dropped));
    }

    #[test]
    fn a_turn_writes_through_to_a_few_subscribers_and_wakes_the_rest() {
        let streams: Vec<_> = (0..ROUTED_MAX + 2)
            .map(|_| Duplex::new(tokio::io::duplex(4096).0))
            .collect();
        let turn = Turn::begin();
        let held = streams
            .iter()
            .filter(|stream| route(&lending(stream), frame_as(1).0))
            .count();
        drop(turn);
        assert_eq!(held, ROUTED_MAX);
    }
}
