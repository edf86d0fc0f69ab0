//! The durable state on disk: redb, an embedded crash-safe B-tree with no
//! threads or clocks of its own, over a storage backend that is a file in
//! production and turmoil's simulated disk in the simulation.
//!
//! The broker notes what changed (`broker::Change`); a `Batch` gathers the
//! changes of many holds of the lock, the last value of each key winning,
//! and `Store::commit` writes it in one transaction with one fsync: the
//! group commit that lets one fsync serve every message that arrived while
//! the last one ran. Recovery reads everything back (`Store::open`), but for
//! the queued messages past a memory budget, which stay on disk until
//! their session's client takes them (`tail.rs`).

mod backend;
mod batch;
mod records;
mod tail;
mod worker;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::BytesMut;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

pub use batch::Batch;
use batch::Entry;
pub use records::Clock;
pub use tail::Chunk;
pub use worker::{Commits, Committer, Latency};

use crate::broker::{Restored, RestoredSession, SessionId, Stored, Tail};
use crate::codec::PacketId;
use crate::topic::TopicFilter;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
const FILTERS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("filters");
const MESSAGES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("messages");
const AWAITING: TableDefinition<(u64, u16), ()> = TableDefinition::new("awaiting_release");
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// What this build writes; a store of another format is refused at start.
const FORMAT: &[u8] = b"tern-store-1";

/// The room for records the store keeps between commits (`Store::scratch`).
const SCRATCH_KEPT: usize = 64 * 1024;

/// The files in the data directory.
pub const FILE_NAME: &str = "tern.redb";
const LOCK_NAME: &str = "lock";

pub struct Store {
    db: Database,
    /// Held locked for as long as the store is open (`open_dir`): a second
    /// broker on the directory is refused at once, rather than left to
    /// wait on, or race, the first.
    _lock: Option<std::fs::File>,
    clock: Clock,
    /// `Durability::Immediate` (fsync at each commit) or `None` (left to
    /// the next immediate one, or to the OS): `durability = "periodic"`.
    durability: Durability,
    /// Where each message's record is laid out before redb copies it;
    /// kept from commit to commit up to `SCRATCH_KEPT` bytes.
    scratch: BytesMut,
}

