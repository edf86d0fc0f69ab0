//! Messages and bytes in and out, counted where they pass: bytes by a
//! wrapper around each connection's stream, messages where the connection
//! decodes or encodes a PUBLISH. Atomic counters, never behind the routing
//! lock: a read or a write already costs a system call, beside which an
//! uncontended add is nothing.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The counters, shared by every connection of a server.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
}

/// What the counters held when read, since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficCounts {
    /// PUBLISH packets from clients, whatever became of them.
    pub messages_received: u64,
    /// PUBLISH packets put in a write to a client.
    pub messages_sent: u64,
    /// Bytes read from clients' connections.
    pub bytes_received: u64,
    /// Bytes written to clients' connections.
    pub bytes_sent: u64,
}

impl Traffic {
    pub(super) fn received_messages(&self, n: u64) {
        if n > 0 {
            self.messages_received.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(super) fn sent_messages(&self, n: u64) {
        if n > 0 {
            self.messages_sent.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(super) fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            messages_received: self.messages_received.load(Ordering::Relaxed),
            messages_sent: self.messages_sent.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }
}

/// A connection's stream that counts what goes through it, so that no read
/// or write site in the connection can be missed.
pub(super) struct Counted<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Counted<S> {
    pub(super) fn new(inner: S, traffic: Arc<Traffic>) -> Counted<S> {
        Counted { inner, traffic }
    }

    fn sent(&self, n: usize) {
        self.traffic
            .bytes_sent
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            this.traffic
                .bytes_received
                .fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: crate::net::Arrivals> crate::net::Arrivals for Counted<S> {
    fn last_arrival(&self) -> u64 {
        self.inner.last_arrival()
    }

    fn acknowledge(&self, next: crate::net::NextAcks) {
        self.inner.acknowledge(next)
    }

    fn give_way(&self) {
        self.inner.give_way();
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.sent(n);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.sent(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_the_bytes_each_way() {
        let traffic = Arc::new(Traffic::default());
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut counted = Counted::new(ours, traffic.clone());
        counted.write_all(b"hello").await.unwrap();
        theirs.write_all(b"abc").await.unwrap();
        let mut buf = [0; 8];
        let n = counted.read(&mut buf).await.unwrap();
        assert_eq!(n, 3);
        let counts = traffic.counts();
        assert_eq!((counts.bytes_sent, counts.bytes_received), (5, 3));
    }
}
