//! A connection's two clocks: the keepalive, renewed by every whole
//! packet heard, and the packet timeout, which bounds how long a packet
//! begun may take to be whole. One timer serves both; it is moved only
//! when it fires, since moving it on every packet costs a lock on the
//! timer wheel, and often a wake of the thread parked in epoll.

use std::time::Duration;

use tokio::time::Instant;

use crate::link::End;

/// Its two spans in milliseconds, not `Duration`s: every idle connection's
/// task holds it, and the two took 16 bytes more there.
pub(super) struct Deadlines {
    keep_alive: u16,
    /// Silence allowed: 1.5 times the keepalive [MQTT-3.1.2-24]; unused
    /// when the keepalive is 0.
    grace_ms: u32,
    packet_timeout_ms: u32,
    heard: Instant,
    /// When the partial packet buffered began to arrive.
    partial_since: Option<Instant>,
}

impl Deadlines {
    pub fn new(keep_alive: u16, grace: Duration, packet_timeout: Duration) -> Deadlines {
        Deadlines {
            keep_alive,
            grace_ms: millis(grace),
            packet_timeout_ms: millis(packet_timeout),
            heard: Instant::now(),
            partial_since: None,
        }
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.into())
    }

    fn packet_timeout(&self) -> Duration {
        Duration::from_millis(self.packet_timeout_ms.into())
    }

    /// When the timer first fires. It fires at least every
    /// `packet_timeout`, so a partial packet is found at most twice that
    /// after it began.
    pub fn first(&self) -> Instant {
        let wait = if self.keep_alive > 0 {
            self.grace().min(self.packet_timeout())
        } else {
            self.packet_timeout()
        };
        self.heard + wait
    }

    /// After the buffered input was handled: whether whole packets were,
    /// and whether bytes of one not yet whole are left.
    pub fn handled(&mut self, decoded: bool, partial: bool) {
        if decoded && self.keep_alive > 0 {
            self.heard = Instant::now();
        }
        self.partial_since = match self.partial_since {
            _ if !partial => None,
            Some(since) if !decoded => Some(since),
            _ => Some(Instant::now()),
        };
    }

    /// The timer fired: the end it found, or when to fire next.
    pub fn fired(&self) -> Result<Instant, End> {
        let now = Instant::now();
        let mut next = now + self.packet_timeout();
        if self.keep_alive > 0 {
            let due = self.heard + self.grace();
            if now >= due {
                return Err(End::KeepAlive(self.keep_alive));
            }
            next = next.min(due);
        }
        if let Some(since) = self.partial_since {
            let due = since + self.packet_timeout();
            if now >= due {
                return Err(End::PacketTimeout(self.packet_timeout()));
            }
            next = next.min(due);
        }
        Ok(next)
    }
}

/// Whole milliseconds, up to 49 days: a keepalive's grace is at most 27
/// hours, and a longer packet timeout never fires in practice.
fn millis(span: Duration) -> u32 {
    u32::try_from(span.as_millis()).unwrap_or(u32::MAX)
}
