//! A listener as the server runs it: its transport, who may connect on it,
//! and how many connections it has against its own limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{Config, ListenerConfig};
use crate::transport::{Tls, Transport};

pub struct Endpoint {
    pub(super) transport: Transport,
    pub(super) allow_anonymous: bool,
    /// The client certificate's CN is the user name, unchecked.
    pub(super) identity_as_username: bool,
    connections_max: usize,
    connections: AtomicUsize,
    /// Planted `HandshakeFailureShutsListener`: a handshake failed here.
    #[cfg(feature = "planted-bugs")]
    shut: std::sync::atomic::AtomicBool,
}

impl Endpoint {
    /// `listener` of `config`, its files (certificates) read: an error is
    /// one line for the operator.
    pub fn new(listener: &ListenerConfig, config: &Config) -> Result<Endpoint, String> {
        let transport = Transport::new(listener, config)
            .map_err(|e| format!("listener {}: {e}", listener.address))?;
        Ok(Endpoint {
            transport,
            allow_anonymous: config.anonymous_allowed_on(listener),
            identity_as_username: listener.use_identity_as_username,
            connections_max: listener.connections_max.unwrap_or(usize::MAX),
            connections: AtomicUsize::new(0),
            #[cfg(feature = "planted-bugs")]
            shut: Default::default(),
        })
    }

    /// Plain MQTT with the broker's settings, for a listener bound by the
    /// caller (tests, the simulation), whose address `config` may not know.
    pub fn plain(config: &Config) -> Endpoint {
        Endpoint {
            transport: Transport::plain(),
            allow_anonymous: config.anonymous_allowed(),
            identity_as_username: false,
            connections_max: usize::MAX,
            connections: AtomicUsize::new(0),
            #[cfg(feature = "planted-bugs")]
            shut: Default::default(),
        }
    }

    /// MQTT over `tls`, otherwise as `plain`: for a listener bound by the
    /// caller whose certificates are in memory (the simulation's).
    pub fn secured(config: &Config, tls: Tls) -> Endpoint {
        Endpoint {
            transport: Transport::tls(tls),
            ..Endpoint::plain(config)
        }
    }

    /// Reads the listener's files (TLS certificates) again for the
    /// connections to come; those open keep what they have. On an error,
    /// one line, the listener keeps what it had.
    pub fn reload(&self) -> Result<(), String> {
        self.transport.reload()
    }

    /// Planted `HandshakeFailureShutsListener`: no connection is admitted
    /// from now on. Without the feature it does nothing.
    pub(super) fn shut(&self) {
        #[cfg(feature = "planted-bugs")]
        self.shut.store(true, Ordering::Relaxed);
    }

    /// A place for one more connection, if the listener has room; the
    /// place is freed when the slot drops with its connection's task.
    pub(super) fn admit(self: &Arc<Self>) -> Option<Slot> {
        #[cfg(feature = "planted-bugs")]
        if self.shut.load(Ordering::Relaxed) {
            return None;
        }
        self.connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.connections_max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot(self.clone()))
    }
}

/// One connection's place on its listener.
pub(super) struct Slot(Arc<Endpoint>);

impl Slot {
    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
