//! What carries MQTT's bytes on a connection: the socket itself, or a
//! layer around it. A transport is opened in the connection's own task,
//! within its connect timeout, so a client slow to finish a handshake
//! holds up no one else; after that the connection reads and writes MQTT
//! bytes the same way whatever carries them, and so does the simulation,
//! over turmoil's streams. TLS, if the listener has it, is a layer below
//! the protocol (`tls`), so WebSocket over TLS is the one over the other.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::either::Either;

use crate::config::{Config, ListenerConfig, Protocol};

mod sent_through;
mod tls;
mod websocket;
pub use tls::{Secured, Tls};
pub use websocket::WebSocketBytes;

/// A listener's way of opening its connections.
#[derive(Debug)]
pub struct Transport {
    /// Set on a WebSocket listener; plain MQTT otherwise.
    websocket: Option<websocket::Upgrade>,
    tls: Option<Tls>,
}

/// A connection once its transport is open.
#[derive(Debug)]
pub struct Opened<S> {
    pub stream: Stream<Secured<S>>,
    /// The subject CN of the client's certificate, verified in the TLS
    /// handshake, if it sent one.
    pub identity: Option<String>,
}

/// A connection's byte stream, once its transport is open: MQTT on
/// `S` itself (`Left`) or inside WebSocket frames (`Right`; boxed: a plain
/// connection should not carry its size).
pub type Stream<S> = Either<S, Box<WebSocketBytes<S>>>;

impl Transport {
    pub fn new(listener: &ListenerConfig, config: &Config) -> Result<Transport, String> {
        let websocket = (listener.protocol == Protocol::Websockets).then(|| {
            websocket::Upgrade::new(listener.websocket_path(), config.packet_size_max_bytes)
        });
        Ok(Transport {
            websocket,
            tls: Tls::new(listener)?,
        })
    }

    /// MQTT straight on the socket.
    pub fn plain() -> Transport {
        Transport {
            websocket: None,
            tls: None,
        }
    }

    /// MQTT inside TLS made elsewhere (`Tls::from_pem`).
    pub fn tls(tls: Tls) -> Transport {
        Transport {
            websocket: None,
            tls: Some(tls),
        }
    }

    /// Reads the transport's files (TLS certificates) again for the
    /// connections to come; on an error it keeps what it had.
    pub fn reload(&self) -> Result<(), String> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Runs the transport's handshakes on a new connection: TLS, then
    /// the WebSocket upgrade.
    pub async fn open<S>(&self, stream: S) -> io::Result<Opened<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (secured, identity) = match &self.tls {
            Some(tls) => tls.accept(stream).await?,
            None => (Either::Left(stream), None),
        };
        let stream = match &self.websocket {
            None => Either::Left(secured),
            Some(upgrade) => Either::Right(Box::new(upgrade.accept(secured).await?)),
        };
        Ok(Opened { stream, identity })
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.websocket {
            None => f.write_str("mqtt")?,
            Some(upgrade) => write!(f, "websockets at {}", upgrade.path())?,
        }
        match self.tls {
            Some(_) => f.write_str(" over TLS"),
            None => Ok(()),
        }
    }
}