impl Store {
    /// Opens the store in `dir` (made if missing), or says in one line why
    /// not: another broker holds it, another format, damage past repair.
    ///
    /// Queued messages are read into memory until they weigh
    /// `memory_max_bytes` (`offline_memory_max_bytes`); each session's
    /// after that stay on disk, counted in its tail (`broker/tail.rs`).
    pub fn open_dir(
        dir: &Path,
        clock: Clock,
        memory_max_bytes: usize,
    ) -> Result<(Store, Restored), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("data directory {}: {e}", dir.display()))?;
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let file = open_or_create(&path)?;
        // A new file's directory entry is durable only once its directory
        // is synced: without this, a power cut could lose the whole file.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("data directory {}: {e}", dir.display()))?;
        let backend =
            redb::backends::FileBackend::new(file).map_err(|e| describe(&path, &e.to_string()))?;
        let (mut store, restored) =
            Store::open(backend, clock, memory_max_bytes).map_err(|e| describe(&path, &e))?;
        store._lock = Some(lock);
        Ok((store, restored))
    }

    /// Opens the store over `backend` and reads back what it holds, the
    /// queued messages past `memory_max_bytes` counted, not read
    /// (`open_dir`).
    pub fn open(
        backend: impl redb::StorageBackend,
        clock: Clock,
        memory_max_bytes: usize,
    ) -> Result<(Store, Restored), String> {
        let db = Database::builder()
            .set_cache_size(cache_bytes(memory_max_bytes))
            .create_with_backend(backend::ZerosPastEnd(backend))
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "in use by another running broker".to_owned()
                }
                other => other.to_string(),
            })?;
        let store = Store {
            db,
            _lock: None,
            clock,
            durability: Durability::Immediate,
            scratch: BytesMut::new(),
        };
        store.check_format()?;
        let restored = store
            .read(memory_max_bytes)
            .map_err(|e| format!("unreadable: {e}"))?;
        Ok((store, restored))
    }

    /// Commits without waiting for the disk; a crash may lose what the
    /// last commits wrote (but never tear the store).
    pub fn set_periodic(&mut self) {
        self.durability = Durability::None;
    }

    /// Marks a new store with this build's format; refuses another's.
    fn check_format(&self) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            let format = meta
                .get("format")
                .map_err(|e| e.to_string())?
                .map(|v| v.value().to_vec());
            match format {
                Some(format) if format == FORMAT => {}
                Some(format) => {
                    return Err(format!(
                        "written in format {:?}, this build reads {:?}",
                        String::from_utf8_lossy(&format),
                        String::from_utf8_lossy(FORMAT)
                    ))
                }
                None => {
                    meta.insert("format", FORMAT).map_err(|e| e.to_string())?;
                }
            }
            // Made now, so that reading a new store finds them.
            let made = txn
                .open_table(SESSIONS)
                .and(txn.open_table(FILTERS).map(drop))
                .and(txn.open_table(MESSAGES).map(drop))
                .and(txn.open_table(AWAITING).map(drop))
                .and(txn.open_table(RETAINED).map(drop));
            made.map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())
    }

    fn read(&self, memory_max_bytes: usize) -> Result<Restored, Box<dyn std::error::Error>> {
        let txn = self.db.begin_read()?;
        let mut restored = Restored::default();
        let mut in_memory = 0;
        let sessions = txn.open_table(SESSIONS)?;
        let filters = txn.open_table(FILTERS)?;
        let messages = txn.open_table(MESSAGES)?;
        let awaiting = txn.open_table(AWAITING)?;
        for entry in sessions.iter()? {
            let (sid, value) = entry?;
            let sid = sid.value();
            let record = records::read_session(value.value(), self.clock)
                .map_err(|e| format!("session {sid}: {e}"))?;
            let mut session = RestoredSession {
                sid: SessionId(sid),
                record,
                filters: Vec::new(),
                messages: Vec::new(),
                tail: None,
                awaiting_release: Vec::new(),
            };
            for entry in filters.range((sid, "")..(sid + 1, ""))? {
                let (key, value) = entry?;
                let filter = TopicFilter::new(key.value().1)
                    .map_err(|e| format!("session {sid}: filter: {e}"))?;
                let granted = records::read_subscription(value.value())
                    .map_err(|e| format!("session {sid}: filter: {e}"))?;
                session.filters.push((filter, granted));
            }
            for entry in messages.range((sid, 0)..(sid + 1, 0))? {
                let (key, value) = entry?;
                let seq = key.value().1;
                let (value, weight) = (value.value(), records::weight_of(value.value()));
                if let Some((tail, last)) = &mut session.tail {
                    (tail.count, tail.bytes, *last) = (tail.count + 1, tail.bytes + weight, seq);
                    continue;
                }
                // Only a message not yet sent begins a tail: every one
                // after it in the queue is one too.
                if in_memory > memory_max_bytes && records::is_queued(value) {
                    session.tail = Some((Tail::on_disk(seq, weight), seq));
                    continue;
                }
                let stored = records::read_message(value, self.clock)
                    .map_err(|e| format!("session {sid}: message {seq}: {e}"))?;
                in_memory += weight;
                session.messages.push((seq, stored));
            }
            for entry in awaiting.range((sid, 0)..(sid + 1, 0))? {
                let id = entry?.0.value().1;
                let id = PacketId::new(id).ok_or("packet id 0")?;
                session.awaiting_release.push(id);
            }
            restored.sessions.push(session);
        }
        for entry in txn.open_table(RETAINED)?.iter()? {
            let (topic, value) = entry?;
            let (stored_topic, retained) = records::read_retained(value.value(), self.clock)
                .map_err(|e| format!("retained {:?}: {e}", topic.value()))?;
            if stored_topic.as_str() != topic.value() {
                return Err(format!("retained {:?} holds another topic", topic.value()).into());
            }
            restored.retained.push((stored_topic, retained));
        }
        Ok(restored)
    }

    /// Writes `batch` in one transaction, durable when this returns (with
    /// `Durability::Immediate`), and says how many keys it wrote or
    /// removed (a session's rows gone counted as one). An error leaves the
    /// store as it was.
    pub fn commit(&mut self, batch: &Batch) -> Result<usize, String> {
        self.write(batch).map_err(|e| e.to_string())
    }

    fn write(&mut self, batch: &Batch) -> Result<usize, Box<dyn std::error::Error>> {
        let mut writes = 0;
        let clock = self.clock;
        let scratch = &mut self.scratch;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability)?;
        {
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut filters = txn.open_table(FILTERS)?;
            let mut messages = txn.open_table(MESSAGES)?;
            let mut awaiting = txn.open_table(AWAITING)?;
            let mut retained = txn.open_table(RETAINED)?;
            // First: a session that ended leaves nothing behind, and what
            // this batch holds of it came after its end.
            for (sid, _) in batch.sessions.iter().filter(|(_, s)| s.gone) {
                let sid = sid.0;
                filters.retain_in((sid, "")..(sid + 1, ""), |_, _| false)?;
                messages.retain_in((sid, 0)..(sid + 1, 0), |_, _| false)?;
                awaiting.retain_in((sid, 0)..(sid + 1, 0), |_, _| false)?;
                writes += 1;
            }
            writes += batch.sessions.len() + batch.retained.len();
            for (sid, session) in &batch.sessions {
                match &session.record {
                    Some(record) => {
                        sessions.insert(sid.0, &records::session(record, clock)[..])?;
                    }
                    None => {
                        sessions.remove(sid.0)?;
                    }
                }
            }
            for (sid, rows) in &batch.rows {
                let sid = sid.0;
                for (filter, entry) in &rows.filters {
                    let key = (sid, filter.as_str());
                    match &entry.value {
                        _ if entry.is_nothing() => continue,
                        Some(granted) => {
                            filters.insert(key, &records::subscription(granted)[..])?;
                        }
                        None => {
                            filters.remove(key)?;
                        }
                    }
                    writes += 1;
                }
                for run in removal_runs(&rows.messages) {
                    let mut gone = run.iter().peekable();
                    // The store's keys in the run's span that this batch
                    // does not remove (acknowledged out of order) stay.
                    messages.retain_in(
                        (sid, run[0])..=(sid, run[run.len() - 1]),
                        |(_, seq), _| {
                            while gone.next_if(|&&g| g < seq).is_some() {}
                            gone.next_if_eq(&&seq).is_none()
                        },
                    )?;
                    writes += run.len();
                }
                for (&seq, entry) in &rows.messages {
                    if let (Some(stored), false) = (&entry.value, entry.is_nothing()) {
                        scratch.clear();
                        records::message(stored, clock, scratch);
                        messages.insert((sid, seq), &scratch[..])?;
                        writes += 1;
                    }
                }
                for (id, entry) in &rows.awaiting_release {
                    match entry.value {
                        _ if entry.is_nothing() => continue,
                        true => drop(awaiting.insert((sid, id.get()), ())?),
                        false => drop(awaiting.remove((sid, id.get()))?),
                    }
                    writes += 1;
                }
            }
            for (topic, value) in &batch.retained {
                match value {
                    Some(value) => {
                        let value = records::retained(topic, value, clock);
                        retained.insert(topic.as_str(), &value[..])?;
                    }
                    None => {
                        retained.remove(topic.as_str())?;
                    }
                }
            }
        }
        txn.commit()?;
        // One message of many MB would otherwise hold its size for good.
        if self.scratch.capacity() > SCRATCH_KEPT {
            self.scratch = BytesMut::new();
        }
        Ok(writes)
    }
}

