//! The network the server runs on, as a type parameter: tokio's TCP for the
//! binary, turmoil's simulated TCP (feature `sim`) for the harness. The server
//! is the same code over both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};

mod arrival;
#[cfg(feature = "sim")]
pub use arrival::SimStamped;
pub use arrival::{stamp_accepted, Arrivals, Stamped, StampedTcp};

pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Arrivals + Unpin + Send + 'static;

    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    fn local_addr(&self) -> io::Result<SocketAddr>;

    /// Asks for the arrival of what its connections read (`Arrivals`),
    /// once, before the first accept.
    fn stamp_arrivals(&self) {}
}

const TCP_KEEPALIVE_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
const TCP_KEEPALIVE_RETRIES: u32 = 6;

impl Listener for tokio::net::TcpListener {
    type Stream = StampedTcp;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        // Batching happens in the writer; Nagle would only add latency. A
        // peer that reset at once makes this fail: not an accept failure.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        // A peer that vanished (power lost, cable pulled) under a long MQTT
        // keepalive is found by the kernel within about two minutes.
        let probes = socket2::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE_IDLE)
            .with_interval(TCP_KEEPALIVE_INTERVAL)
            .with_retries(TCP_KEEPALIVE_RETRIES);
        if let Err(error) = socket2::SockRef::from(&stream).set_tcp_keepalive(&probes) {
            tracing::debug!(%error, %peer, "cannot set TCP keepalive");
        }
        Ok((StampedTcp::accepted(stream), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }

    fn stamp_arrivals(&self) {
        stamp_accepted(self);
    }
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
