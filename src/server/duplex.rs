//! A connection's stream, read and written by its one task without being
//! split. The task's wait polls a read and a write side by side, each a
//! future that needs the stream; `tokio::io::split` let them share it
//! through an `Arc`, 72 bytes of heap for every idle connection. Here they
//! share it in place, through a lock taken only inside a poll: never
//! contended, and never held across an `.await`.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(super) struct Duplex<T>(Mutex<T>);

impl<T> Duplex<T> {
    pub(super) fn new(stream: T) -> Duplex<T> {
        Duplex(Mutex::new(stream))
    }

    /// The stream, where nothing else can be polling it.
    pub(super) fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stream for a call that only looks at it, under its lock: also
    /// while it is lent (`write_through.rs`), when `get_mut` may not be
    /// used.
    pub(super) fn with_ref<R>(&self, call: impl FnOnce(&T) -> R) -> R {
        call(&self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A handle for one of the futures that poll it side by side.
    pub(super) fn half(&self) -> Half<'_, T> {
        Half(&self.0)
    }
}

/// The stream, for one of the futures of a wait.
pub(super) struct Half<'a, T>(&'a Mutex<T>);

impl<T: Unpin> Half<'_, T> {
    fn with<R>(&self, poll: impl FnOnce(Pin<&mut T>) -> R) -> R {
        // A panic inside a poll ends the task, and the stream with it.
        let mut stream = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        poll(Pin::new(&mut *stream))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Half<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_read(cx, buf))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Half<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.with(|stream| stream.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|stream| stream.poll_shutdown(cx))
    }
}
