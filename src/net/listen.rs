//! The binary's TCP listeners, given their connections' options before
//! they listen. The kernel makes each connection a copy of its listener,
//! options and all, so every connection from one of these has them from
//! its handshake on, and accepting it needs no call to find out whether
//! it came before they were set. A listener bound first and given them
//! after (`Listener::prepare` on tokio's) asks each connection it
//! accepts: a `getsockopt` a connect, about 2% of the broker's CPU in
//! churn (benches/JOURNAL.md, "Connects and churn").

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use super::{give_options, stamp_accepted, with_options, Listener, StampedTcp};

/// The listen queue of tokio's `TcpListener::bind` (mio's, as std's).
const BACKLOG: i32 = 128;

/// A TCP listener made by `listen`.
#[derive(Debug)]
pub struct PreparedListener {
    listener: tokio::net::TcpListener,
    /// Every option was set on the listener: its connections have them.
    /// If one could not be, each connection is asked and given them, as
    /// tokio's listener's are.
    inherited: bool,
}

/// Binds `address` and listens, as tokio's `TcpListener::bind` does
/// (`SO_REUSEADDR`, so that a restarted broker binds while its old
/// connections wait out TIME_WAIT), with the connections' options given
/// in between. Must be called in a tokio runtime.
pub fn listen(address: SocketAddr) -> io::Result<PreparedListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    let given = give_options(&socket, "listener");
    let stamped = stamp_accepted(&socket);
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    let listener = tokio::net::TcpListener::from_std(std::net::TcpListener::from(socket))?;
    Ok(PreparedListener {
        listener,
        inherited: given && stamped,
    })
}

impl Listener for PreparedListener {
    type Stream = StampedTcp;

    async fn accept(&mut self) -> io::Result<(StampedTcp, SocketAddr)> {
        let (stream, peer) = self.listener.accept().await?;
        if self.inherited {
            return Ok((StampedTcp::new(stream), peer));
        }
        Ok((with_options(stream, &peer), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connected before the accept loop ever ran, as a client retrying
    /// while the broker starts: the socket the kernel made has the
    /// options, with nothing given at accept.
    #[tokio::test]
    async fn a_connection_made_at_once_has_the_options() {
        let mut listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(listener.inherited, "no connection is to be asked");
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut ours, _) = listener.accept().await.unwrap();
        crate::net::tests::assert_options(&ours);
        assert!(
            crate::net::arrival::tests::stamped_soon(&mut client, &mut ours).await,
            "its reads carry no stamp"
        );
    }

    #[tokio::test]
    async fn an_address_in_use_is_an_error() {
        let first = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let taken = first.local_addr().unwrap();
        let error = listen(taken).expect_err("the address is taken");
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
