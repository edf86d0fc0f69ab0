//! How sessions end and what their ending sets off: DISCONNECT, a lost
//! connection, the expiry timer, and the will, published at once or after
//! its delay if its client may write its topic. Ending a session is one
//! step here, so that its subscriptions, counts, delayed will and shared
//! messages are all dealt with together.

use super::sessions::EXPIRY_NEVER;
use super::{Broker, BrokerError, ConnId, Notice, SessionId};
use crate::auth::Access;
use crate::codec::{Disconnect, LastWill, Property, Publish, ReasonCode};
use crate::config::planted;

impl Broker {
    /// DISCONNECT from the client. A 5.0 client may change its session's
    /// expiry here, but not from zero [MQTT-3.14.2-2], and may ask for its
    /// will to be sent (0x04).
    pub fn disconnect(&mut self, conn: ConnId, disconnect: &Disconnect) -> Result<(), BrokerError> {
        if let Some(expiry) = disconnect.properties.session_expiry_interval() {
            let sid = self.sessions.sid_of(conn);
            let max = self.config.session_expiry_max_secs;
            let session = self.sessions.get_mut(sid);
            let from_zero = session.asked_no_expiry() && expiry != 0;
            if from_zero && !planted!(self.config, DisconnectExpiryFromZero) {
                return Err(BrokerError::Protocol(
                    "DISCONNECT sets a session expiry after CONNECT set none",
                ));
            }
            if !planted!(self.config, DisconnectExpiryIgnored) {
                session.set_expiry_secs(expiry.min(max));
            }
        }
        let graceful = disconnect.reason != ReasonCode::DISCONNECT_WITH_WILL;
        self.connection_lost(conn, graceful);
        Ok(())
    }

    /// The connection ended: by DISCONNECT (`graceful`), or by anything else,
    /// which publishes the will, now or after its delay. A session with no
    /// expiry ends with it. Calling it for a connection the broker no longer
    /// knows (taken over) does nothing.
    pub fn connection_lost(&mut self, conn: ConnId, graceful: bool) {
        // A SUBSCRIBE it left in slices gets no more of them, nor a SUBACK:
        // the filters granted so far stay, as if it had sent only those.
        self.subscribing.remove(&conn);
        let Some(sid) = self.sessions.detach(conn) else {
            return;
        };
        let now = self.now;
        let session = self.sessions.get_mut(sid);
        let graceful = graceful || planted!(self.config, NoWillOnCrash);
        let will = session.take_will().filter(|_| !graceful);
        if let Some(will) = will {
            let mut delay = will.properties.will_delay_interval().unwrap_or(0);
            if planted!(self.config, IgnoreWillDelay) {
                delay = 0;
            }
            let expiry_secs = session.expiry_secs();
            if delay > 0 && expiry_secs > 0 {
                // Due after the delay, or when the session ends if sooner.
                let due = now + u64::from(delay.min(expiry_secs)) * 1000;
                self.sessions.delay_will(sid, due, *will);
            } else if self.may_write(sid, &will.topic) || planted!(self.config, AclSkippedForWills)
            {
                self.publish_will(sid, *will);
            }
        }
        let never = planted!(self.config, SessionNeverExpires);
        match self.sessions.get(sid).expiry_secs() {
            0 => self.end_session(sid),
            EXPIRY_NEVER => {}
            _ if never => {}
            secs => self.sessions.expire_at(sid, now + u64::from(secs) * 1000),
        }
    }

    /// Publishes the wills and ends the sessions that are due. The runtime
    /// calls it from a timer; `next_timer` says when it is next needed.
    pub fn tick(&mut self) {
        self.reap();
        self.resume_orphan_routes();
        while let Some(due) = self.sessions.pop_due(self.now) {
            let Some((due, sid)) = due else {
                continue;
            };
            let will = self.sessions.take_due_will(sid, due);
            if let Some(will) = will.filter(|w| self.may_write(sid, &w.topic)) {
                self.publish_will(sid, will);
            }
            if self.sessions.expired(sid, due) {
                self.notices.debug(|| Notice::SessionExpired {
                    client_id: self.sessions.get(sid).client_id().to_owned(),
                });
                self.end_session(sid);
            }
        }
    }

    /// When `tick` next has something to do.
    pub fn next_timer(&self) -> Option<super::Millis> {
        if !self.reaping.is_empty() || self.has_orphan_routes() {
            return Some(self.now);
        }
        self.sessions.next_timer()
    }

    /// Ends a session: a will still waiting out its delay is published now
    /// [MQTT-3.1.3-9], and messages a shared subscription chose it for go to
    /// another member of the group.
    pub(super) fn end_session(&mut self, sid: SessionId) {
        let (mut session, delayed_will) = self.sessions.remove(sid);
        self.owed -= session.backlog.len();
        self.drop_subscriptions(sid, &mut session.subscriptions);
        let will = delayed_will.filter(|w| self.may(&session, &w.topic, Access::Write));
        let undelivered = self.counts.close(session.outbox);
        if let Some(will) = will {
            self.publish_will(sid, will);
        }
        self.reroute_shared(undelivered);
    }

    /// Publishes a will its client may write: the callers ask when it is
    /// due, as mosquitto does, not at CONNECT. It follows what its
    /// session's client published before it.
    fn publish_will(&mut self, sid: SessionId, will: LastWill) {
        let LastWill {
            topic,
            payload,
            qos,
            retain,
            mut properties,
        } = will;
        properties.retain(|p| !matches!(p, Property::WillDelayInterval(_)));
        let publish = Publish {
            dup: false,
            qos,
            retain: retain && !planted!(self.config, RetainedWillNotKept),
            topic,
            packet_id: None,
            payload,
            properties,
        };
        self.route_will(sid, &publish);
    }
}
