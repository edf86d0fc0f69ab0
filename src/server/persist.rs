//! The server's side of the store: the task that commits what the broker's
//! holds changed, and the packets those holds produced, held in their
//! outboxes until the commit they wait for (`durability = "sync"`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::outbox::Outbox;
use super::Shared;
use crate::broker::TailRead;
use crate::store::{Commits, Committer};

pub(super) struct Persist {
    pub commits: Commits,
    /// Locked by one commit at a time: the commit task's, then the last
    /// one at shutdown, after every connection has ended.
    committer: tokio::sync::Mutex<Committer>,
    /// `durability = "periodic"`: at most one commit per period, and no
    /// packet waits for one.
    pub periodic: Option<Duration>,
    /// Outboxes holding packets for a commit, to wake after it.
    gated: Mutex<Vec<Arc<Outbox>>>,
    /// Commits that returned, the changes they carried and the time they
    /// took: what one fsync serves, and how often one runs.
    commits_done: AtomicU64,
    changes_committed: AtomicU64,
    keys_written: AtomicU64,
    commit_nanos: AtomicU64,
    /// Planted bug `CommitErrorIgnored`: a failed commit counts as done.
    errors_ignored: bool,
    /// Reads of queues' tails on disk the broker asked for: done after
    /// the next commit, which holds every message they may cover.
    reads: Mutex<Vec<TailRead>>,
}

/// The store's commits since the start (`Census::store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    /// Commits that returned successfully: with `durability = "sync"`,
    /// one fsync each.
    pub commits: u64,
    /// Changes those commits carried, counted as the broker noted them,
    /// before the last value of each key won (`Batch::changes`).
    pub changes: u64,
    /// Keys those commits wrote or removed: what is left of `changes`
    /// once the last value of each key won and a key made and removed
    /// within one batch was dropped.
    pub writes: u64,
    /// Time from handing a batch to the store to its return, summed.
    pub commit_nanos: u64,
}

impl Persist {
    pub fn new(committer: Committer, periodic: Option<Duration>, errors_ignored: bool) -> Persist {
        Persist {
            commits: Commits::default(),
            committer: tokio::sync::Mutex::new(committer),
            periodic,
            gated: Mutex::new(Vec::new()),
            commits_done: AtomicU64::new(0),
            changes_committed: AtomicU64::new(0),
            keys_written: AtomicU64::new(0),
            commit_nanos: AtomicU64::new(0),
            errors_ignored,
            reads: Mutex::new(Vec::new()),
        }
    }

    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            commits: self.commits_done.load(Ordering::Relaxed),
            changes: self.changes_committed.load(Ordering::Relaxed),
            writes: self.keys_written.load(Ordering::Relaxed),
            commit_nanos: self.commit_nanos.load(Ordering::Relaxed),
        }
    }

    /// The commit that packets of a hold with these changes wait for.
    pub fn gate(&self, changes: Vec<crate::broker::Change>) -> u64 {
        let gate = self.commits.add(changes);
        if gate > 0 {
            self.commits.wake.notify_one();
        }
        match self.periodic {
            Some(_) => 0,
            None => gate,
        }
    }

    /// The commit that the packets of the last hold with changes wait for
    /// (0: none, or `periodic`).
    pub fn last_gate(&self) -> u64 {
        match self.periodic {
            Some(_) => 0,
            None => self.commits.last_numbered(),
        }
    }

    /// `outbox` holds packets for a commit: wake it after.
    pub fn hold(&self, outbox: &Arc<Outbox>) {
        if outbox.register_gate() {
            self.gated
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(outbox.clone());
        }
        // After the push: a commit that fails sets the flag before it
        // takes the list, so one of the two wakes the outbox.
        if self.commits.failed() {
            outbox.commit_failed();
        }
    }

    /// The broker asked for these reads of tails on disk.
    pub fn ask_reads(&self, reads: Vec<TailRead>) {
        if reads.is_empty() {
            return;
        }
        self.reads_lock().extend(reads);
        self.commits.wake.notify_one();
    }

    fn reads_lock(&self) -> std::sync::MutexGuard<'_, Vec<TailRead>> {
        self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads each tail chunk asked for, off the broker's lock, and hands
    /// it to the broker. Call with reads taken before the commit that came
    /// last began: the changes of the holds that asked for them were in
    /// it, so every message they cover is in the store. After a failed
    /// commit none is read: nothing more is promised until a restart.
    async fn read_tails(&self, shared: &Shared, reads: Vec<TailRead>) {
        for read in reads {
            if self.commits.failed() {
                return;
            }
            let chunk = self
                .committer
                .lock()
                .await
                .read_tail(read.sid, read.from)
                .await;
            let outcome = shared.with_broker(|state| state.broker.tail_read(read, chunk));
            if let Err(error) = outcome {
                if shared.log_limit.admit("tail read") {
                    tracing::error!(%error, "a queue's messages on disk could not be read back");
                }
            }
        }
    }

    /// Commits what waits, if anything does.
    pub async fn commit(&self) {
        let mut committer = self.committer.lock().await;
        let Some((batch, number)) = self.commits.take() else {
            return;
        };
        if self.commits.failed() {
            return;
        }
        let changes = batch.changes() as u64;
        // tokio's clock: in the simulation a commit takes no time.
        let started = tokio::time::Instant::now();
        let result = match committer.commit(batch).await {
            Err(_) if self.errors_ignored => Ok(0),
            result => result,
        };
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match result {
            Ok(writes) => {
                self.commits_done.fetch_add(1, Ordering::Relaxed);
                self.changes_committed.fetch_add(changes, Ordering::Relaxed);
                self.keys_written
                    .fetch_add(writes as u64, Ordering::Relaxed);
                self.commit_nanos.fetch_add(nanos, Ordering::Relaxed);
                self.commits.set_committed(number);
                let gated =
                    std::mem::take(&mut *self.gated.lock().unwrap_or_else(PoisonError::into_inner));
                let waiting: Vec<_> = gated
                    .into_iter()
                    .filter(|outbox| outbox.commit_released(number))
                    .collect();
                self.gated
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(waiting);
            }
            Err(error) => {
                // Once: what follows is refused, not logged again.
                tracing::error!(
                    %error,
                    "the data store failed a commit; until the broker is restarted, QoS 1/2 \
                     messages and durable sessions are refused, and connections whose \
                     replies waited for a commit are closed unacknowledged"
                );
                self.commits.set_failed();
                let gated =
                    std::mem::take(&mut *self.gated.lock().unwrap_or_else(PoisonError::into_inner));
                for outbox in gated {
                    outbox.commit_failed();
                }
            }
        }
    }
}

/// Commits as changes come, until the server stops.
pub(super) async fn run(shared: Arc<Shared>) {
    let Some(persist) = shared.persist.get() else {
        return;
    };
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = persist.commits.wake.notified() => {}
        }
        // A client waiting for its queue's tail does not wait a period.
        let reads_waiting = !persist.reads_lock().is_empty();
        if let (Some(period), false) = (persist.periodic, reads_waiting) {
            tokio::select! {
                () = shared.cancel.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
        }
        let reads = std::mem::take(&mut *persist.reads_lock());
        persist.commit().await;
        persist.read_tails(&shared, reads).await;
    }
}