/// The messages a batch removes from the store, in runs whose span holds
/// few keys it keeps: each run is then one walk along the B-tree's leaves
/// (`retain_in`), where a removal each was a descent from the root each,
/// a quarter of the store thread's time with a subscriber that keeps up.
fn removal_runs(messages: &BTreeMap<u64, Entry<Option<Stored>>>) -> Vec<Vec<u64>> {
    // Seqs between two removals that the batch does not hold may be in
    // the store, to be walked past: a gap wider than this starts a new run.
    const GAP: u64 = 16;
    let mut runs: Vec<Vec<u64>> = Vec::new();
    let removed = messages
        .iter()
        .filter(|(_, entry)| entry.value.is_none() && !entry.is_nothing());
    for (&seq, _) in removed {
        match runs.last_mut() {
            Some(run) if seq - run[run.len() - 1] <= GAP => run.push(seq),
            _ => runs.push(vec![seq]),
        }
    }
    runs
}

/// redb's page cache for a budget of queued messages in memory: a
/// quarter of it, from 16 MiB to redb's own default of 1 GiB. At that
/// default the cache, not the queues, held the memory: 50 MB queued for
/// an offline session with a budget of 16 MiB left 17 MB of messages in
/// memory and an RSS of 111 MB (50 MB with this).
fn cache_bytes(memory_max_bytes: usize) -> usize {
    (memory_max_bytes / 4).clamp(16 << 20, 1 << 30)
}

/// `path` for reading and writing, made if missing, never truncated.
fn open_or_create(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The directory's lock file, locked; an error if another holds it.
fn lock(dir: &Path) -> Result<std::fs::File, String> {
    let path = dir.join(LOCK_NAME);
    let file = open_or_create(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(describe(
            &dir.join(FILE_NAME),
            &format!("in use by another running broker (it holds {LOCK_NAME})"),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("{}: {e}", path.display())),
    }
}

/// One line naming the file and what to do.
fn describe(path: &Path, error: &str) -> String {
    format!(
        "data store {}: {error}; stop the broker that uses it, move the directory \
         aside, or start with --data-dir elsewhere or --in-memory",
        path.display()
    )
}

#[cfg(test)]
mod tests;
