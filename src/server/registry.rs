//! Every task the server spawns, by kind and name, so that a leak is visible
//! in the census (the leak: README, "Where it comes from") and a shutdown can name the
//! tasks that did not end.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_util::task::TaskTracker;

#[derive(Clone, Default)]
pub struct TaskRegistry {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    tracker: TaskTracker,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    next_id: u64,
    /// The kinds of task, each once: a task's entry holds its kind's place
    /// here, not the `&str`'s two words.
    kinds: Vec<&'static str>,
    /// Names as boxed strs: one for each connection, and a `String`'s
    /// spare room and third word cost each about 20 bytes. A B-tree whose
    /// keys come in order keeps its nodes about half full: each word in an
    /// entry costs an idle connection about 16 bytes.
    tasks: BTreeMap<u64, (u8, Box<str>)>,
    /// Connections' tasks, by their connection's number alone: an entry of
    /// `tasks` with its name cost an idle connection about 80 bytes, one
    /// here about 20 (the heap fell by 63 a connection). Each line a
    /// connection logs names its number and peer.
    connections: BTreeSet<u64>,
}

/// Marks a `Registered` id as a connection's number, not a `tasks` key.
const CONNECTION: u64 = 1 << 63;

impl Live {
    fn kind(&mut self, kind: &'static str) -> u8 {
        let place = match self.kinds.iter().position(|k| *k == kind) {
            Some(place) => place,
            None => {
                self.kinds.push(kind);
                self.kinds.len() - 1
            }
        };
        u8::try_from(place).expect("a few kinds of task")
    }
}

/// Removes its task from the registry when the task ends, however it ends:
/// returned, panicked, or dropped with its runtime.
struct Registered {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut live = self.inner.live();
        if self.id & CONNECTION == 0 {
            live.tasks.remove(&self.id);
        } else {
            live.connections.remove(&(self.id & !CONNECTION));
        }
    }
}

pin_project_lite::pin_project! {
    /// A task's future and its registration, spawned as one: tokio's task
    /// cell holds the future itself. (An async block that awaited the
    /// future would keep room for it twice, once captured and once being
    /// awaited; boxing the future instead cost a second allocation.) The
    /// future is dropped before its registration, fields dropping in order.
    struct RegisteredTask<F> {
        #[pin]
        task: F,
        registered: Registered,
    }
}

impl<F: Future> Future for RegisteredTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().task.poll(cx)
    }
}

impl Inner {
    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        // The map stays consistent even if a holder panicked mid-insert.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl TaskRegistry {
    /// Spawns `task` on the current runtime, registered as `kind` with a name
    /// for reports.
    pub fn spawn<F>(&self, kind: &'static str, name: String, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let id = {
            let mut live = self.inner.live();
            live.next_id += 1;
            let id = live.next_id;
            let kind = live.kind(kind);
            live.tasks.insert(id, (kind, name.into_boxed_str()));
            id
        };
        self.spawn_registered(id, task);
    }

    /// Spawns connection `number`'s task, registered as a "connection".
    /// Numbers are the server's own, each used once.
    pub fn spawn_connection<F>(&self, number: u64, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fresh = self.inner.live().connections.insert(number);
        debug_assert!(fresh, "connection {number} registered twice");
        self.spawn_registered(number | CONNECTION, task);
    }

    fn spawn_registered<F>(&self, id: u64, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let registered = Registered {
            inner: self.inner.clone(),
            id,
        };
        self.inner
            .tracker
            .spawn(RegisteredTask { task, registered });
    }

    /// Live tasks by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let live = self.inner.live();
        let mut counts = BTreeMap::new();
        for (kind, _) in live.tasks.values() {
            *counts.entry(live.kinds[usize::from(*kind)]).or_default() += 1;
        }
        if !live.connections.is_empty() {
            *counts.entry("connection").or_default() += live.connections.len();
        }
        counts
    }

    /// "kind name" of every live task, oldest first, connections ("connection
    /// 17") after the others.
    pub fn names(&self) -> Vec<String> {
        let live = self.inner.live();
        let named = live
            .tasks
            .values()
            .map(|(kind, name)| format!("{} {name}", live.kinds[usize::from(*kind)]));
        let connections = live.connections.iter().map(|n| format!("connection {n}"));
        named.chain(connections).collect()
    }

    /// Waits up to `grace` for every task to end (the caller has told them
    /// to); returns the names of those still alive.
    pub async fn wait(&self, grace: Duration) -> Vec<String> {
        self.inner.tracker.close();
        match tokio::time::timeout(grace, self.inner.tracker.wait()).await {
            Ok(()) => Vec::new(),
            Err(_) => self.names(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's task is counted and named by its number while it
    /// lives, beside tasks of other kinds, and not once it has ended,
    /// however it ended.
    #[tokio::test]
    async fn connections_are_registered_by_number_until_they_end() {
        let registry = TaskRegistry::default();
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let (fail, failed) = tokio::sync::oneshot::channel::<()>();
        registry.spawn_connection(7, async {
            let _ = ended.await;
        });
        registry.spawn_connection(9, async {
            let _ = failed.await;
            panic!("planted: a connection's task panics");
        });
        registry.spawn("timers", String::new(), std::future::pending());
        assert_eq!(registry.counts()["connection"], 2);
        assert_eq!(registry.counts()["timers"], 1);
        assert_eq!(
            registry.names(),
            ["timers ", "connection 7", "connection 9"]
        );
        end.send(()).expect("connection 7 waits");
        fail.send(()).expect("connection 9 waits");
        let lingering = registry.wait(Duration::from_millis(100)).await;
        assert_eq!(lingering, ["timers "]);
        assert_eq!(registry.counts().get("connection"), None);
    }
}
