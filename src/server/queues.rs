//! A connection's packet queues, each kept with its room only while busy:
//! an idle connection holds none. A connection that handles a packet now
//! and then (a quiet publisher, a subscriber getting a message at a time)
//! borrows its thread's spare room instead of allocating a queue for each
//! packet and freeing it after: a lone routed message allocated two.

use std::cell::RefCell;
use std::collections::VecDeque;

use super::outbox::Outbound;
use crate::codec::Packet;

/// Packet queues of at most this capacity are released once drained: an
/// idle connection holds none.
pub(super) const QUEUE_KEPT_PACKETS: usize = 8;

#[derive(Default)]
pub(super) struct Queues {
    /// Packets taken from the outbox, swapped with it to keep capacity.
    pub draining: VecDeque<Outbound>,
    /// A batch of decoded packets, decoded before the lock is taken.
    pub inbound: Vec<Packet>,
    /// Those of them for the broker, dispatched under as few locks as
    /// their work allows; what a hold's budget left waits here for the
    /// connection's next turn.
    pub dispatching: VecDeque<Packet>,
}

thread_local! {
    /// The empty packet queues, of `QUEUE_KEPT_PACKETS` room at most, that
    /// this thread's connections released last: a few kilobytes a worker.
    /// Its `draining` is never used (`Room::LENT`).
    static SPARE: RefCell<Queues> = const {
        RefCell::new(Queues {
            draining: VecDeque::new(),
            inbound: Vec::new(),
            dispatching: VecDeque::new(),
        })
    };
}

/// A queue's room, whether it has any, and whether it holds nothing.
pub(super) trait Room {
    /// Whether the thread's spare may lend it.
    const LENT: bool;
    fn room(&self) -> usize;
    fn holds_none(&self) -> bool;

    fn has_room(&self) -> bool {
        self.room() > 0
    }
}

/// Whether a queue let go may be lent to another connection: empty (what
/// it held would be handed to another client), and small. Every caller
/// lets go only such queues; this holds in release builds too.
fn lendable<T: Room>(queue: &T) -> bool {
    debug_assert!(queue.holds_none(), "a queue let go holds nothing");
    queue.holds_none() && queue.room() <= QUEUE_KEPT_PACKETS
}

/// `Room` for a queue type, lent by the spare or not.
macro_rules! room {
    ($queue:ty, $lent:expr) => {
        impl Room for $queue {
            const LENT: bool = $lent;

            fn room(&self) -> usize {
                self.capacity()
            }

            fn holds_none(&self) -> bool {
                self.is_empty()
            }
        }
    };
}

room!(Vec<Packet>, true);
room!(VecDeque<Packet>, true);
// Never lent: `Outbox::drain` swaps it into the outbox, which would then
// keep its room while idle (idle connections' RSS rose from about 2,000
// to 2,234 bytes each when it was).
room!(VecDeque<Outbound>, false);

impl Queues {
    /// Takes one queue out of `queues`, or the thread's spare one, or an
    /// empty one, which costs nothing until used.
    pub fn take<T: Default + Room>(
        queues: &mut Option<Box<Queues>>,
        queue: fn(&mut Queues) -> &mut T,
    ) -> T {
        let own: T = queues
            .as_deref_mut()
            .map(queue)
            .map(std::mem::take)
            .unwrap_or_default();
        if own.has_room() || !T::LENT {
            return own;
        }
        SPARE.with_borrow_mut(|spare| std::mem::take(queue(spare)))
    }

    /// Puts back a queue taken out if `keep`, making `queues` if need be,
    /// and drops `queues` once no queue in it is worth keeping. One not
    /// kept, empty and small, is the thread's spare if it has none.
    pub fn put<T: Room>(
        queues: &mut Option<Box<Queues>>,
        queue: fn(&mut Queues) -> &mut T,
        taken: T,
        keep: bool,
    ) {
        if keep {
            *queue(queues.get_or_insert_with(Box::default)) = taken;
        } else if T::LENT && taken.has_room() && lendable(&taken) {
            SPARE.with_borrow_mut(|spare| {
                let slot = queue(spare);
                if !slot.has_room() {
                    *slot = taken;
                }
            });
        }
        if let Some(q) = queues {
            let small = q
                .draining
                .capacity()
                .max(q.inbound.capacity())
                .max(q.dispatching.capacity());
            if small <= QUEUE_KEPT_PACKETS && q.dispatching.is_empty() {
                *queues = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_let_go_is_lent_to_the_next_connection_on_its_thread() {
        // Whatever an earlier test on this thread left spare.
        drop(Queues::take(&mut None, |q| &mut q.inbound));
        let mut queues = None;
        let mut inbound = Queues::take(&mut queues, |q| &mut q.inbound);
        inbound.reserve_exact(QUEUE_KEPT_PACKETS);
        let room = inbound.as_ptr();
        Queues::put(&mut queues, |q| &mut q.inbound, inbound, false);
        assert!(queues.is_none(), "an idle connection holds no queue");
        let lent = Queues::take(&mut None, |q| &mut q.inbound);
        assert_eq!(lent.as_ptr(), room, "the same room, not a new one");
        let none_left = Queues::take(&mut None, |q| &mut q.inbound);
        assert_eq!(none_left.capacity(), 0);
    }

    #[test]
    fn the_outbox_queue_is_never_lent() {
        let mut queues = None;
        let mut draining: VecDeque<Outbound> = Queues::take(&mut queues, |q| &mut q.draining);
        draining.reserve_exact(QUEUE_KEPT_PACKETS);
        Queues::put(&mut queues, |q| &mut q.draining, draining, false);
        let next = Queues::take(&mut None, |q| &mut q.draining);
        assert_eq!(next.capacity(), 0, "an idle outbox swaps in no room");
    }

    #[test]
    fn a_busy_connection_keeps_its_own_queue() {
        let mut queues = None;
        let mut dispatching: VecDeque<Packet> = Queues::take(&mut queues, |q| &mut q.dispatching);
        dispatching.reserve_exact(QUEUE_KEPT_PACKETS * 4);
        let room = dispatching.capacity();
        Queues::put(&mut queues, |q| &mut q.dispatching, dispatching, true);
        let kept = Queues::take(&mut queues, |q| &mut q.dispatching);
        assert_eq!(kept.capacity(), room);
    }
}
