//! TLS that sends what it was given. tokio-rustls's `poll_write` takes our
//! bytes and answers that it wrote them even when the socket was full:
//! they wait as records inside TLS until the next write or a flush. The
//! connection's session loop writes while it has bytes and then waits on
//! a read, so the end of a burst to a client slow to read stayed in TLS
//! until the broker next wrote to it, which a subscriber waiting for that
//! end never causes (4 messages of 16 KB, of 200, held;
//! tests/it/tls.rs). Here a read first sends what TLS holds, as
//! WebSocket's reads send its frames (`WebSocketBytes`), and a socket
//! that makes room wakes the wait. A write sends them itself, and the
//! session waits on a read whenever it has nothing to write, but for a
//! few turns while acknowledgements it put off wait (`dispatch_waiting`),
//! which end with a read too.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct SentThrough<T>(T);

impl<T> SentThrough<T> {
    pub fn new(stream: T) -> SentThrough<T> {
        SentThrough(stream)
    }

    pub fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: AsyncWrite + Unpin> SentThrough<T> {
    /// Sends records held from earlier writes, as far as the socket takes
    /// them; if it is full, the waker is kept for its room. An error is
    /// left to the next write to tell: a client that closed with our
    /// bytes unread may still have sent its DISCONNECT, and the read must
    /// find it, as it does on a plain socket (a review found a will sent
    /// for a client that said goodbye so).
    fn send_held(&mut self, cx: &mut Context<'_>) {
        let _ = Pin::new(&mut self.0).poll_flush(cx);
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for SentThrough<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.send_held(cx);
        Pin::new(&mut this.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SentThrough<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl<T: crate::net::Arrivals> crate::net::Arrivals for SentThrough<T> {
    fn last_arrival(&self) -> u64 {
        self.0.last_arrival()
    }

    fn acknowledge(&self, next: crate::net::NextAcks) {
        self.0.acknowledge(next);
    }

    fn give_way(&self) {
        self.0.give_way();
    }
}
