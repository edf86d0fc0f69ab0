//! Where commits run, and the bookkeeping between the broker's holds of its
//! lock and the commits that make their changes durable.
//!
//! In production the store lives on a thread of its own: an fsync takes
//! milliseconds, and a runtime worker blocked for them would stall every
//! connection on it. The simulation has no threads: there the same store
//! code runs inline, in the committing task, on turmoil's simulated disk.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::{oneshot, Notify};

use super::{Batch, Chunk, Store};
use crate::broker::{Change, SessionId};

/// What the store's thread does, in the order asked: a read asked for
/// after a commit returned sees what it wrote.
pub enum Job {
    Commit(Batch, oneshot::Sender<Result<usize, String>>),
    ReadTail(SessionId, u64, oneshot::Sender<Result<Chunk, String>>),
}

const THREAD_ENDED: &str = "the store's thread has ended";

/// How long each simulated commit takes, drawn by the simulation.
pub type Latency = Box<dyn FnMut() -> std::time::Duration + Send>;

pub enum Committer {
    Thread {
        /// Dropped first on drop, which ends the thread's loop.
        jobs: Option<std::sync::mpsc::Sender<Job>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// In the calling task, each after a `latency` on the runtime's clock:
    /// a simulated fsync takes time, in which more changes gather and a
    /// crash can come.
    Inline { store: Box<Store>, latency: Latency },
}

impl Committer {
    /// Commits on a thread of its own, which ends when this is dropped.
    pub fn on_thread(mut store: Store) -> Committer {
        let (jobs, receiver) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("tern-store".into())
            .spawn(move || {
                for job in receiver {
                    match job {
                        Job::Commit(batch, done) => drop(done.send(store.commit(&batch))),
                        Job::ReadTail(sid, from, done) => {
                            drop(done.send(store.read_tail(sid, from)));
                        }
                    }
                }
            })
            .expect("a thread for the store");
        Committer::Thread {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Commits in the calling task (the simulation), each taking what
    /// `latency` says.
    pub fn inline(store: Store, latency: Latency) -> Committer {
        Committer::Inline {
            store: Box::new(store),
            latency,
        }
    }

    /// Commits `batch`; returns the keys it wrote (`Store::commit`).
    pub async fn commit(&mut self, batch: Batch) -> Result<usize, String> {
        match self {
            Committer::Inline { store, latency } => {
                tokio::time::sleep(latency()).await;
                store.commit(&batch)
            }
            Committer::Thread { jobs, .. } => {
                let (done, result) = oneshot::channel();
                let sent = jobs
                    .as_ref()
                    .is_some_and(|jobs| jobs.send(Job::Commit(batch, done)).is_ok());
                if !sent {
                    return Err(THREAD_ENDED.into());
                }
                result.await.unwrap_or_else(|_| Err(THREAD_ENDED.into()))
            }
        }
    }

    /// Reads a chunk of a session's tail (`Store::read_tail`): on the
    /// store's thread, after the commits handed to it before; inline in
    /// the simulation.
    pub async fn read_tail(&mut self, sid: SessionId, from: u64) -> Result<Chunk, String> {
        match self {
            Committer::Inline { store, .. } => store.read_tail(sid, from),
            Committer::Thread { jobs, .. } => {
                let (done, result) = oneshot::channel();
                let sent = jobs
                    .as_ref()
                    .is_some_and(|jobs| jobs.send(Job::ReadTail(sid, from, done)).is_ok());
                if !sent {
                    return Err(THREAD_ENDED.into());
                }
                result.await.unwrap_or_else(|_| Err(THREAD_ENDED.into()))
            }
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Committer::Thread { jobs, thread } = self {
            jobs.take();
            // It ends once the commit it may be running returns.
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// The changes waiting for a commit, and how far commits have come. Each
/// hold of the lock that changed durable state is numbered; its packets
/// wait in their outboxes until `committed` reaches its number.
#[derive(Default)]
pub struct Commits {
    pending: Mutex<Pending>,
    committed: AtomicU64,
    /// Rung when changes are added.
    pub wake: Notify,
    failed: AtomicBool,
}

#[derive(Default)]
struct Pending {
    batch: Batch,
    /// The number of the last hold whose changes are in `batch`.
    last: u64,
    numbered: u64,
}

impl Commits {
    /// Adds a hold's changes; returns the number of the commit its packets
    /// must wait for (0: none; they had no changes).
    pub fn add(&self, changes: Vec<Change>) -> u64 {
        if changes.is_empty() {
            return 0;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.batch.add(changes);
        pending.numbered += 1;
        pending.last = pending.numbered;
        pending.last
    }

    /// The number the last hold with changes was given (0: none yet).
    pub fn last_numbered(&self) -> u64 {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .numbered
    }

    /// Takes what waits, and the number a commit of it reaches.
    pub fn take(&self) -> Option<(Batch, u64)> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.batch.is_empty() {
            return None;
        }
        Some((std::mem::take(&mut pending.batch), pending.last))
    }

    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    pub fn set_committed(&self, number: u64) {
        self.committed.store(number, Ordering::Release);
    }

    /// Whether a commit failed: nothing more is acknowledged.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}
