//! The consistency check: the simulation's way to see, as it runs, that the
//! counts each part keeps agree with the sessions, and that no session is
//! over a limit. It only reads; a failure is a bug somewhere else.

use super::backlog::SENT_LIVE_MAX;
use super::outbox::Message;
use super::sessions::Session;
use super::{Broker, Peaks};

impl Broker {
    /// Checks that the counts agree with the sessions and that no session is
    /// over a limit. The simulation calls it as it runs; it is cheap enough
    /// for tests, not for every packet.
    pub fn check(&self) -> Result<(), String> {
        let c = &self.config;
        // Its connection resumes a SUBSCRIBE in slices: with none, it would
        // be kept for good.
        if let Some(conn) = (self.subscribing.keys()).find(|&&conn| self.client_id(conn).is_none())
        {
            return Err(format!("a SUBSCRIBE in slices outlived {conn:?}"));
        }
        let (mut subscriptions, mut queued, mut inflight, mut owed) = (0, 0, 0, 0);
        let mut memory_bytes = 0;
        for (sid, session) in self.sessions.iter() {
            let out = &session.outbox;
            subscriptions += session.subscriptions.len();
            owed += session.backlog.len();
            check_backlog(session)?;
            let (on_disk, on_disk_bytes) = out.tail().map_or((0, 0), |t| (t.count, t.bytes));
            queued += out.pending_len() + on_disk;
            memory_bytes += out.pending_bytes();
            inflight += out.inflight_len();
            check_tail(session)?;
            let name = session.client_id();
            // Released messages cannot be taken back: a session resumed with
            // a smaller Receive Maximum keeps them all in flight.
            if out.inflight_len() > out.window().max(out.released())
                || out.window() > c.inflight_messages_max
            {
                return Err(format!(
                    "{name}: {} in flight, over its window of {}",
                    out.inflight_len(),
                    out.window()
                ));
            }
            // A resumed session may put back what its client's smaller
            // Receive Maximum does not let it resend yet.
            // Head and tail together, as they are held to the limits.
            let (len, bytes) = (
                out.pending_len() + on_disk,
                out.pending_bytes() + on_disk_bytes,
            );
            if len > c.queued_messages_max + c.inflight_messages_max
                || bytes > c.queued_bytes_max + out.put_back_bytes()
            {
                return Err(format!(
                    "{name}: {len} queued ({bytes} bytes), over the limit"
                ));
            }
            self.sessions.check_indexed(sid, session)?;
        }
        let counted = (
            self.index.len() + self.shared.members() - self.reaping.len(),
            self.counts.queued(),
            self.counts.inflight(),
        );
        if owed != self.owed {
            return Err(format!(
                "{} filters counted as owed retained messages, {owed} in the sessions",
                self.owed
            ));
        }
        if self.counts.memory_bytes() != memory_bytes {
            return Err(format!(
                "{} bytes counted as queued in memory, {memory_bytes} in the sessions",
                self.counts.memory_bytes()
            ));
        }
        if counted != (subscriptions, queued, inflight) {
            return Err(format!(
                "counts (subscriptions, queued, inflight) {counted:?} disagree with the sessions' {:?}",
                (subscriptions, queued, inflight)
            ));
        }
        self.sessions.check_sizes()
    }
}

impl Broker {
    /// The most one session holds of what a client can fill, measured
    /// message by message rather than read from the counters the limits
    /// are enforced with, so that a counter that undercounts is seen. It
    /// walks every session and queued message: for tests and the
    /// simulation, never for `$SYS`.
    /// The runtime fills in `outbound_qos0_bytes`.
    pub fn peaks(&self) -> Peaks {
        let mut peaks = Peaks::default();
        for (_, session) in self.sessions.iter() {
            // Messages put back from the window on resumption were let
            // into the window, not the queue: its limit is not theirs.
            let on_disk = session.outbox.tail().map_or(0, |t| t.bytes);
            let bytes: usize = on_disk
                + session
                    .outbox
                    .pending()
                    .filter(|m| m.resend_id.is_none())
                    .map(|m: &Message| m.publish.weight())
                    .sum::<usize>();
            peaks.queued_bytes = peaks.queued_bytes.max(bytes);
            peaks.filters = peaks.filters.max(session.subscriptions.len());
        }
        peaks
    }
}

/// A backlog owes only filters the session holds, each once, and
/// remembers a bounded number of topics per filter.
fn check_backlog(session: &Session) -> Result<(), String> {
    let name = session.client_id();
    let mut filters = std::collections::BTreeSet::new();
    for owed in session.backlog.iter() {
        if !session.subscriptions.contains(&owed.filter) || !filters.insert(&owed.filter) {
            return Err(format!(
                "{name}: owes retained messages for {:?}, which it does not hold or owes twice",
                owed.filter
            ));
        }
        if owed.sent_live.len() > SENT_LIVE_MAX {
            return Err(format!(
                "{name}: {} topics settled live",
                owed.sent_live.len()
            ));
        }
    }
    Ok(())
}

/// A tail on disk holds messages, all queued after every message of the
/// head, and only a durable session has one.
fn check_tail(session: &Session) -> Result<(), String> {
    let out = &session.outbox;
    let Some(tail) = out.tail() else {
        return Ok(());
    };
    let name = session.client_id();
    if tail.count == 0 || !out.is_durable() {
        return Err(format!(
            "{name}: a tail of {} on disk, durable {}",
            tail.count,
            out.is_durable()
        ));
    }
    if let Some(m) = out.pending().find(|m| m.seq >= tail.from) {
        return Err(format!(
            "{name}: message {} in memory is behind its tail on disk from {}",
            m.seq, tail.from
        ));
    }
    Ok(())
}
