//! Why a connection ended, and what a 5.0 client is told of it.

use std::io;
use std::time::Duration;

use crate::broker::BrokerError;
use crate::codec::{DecodeError, ReasonCode};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum End {
    #[error("client sent DISCONNECT")]
    Disconnect,
    #[error("client closed the connection")]
    Eof,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    #[error("refused packet: {0}")]
    Refused(#[from] BrokerError),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("transport handshake failed: {0}")]
    Transport(io::Error),
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
    #[error("no packet within 1.5 times the keepalive of {0}s")]
    KeepAlive(u16),
    #[error("a packet begun was not whole within {0:?}")]
    PacketTimeout(Duration),
    #[error("CONNECT refused")]
    ConnectRefused,
    #[error("taken over by a newer connection with the same client id")]
    TakenOver,
    #[error("server shutting down")]
    Shutdown,
    /// Replies held for a commit of the data store that failed: they can
    /// never be sent, and the client is owed them, so it must start again.
    #[error("the data store failed; what was held for it cannot be acknowledged")]
    StoreFailed,
}

impl End {
    /// What it is, for the log's rate limit.
    pub fn kind(&self) -> &'static str {
        match self {
            End::Disconnect => "disconnect",
            End::Eof => "eof",
            End::Io(_) => "i/o error",
            End::Decode(_) => "malformed packet",
            End::Refused(_) => "refused packet",
            End::Protocol(_) => "protocol violation",
            End::Transport(_) => "transport handshake",
            End::ConnectTimeout(_) => "connect timeout",
            End::KeepAlive(_) => "keepalive timeout",
            End::PacketTimeout(_) => "packet timeout",
            End::ConnectRefused => "connect refused",
            End::TakenOver => "taken over",
            End::Shutdown => "shutdown",
            End::StoreFailed => "store failed",
        }
    }

    /// Whether we end it for the client's fault while it may still read:
    /// then it is owed what was answered before the fault, and a close it
    /// can read to the end.
    pub fn is_clients_fault(&self) -> bool {
        matches!(
            self,
            End::Decode(_) | End::Refused(_) | End::Protocol(_) | End::ConnectRefused
        )
    }

    /// What a 5.0 client is told in the DISCONNECT we send before closing;
    /// `None` where nothing is sent: the client closed, or never connected.
    pub fn reason(&self) -> Option<ReasonCode> {
        Some(match self {
            End::Disconnect | End::Eof | End::Io(_) => return None,
            End::Transport(_) | End::ConnectTimeout(_) | End::ConnectRefused => return None,
            End::Decode(DecodeError::PacketTooLarge { .. }) => ReasonCode::PACKET_TOO_LARGE,
            End::Decode(
                DecodeError::DuplicateProperty { .. }
                | DecodeError::PropertyNotAllowed { .. }
                | DecodeError::InvalidPropertyValue { .. }
                | DecodeError::EmptyTopicWithoutAlias
                | DecodeError::TopicAliasUnknown(_),
            ) => ReasonCode::PROTOCOL_ERROR,
            End::Decode(DecodeError::TopicAliasInvalid(_)) => ReasonCode::TOPIC_ALIAS_INVALID,
            End::Decode(_) => ReasonCode::MALFORMED_PACKET,
            End::Refused(error) => error.reason(),
            End::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            // The nearest the spec has: the client went quiet mid-packet.
            End::KeepAlive(_) | End::PacketTimeout(_) => ReasonCode::KEEP_ALIVE_TIMEOUT,
            End::TakenOver => ReasonCode::SESSION_TAKEN_OVER,
            End::Shutdown => ReasonCode::SERVER_SHUTTING_DOWN,
            End::StoreFailed => ReasonCode::UNSPECIFIED_ERROR,
        })
    }
}
