//! A connection's outbound queue. The router pushes to it without waiting;
//! the connection's task drains it into one buffer and one write. It is
//! bounded: QoS 0 beyond the bound is dropped, and the connection stops
//! reading its own client until its writes catch up.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::codec::{Packet, QoS};

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    notify: Notify,
}

#[derive(Default)]
struct State {
    packets: VecDeque<Packet>,
    /// Packets in `packets` that may not be dropped: all but QoS 0 PUBLISH.
    kept: usize,
    taken_over: bool,
}

/// What draining found besides packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    Open,
    TakenOver,
}

impl Outbox {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `packet`; returns false when a QoS 0 PUBLISH was dropped
    /// because `max` packets are already waiting. Everything else is queued:
    /// QoS 1/2 messages are bounded by the inflight window, and the
    /// connection's own replies by its paused reads.
    pub fn push(&self, packet: Packet, max: usize) -> bool {
        let mut state = self.state();
        if state.packets.len() >= max
            && matches!(&packet, Packet::Publish(p) if p.qos == QoS::AtMostOnce)
        {
            return false;
        }
        state.packets.push_back(packet);
        drop(state);
        self.notify.notify_one();
        true
    }

    /// Packets waiting to be written.
    pub fn waiting(&self) -> usize {
        self.state().packets.len()
    }

    /// Waiting packets that cannot be dropped. The connection pauses its
    /// reads on this, not on `waiting`: a flood of QoS 0 for the client is
    /// shed, and must not stop us reading its PINGREQs.
    pub fn kept(&self) -> usize {
        self.state().kept
    }

    /// Whether a newer connection has taken this one's client id.
    pub fn is_taken_over(&self) -> bool {
        self.state().taken_over
    }

    pub fn take_over(&self) {
        self.state().taken_over = true;
        self.notify.notify_one();
    }

    /// Moves every waiting packet to `into`, which must be empty; swapping
    /// keeps both queues' capacity, so a steady stream allocates nothing.
    pub fn drain(&self, into: &mut VecDeque<Packet>) -> Drained {
        debug_assert!(into.is_empty());
        let mut state = self.state();
        std::mem::swap(&mut state.packets, into);
        state.kept = 0;
        if state.taken_over {
            Drained::TakenOver
        } else {
            Drained::Open
        }
    }

    /// Resolves after a push or a takeover since the last call.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}
