//! A connection's two clocks: the keepalive, renewed by every whole
//! packet heard, and the packet timeout, which bounds how long a packet
//! begun may take to be whole. One alarm serves both (`alarms.rs`); it is
//! moved only when it rings, since moving it on every packet would take a
//! lock shared by every connection.

use std::time::Duration;

use crate::broker::Millis;
use crate::link::End;

/// Its times in the server's milliseconds (`Shared::millis`) and its
/// spans in milliseconds, not `Instant`s and `Duration`s: every idle
/// connection's task holds it, and those took 16 bytes more there.
pub(super) struct Deadlines {
    keep_alive: u16,
    /// Silence allowed: 1.5 times the keepalive [MQTT-3.1.2-24]; unused
    /// when the keepalive is 0.
    grace_ms: u32,
    packet_timeout_ms: u32,
    /// When the last whole packet was heard, rounded up: `now` is whole
    /// milliseconds rounded down, and a deadline must not fall early.
    heard: Millis,
    /// When the partial packet buffered began to arrive, rounded up;
    /// `NOT_PARTIAL` when none is (an `Option` took 8 bytes more).
    partial_since: Millis,
    /// When the alarm that is set rings.
    alarm: Millis,
}

const NOT_PARTIAL: Millis = Millis::MAX;

impl Deadlines {
    /// Its alarm is set for `first()`.
    pub fn new(
        keep_alive: u16,
        grace: Duration,
        packet_timeout: Duration,
        now: Millis,
    ) -> Deadlines {
        let mut deadlines = Deadlines {
            keep_alive,
            grace_ms: millis(grace),
            packet_timeout_ms: millis(packet_timeout),
            heard: now.saturating_add(1),
            partial_since: NOT_PARTIAL,
            alarm: 0,
        };
        deadlines.alarm = deadlines.first();
        deadlines
    }

    /// When the alarm that is set rings.
    pub fn alarm(&self) -> Millis {
        self.alarm
    }

    /// When the alarm first rings. It rings at least every
    /// `packet_timeout`, so a partial packet is found at most twice that
    /// after it began.
    fn first(&self) -> Millis {
        let wait = if self.keep_alive > 0 {
            self.grace_ms.min(self.packet_timeout_ms)
        } else {
            self.packet_timeout_ms
        };
        self.heard.saturating_add(wait.into())
    }

    /// After the buffered input was handled: whether whole packets were,
    /// and whether bytes of one not yet whole are left. `now` is read only
    /// if needed.
    pub fn handled(&mut self, decoded: bool, partial: bool, now: impl Fn() -> Millis) {
        if decoded && self.keep_alive > 0 {
            self.heard = now().saturating_add(1);
        }
        self.partial_since = match self.partial_since {
            _ if !partial => NOT_PARTIAL,
            since if since != NOT_PARTIAL && !decoded => since,
            _ => now().saturating_add(1),
        };
    }

    /// The alarm rang at `now`: the end it found, or when it rings next,
    /// which is then the alarm set.
    pub fn rang(&mut self, now: Millis) -> Result<Millis, End> {
        let mut next = now.saturating_add(self.packet_timeout_ms.into());
        if self.keep_alive > 0 {
            let due = self.heard.saturating_add(self.grace_ms.into());
            if now >= due {
                return Err(End::KeepAlive(self.keep_alive));
            }
            next = next.min(due);
        }
        if self.partial_since != NOT_PARTIAL {
            let due = self
                .partial_since
                .saturating_add(self.packet_timeout_ms.into());
            if now >= due {
                let timeout = Duration::from_millis(self.packet_timeout_ms.into());
                return Err(End::PacketTimeout(timeout));
            }
            next = next.min(due);
        }
        self.alarm = next;
        Ok(next)
    }
}

/// Whole milliseconds, up to 49 days: a keepalive's grace is at most 27
/// hours, and a longer packet timeout never fires in practice.
fn millis(span: Duration) -> u32 {
    u32::try_from(span.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// `now` is whole milliseconds rounded down: a packet heard at 1,000
    /// may have come at 1,000.9, so its grace of 15 s ends at 16,001 at
    /// the earliest whole millisecond after it, not at 16,000.
    #[test]
    fn the_keepalive_ends_no_earlier_than_its_grace_after_the_last_packet() {
        let mut deadlines = Deadlines::new(10, 15 * SECOND, 60 * SECOND, 1_000);
        assert_eq!(deadlines.alarm(), 16_001);
        assert_eq!(deadlines.rang(16_000).ok(), Some(16_001));
        assert!(matches!(deadlines.rang(16_001), Err(End::KeepAlive(10))));
        deadlines.handled(true, false, || 5_000);
        assert_eq!(deadlines.rang(16_001).ok(), Some(20_001));
        assert_eq!(deadlines.alarm(), 20_001);
    }

    #[test]
    fn a_partial_packet_ends_a_packet_timeout_after_it_began() {
        let mut deadlines = Deadlines::new(0, Duration::ZERO, 60 * SECOND, 0);
        assert_eq!(deadlines.alarm(), 60_001);
        deadlines.handled(false, true, || 2_000);
        // Still partial later: it began at 2,000, not now.
        deadlines.handled(false, true, || 30_000);
        assert_eq!(deadlines.rang(60_001).ok(), Some(62_001));
        assert!(matches!(deadlines.rang(62_001), Err(End::PacketTimeout(_))));
        // Whole at last: no partial packet is timed.
        deadlines.handled(true, false, || 62_000);
        assert_eq!(deadlines.rang(62_001).ok(), Some(122_001));
    }
}
