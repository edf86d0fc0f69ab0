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
        for session in restored.sessions {
            let sid = session.sid;
            if self.sessions.by_client(&session.record.client_id).is_some() {
                return Err(format!(
                    "client id {:?} is stored twice",
                    session.record.client_id
                ));
            }
            self.sessions.restore(sid, session.record, self.now);
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
            stored.incoming_qos2.restore(session.awaiting_release);
        }
        for (topic, retained) in restored.retained {
            self.retained.set(&topic, retained, usize::MAX);
        }
        // What was read in is not a change to write back.
        self.take_changes();
        self.check()
    }
}
