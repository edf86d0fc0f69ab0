//! What the ACL lets a session do, asked wherever a message crosses: a
//! PUBLISH and a will (write), a SUBSCRIBE's filters, and every copy of a
//! message, live, retained or shared, before it goes to a session (read),
//! as mosquitto asks at each delivery: a wildcard filter granted may still
//! match topics its client may not read. Without an `acl_file` each
//! question is one test of `Broker::acl`; with one, a walk of the session's
//! rules, which allocates nothing.

use super::sessions::{Session, Sessions};
use super::{Broker, SessionId};
use crate::auth::{Access, AclFile, ClientAcl};
use crate::topic::{TopicFilter, TopicName};

impl Broker {
    /// Whether `session` may read or write `topic`.
    pub(super) fn may(&self, session: &Session, topic: &TopicName, access: Access) -> bool {
        allowed(self.acl.is_some(), session.acl.as_deref(), topic, access)
    }

    /// Whether the session may receive a message on `topic`.
    pub(super) fn may_read(&self, sid: SessionId, topic: &TopicName) -> bool {
        may_read_in(self.acl.is_some(), &self.sessions, sid, topic)
    }

    /// Whether the session may publish to `topic`, itself or by its will.
    pub(super) fn may_write(&self, sid: SessionId, topic: &TopicName) -> bool {
        self.acl.is_none() || self.may(self.sessions.get(sid), topic, Access::Write)
    }

    /// Judges every session by `acl` from now on, as mosquitto does when
    /// SIGHUP has it read its ACL file again: each session's rules are
    /// made anew from its client id and user name, and the next message
    /// each would read or write is judged by them. Subscriptions granted
    /// before stay, as each message they match is judged again. One walk
    /// over the sessions under the lock, at an operator's word only.
    pub fn replace_acl(&mut self, acl: AclFile) {
        for session in self.sessions.iter_mut() {
            let rules = acl.for_client(session.owner(), session.client_id());
            session.acl = Some(Box::new(rules));
        }
        self.acl = Some(acl);
    }

    /// Whether `session` may subscribe to `filter` (for a shared
    /// subscription, the filter inside `$share/{group}/`).
    pub(super) fn may_subscribe(&self, session: &Session, filter: &TopicFilter) -> bool {
        self.acl.is_none()
            || session
                .acl
                .as_ref()
                .is_some_and(|acl| acl.may_subscribe(filter))
    }
}

/// Whether a session with the rules `acl` may read or write `topic`, when
/// the broker has an ACL (`checked`) or not; for the walks that borrow
/// parts of the broker and of the session apart. A session without rules
/// while the broker has an ACL may do nothing.
pub(super) fn allowed(
    checked: bool,
    acl: Option<&ClientAcl>,
    topic: &TopicName,
    access: Access,
) -> bool {
    !checked || acl.is_some_and(|acl| acl.allows(topic, access))
}

/// `Broker::may_read`, for closures that borrow the sessions apart from
/// the rest of the broker; without an ACL (`checked` false) it looks up
/// nothing.
pub(super) fn may_read_in(
    checked: bool,
    sessions: &Sessions,
    sid: SessionId,
    topic: &TopicName,
) -> bool {
    !checked || allowed(true, sessions.get(sid).acl.as_deref(), topic, Access::Read)
}
