//! The server's own tasks (acceptors, timers, store, `$SYS`, HTTP), watched:
//! if one panics, or ends while the server is not stopping, the whole
//! server stops and says which. Without its timers task a broker would
//! serve on with no keepalive, will or expiry; without its store task it
//! would acknowledge nothing again; without an acceptor a listener would
//! accept nothing. Each of those looks healthy from outside. A stopped
//! broker is what a supervisor sees and restarts, and its store brings
//! back what it had acknowledged. A connection's task is not watched: its
//! panic ends that one connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::Shared;

pin_project_lite::pin_project! {
    struct Essential<F> {
        #[pin]
        task: F,
        shared: Arc<Shared>,
        name: String,
    }
}

impl<F> Essential<F> {
    fn new(shared: Arc<Shared>, kind: &str, name: &str, task: F) -> Essential<F> {
        let name = if name.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind} {name}")
        };
        Essential { task, shared, name }
    }
}

impl<F: Future<Output = ()>> Future for Essential<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // Dropped only by a panic's unwinding out of the task's poll:
        // forgotten on every return. A guard in the future itself would not
        // do: a future that returned or was cancelled drops it too.
        let watch = Watch {
            shared: this.shared,
            name: this.name,
        };
        let poll = this.task.poll(cx);
        std::mem::forget(watch);
        if poll.is_ready() && !this.shared.cancel.is_cancelled() {
            this.shared.fail(format!("the {} task ended", this.name));
        }
        poll
    }
}

struct Watch<'a> {
    shared: &'a Shared,
    name: &'a str,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        self.shared.fail(format!("the {} task panicked", self.name));
    }
}

impl Shared {
    /// Spawns one of the server's own tasks, watched.
    pub(super) fn spawn_essential<F>(self: &Arc<Self>, kind: &'static str, name: String, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let watched = Essential::new(self.clone(), kind, &name, task);
        self.registry.spawn(kind, name, watched);
    }

    /// Stops the server for `why`; the first reason is the one reported.
    fn fail(&self, why: String) {
        tracing::error!(reason = why, "the broker stops");
        let _ = self.failed.set(why);
        self.cancel.cancel();
    }
}
