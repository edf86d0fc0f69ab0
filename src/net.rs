//! The network the server runs on, as a type parameter: tokio's TCP for the
//! binary, turmoil's simulated TCP (feature `sim`) for the harness. The server
//! is the same code over both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(target_os = "linux")]
mod acks;
mod arrival;
mod give_way;
mod listen;
#[cfg(feature = "sim")]
pub use arrival::SimStamped;
pub use arrival::{stamp_accepted, Arrivals, NextAcks, Stamped, StampedTcp};
pub use listen::{listen, PreparedListener};

pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Arrivals + Unpin + Send + 'static;

    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Gives the listener what its connections are to have, once, before
    /// the first accept: the arrival of what they read (`Arrivals`), and
    /// the socket options of a real one.
    fn prepare(&self) {}
}

const TCP_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const TCP_KEEPALIVE_RETRIES: u32 = 6;

impl Listener for tokio::net::TcpListener {
    type Stream = StampedTcp;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        Ok((with_options(stream, &peer), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }

    fn prepare(&self) {
        stamp_accepted(self);
        give_options(self, "listener");
    }
}

/// An accepted connection, with the options every connection has. The
/// kernel makes each connection a copy of the listener, options and all:
/// those the listener was given (`prepare`) come with it. Six
/// `setsockopt`s on each cost churn about 2 µs of the broker's 29 a
/// client. One that finished its handshake before they were set (a client
/// retrying while the broker started) is given them here; TCP_NODELAY,
/// set last, says which (a listener made by `listen` has them before it
/// listens, and asks a connection only if it could not be given them). A peer that reset at once makes
/// asking fail too: then the options are tried, and their errors are
/// logged, not an accept's.
fn with_options(stream: tokio::net::TcpStream, peer: &SocketAddr) -> StampedTcp {
    if stream.nodelay().unwrap_or(false) {
        return StampedTcp::new(stream);
    }
    let stream = StampedTcp::accepted(stream);
    give_options(&stream, &peer.to_string());
    stream
}

/// What every connection's socket has, given to a listener for the
/// connections it makes, or to one of them; TCP_NODELAY last, so that a
/// connection that has it has the others (`accept`). Whether every one
/// was set.
fn give_options(socket: &impl std::os::fd::AsFd, whose: &str) -> bool {
    let socket = socket2::SockRef::from(socket);
    // A peer that vanished (power lost, cable pulled) under a long MQTT
    // keepalive is found by the kernel within about two minutes.
    let probes = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_RETRIES);
    let kept = socket.set_tcp_keepalive(&probes);
    if let Err(error) = &kept {
        tracing::debug!(%error, whose, "cannot set TCP keepalive");
    }
    // Batching happens in the writer; Nagle would only add latency.
    let nodelay = socket.set_tcp_nodelay(true);
    if let Err(error) = &nodelay {
        tracing::debug!(%error, whose, "cannot set TCP_NODELAY");
    }
    kept.is_ok() && nodelay.is_ok()
}

#[cfg(feature = "sim")]
impl Listener for turmoil::net::TcpListener {
    type Stream = SimStamped;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = turmoil::net::TcpListener::accept(self).await?;
        Ok((SimStamped::new(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        turmoil::net::TcpListener::local_addr(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options `give_options` sets, as the kernel reports them on the
    /// broker's end of a connection.
    pub(super) fn assert_options(stream: &impl std::os::fd::AsFd) {
        let socket = socket2::SockRef::from(stream);
        assert!(socket.tcp_nodelay().unwrap(), "TCP_NODELAY");
        assert!(socket.keepalive().unwrap(), "SO_KEEPALIVE");
        assert_eq!(socket.tcp_keepalive_time().unwrap(), TCP_KEEPALIVE_IDLE);
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            TCP_KEEPALIVE_INTERVAL
        );
        assert_eq!(
            socket.tcp_keepalive_retries().unwrap(),
            TCP_KEEPALIVE_RETRIES
        );
    }

    /// Inherited, not given by `accept`: the socket as the kernel
    /// accepted it has them.
    #[tokio::test]
    async fn a_connection_has_the_options_given_its_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.prepare();
        let addr = Listener::local_addr(&listener).unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = tokio::net::TcpListener::accept(&listener).await.unwrap();
        assert_options(&accepted);
    }

    /// Its handshake done before the listener had them, it has none of
    /// its own: `accept` gives them.
    #[tokio::test]
    async fn a_connection_made_before_the_listener_had_the_options_has_them_too() {
        let mut listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = Listener::local_addr(&listener).unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        listener.prepare();
        let (ours, _) = Listener::accept(&mut listener).await.unwrap();
        assert_options(&ours);
    }
}
