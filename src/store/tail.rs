//! Reading back a chunk of a queue's tail, the messages of an offline
//! session that were kept on disk only (`broker/tail.rs`).

use redb::ReadableDatabase;

use super::{records, Store, MESSAGES};
use crate::broker::{SessionId, Stored, TAIL_CHUNK_BYTES, TAIL_CHUNK_MESSAGES};

/// A chunk of stored messages, in `seq` order.
pub type Chunk = Vec<(u64, Stored)>;

impl Store {
    /// The session's stored messages from `from` on, at most
    /// `TAIL_CHUNK_MESSAGES` of them and, past the first,
    /// `TAIL_CHUNK_BYTES` of stored values. It sees every commit that
    /// returned before it was called.
    pub fn read_tail(&self, sid: SessionId, from: u64) -> Result<Chunk, String> {
        self.read_chunk(sid.0, from).map_err(|e| e.to_string())
    }

    fn read_chunk(&self, sid: u64, from: u64) -> Result<Chunk, Box<dyn std::error::Error>> {
        let txn = self.db.begin_read()?;
        let messages = txn.open_table(MESSAGES)?;
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for entry in messages.range((sid, from)..(sid + 1, 0))? {
            let (key, value) = entry?;
            let value = value.value();
            bytes += value.len();
            if chunk.len() == TAIL_CHUNK_MESSAGES || (bytes > TAIL_CHUNK_BYTES && !chunk.is_empty())
            {
                break;
            }
            let seq = key.value().1;
            let stored = records::read_message(value, self.clock)
                .map_err(|e| format!("session {sid}: message {seq}: {e}"))?;
            chunk.push((seq, stored));
        }
        Ok(chunk)
    }
}
