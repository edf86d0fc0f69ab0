//! What the broker has to say in the log. It is said while the routing lock
//! is held and written after it is let go: formatting and writing a line
//! must not hold up every other client (a slow log reader froze the broker
//! for seconds when each line was written under the lock).

use std::fmt;

use super::{Broker, ConnId};
use crate::codec::{PacketId, ReasonCode};
use crate::topic::{TopicFilter, TopicName};

#[derive(Debug)]
pub enum Notice {
    TakenOver {
        client_id: String,
        old: ConnId,
        new: ConnId,
    },
    SessionLimit {
        client_id: String,
        max: usize,
    },
    RetainedFull {
        topic: TopicName,
        max: usize,
    },
    SubscriptionRefused {
        client_id: String,
        filter: TopicFilter,
        code: ReasonCode,
    },
    SessionExpired {
        client_id: String,
    },
    QueueFull {
        client_id: String,
        topic: TopicName,
    },
    TooLarge {
        client_id: String,
    },
    AckUnknown {
        client_id: String,
        packet_id: PacketId,
    },
    PubRecUnknown {
        client_id: String,
        packet_id: PacketId,
    },
    PubRecForQos1 {
        client_id: String,
        packet_id: PacketId,
    },
    /// A PUBLISH to a topic its client may not write (`$SYS`, another `$`
    /// topic, or one its ACL denies), dropped.
    PublishDenied {
        client_id: String,
        topic: TopicName,
    },
    /// A CONNECT for a session another user owns.
    NotOwner {
        client_id: String,
    },
    /// Memory went over `memory_max_bytes`, or back under it.
    Memory {
        full: bool,
    },
}

impl Notice {
    /// What it is about, for the log's rate limit.
    pub fn kind(&self) -> &'static str {
        match self {
            Notice::TakenOver { .. } => "session taken over",
            Notice::SessionLimit { .. } => "session limit",
            Notice::RetainedFull { .. } => "retained store full",
            Notice::SubscriptionRefused { .. } => "subscription refused",
            Notice::SessionExpired { .. } => "session expired",
            Notice::QueueFull { .. } => "session queue full",
            Notice::TooLarge { .. } => "too large for the client",
            Notice::AckUnknown { .. } | Notice::PubRecUnknown { .. } => "unknown ack",
            Notice::PubRecForQos1 { .. } => "PUBREC for QoS 1",
            Notice::Memory { .. } => "memory limit",
            Notice::NotOwner { .. } => "session of another user",
            Notice::PublishDenied { .. } => "publish not authorized",
        }
    }

    pub fn log(&self) {
        match self {
            Notice::TakenOver {
                client_id,
                old,
                new,
            } => {
                let client_id = Clipped(client_id);
                tracing::info!(%client_id, ?old, ?new, "session taken over");
            }
            Notice::SessionLimit { client_id, max } => {
                let client_id = Clipped(client_id);
                tracing::warn!(%client_id, max, "session limit reached");
            }
            Notice::RetainedFull { topic, max } => {
                let topic = Clipped(topic.as_str());
                tracing::warn!(%topic, max, "retained store full; message not retained");
            }
            Notice::SubscriptionRefused {
                client_id,
                filter,
                code,
            } => {
                let (client_id, filter) = (Clipped(client_id), Clipped(filter.as_str()));
                tracing::info!(%client_id, %filter, ?code, "subscription refused");
            }
            Notice::SessionExpired { client_id } => {
                let client_id = Clipped(client_id);
                tracing::debug!(%client_id, "session expired");
            }
            Notice::QueueFull { client_id, topic } => {
                let (client_id, topic) = (Clipped(client_id), Clipped(topic.as_str()));
                tracing::debug!(%client_id, %topic, "session queue full; message dropped");
            }
            Notice::PublishDenied { client_id, topic } => {
                let (client_id, topic) = (Clipped(client_id), Clipped(topic.as_str()));
                tracing::debug!(%client_id, %topic, "PUBLISH not authorized; dropped");
            }
            Notice::NotOwner { client_id } => {
                let client_id = Clipped(client_id);
                tracing::info!(%client_id, "CONNECT refused: the session belongs to another user");
            }
            Notice::Memory { full: true } => tracing::warn!(
                "memory over memory_max_bytes: refusing new QoS 1/2 messages and \
                 new sessions, dropping QoS 0, until it is under again"
            ),
            Notice::Memory { full: false } => {
                tracing::info!("memory under memory_max_bytes again")
            }
            Notice::TooLarge { client_id } => {
                let client_id = Clipped(client_id);
                tracing::debug!(
                    %client_id,
                    "message over the client's maximum packet size; dropped"
                );
            }
            Notice::AckUnknown {
                client_id,
                packet_id,
            } => {
                let client_id = Clipped(client_id);
                tracing::debug!(
                    %client_id,
                    ?packet_id,
                    "acknowledgement for no message in flight; ignored"
                );
            }
            Notice::PubRecUnknown {
                client_id,
                packet_id,
            } => {
                let client_id = Clipped(client_id);
                tracing::debug!(
                    %client_id,
                    ?packet_id,
                    "PUBREC for no message in flight; ignored"
                );
            }
            Notice::PubRecForQos1 {
                client_id,
                packet_id,
            } => {
                let client_id = Clipped(client_id);
                tracing::debug!(%client_id, ?packet_id, "PUBREC for a QoS 1 message; ignored");
            }
        }
    }
}

/// A client's string in a log line: up to `CLIPPED_CHARS` characters and
/// the length of the rest. Client ids, topics and filters run to 64 KB.
pub struct Clipped<'a>(pub &'a str);

const CLIPPED_CHARS: usize = 128;

impl fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(CLIPPED_CHARS) {
            None => f.write_str(self.0),
            Some((end, _)) => {
                let rest = self.0.len() - end;
                write!(f, "{}... ({rest} more bytes)", &self.0[..end])
            }
        }
    }
}

/// Notices kept until the lock is let go. A field of its own so that a
/// debug notice can be built from the rest of the broker's state.
#[derive(Debug, Default)]
pub(super) struct Notices(Vec<Notice>);

impl Notices {
    pub(super) fn note(&mut self, notice: Notice) {
        self.0.push(notice);
    }

    /// Keeps the notice `make` builds, if debug lines are logged at all:
    /// the ones said per message cost nothing otherwise.
    pub(super) fn debug(&mut self, make: impl FnOnce() -> Notice) {
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            self.0.push(make());
        }
    }
}

impl Broker {
    /// Hands over what the last calls had to say, for the log.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipped_keeps_short_strings_and_cuts_long_ones_at_a_char_boundary() {
        assert_eq!(Clipped("a/b").to_string(), "a/b");
        let long = "é".repeat(200);
        let shown = Clipped(&long).to_string();
        assert_eq!(
            shown,
            format!("{}... (144 more bytes)", "é".repeat(CLIPPED_CHARS))
        );
    }
}
