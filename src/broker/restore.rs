//! A broker rebuilt from what the store kept: its durable sessions, offline,
//! with their filters, messages and QoS 2 ids, and the retained messages.

use super::journal::{Restored, Stored};
use super::Broker;
use crate::config::planted;

impl Broker {
    /// Takes in what the store read back, into a broker that has no
    /// sessions yet, then checks the result as the simulation would.
    pub fn restore(&mut self, restored: Restored) -> Result<(), String> {
        debug_assert_eq!(self.sessions.len(), 0, "restored into a fresh broker");
        let mut online_at_crash = Vec::new();
        for session in restored.sessions {
            let sid = session.sid;
            if self.sessions.by_client(&session.record.client_id).is_some() {
                return Err(format!(
                    "client id {:?} is stored twice",
                    session.record.client_id
                ));
            }
            let mut record = session.record;
            if planted!(self.config, ExpiryRestartedAtBoot) {
                record.expires_at = None;
            }
            if record.expires_at.is_none() {
                online_at_crash.push(sid);
            }
            self.sessions.restore(sid, record, self.now);
            for (filter, subscription) in session.filters {
                self.restore_subscription(sid, filter, subscription);
            }
            let stored = self.sessions.get_mut(sid);
            for (seq, mut message) in session.messages {
                if let (true, Stored::Sent(_, sent)) =
                    (planted!(self.config, InflightIdsNotRestored), &message)
                {
                    message = Stored::Queued(sent.clone());
                }
                self.counts.restore(&mut stored.outbox, seq, message);
            }
            if let Some((tail, last_seq)) = session.tail {
                self.counts.restore_tail(&mut stored.outbox, tail, last_seq);
            }
            stored.incoming_qos2.restore(session.awaiting_release);
        }
        for (topic, retained) in restored.retained {
            self.retained.set(&topic, retained, usize::MAX);
        }
        // What was read in is not a change to write back, but for the
        // deadlines this start gave sessions that were online at the crash:
        // unwritten, each later start would give them a new one, and time
        // would never run out for them (the durable scenario found it).
        self.take_changes();
        for sid in online_at_crash {
            self.sessions.mark_changed(sid);
        }
        self.check()
    }
}
