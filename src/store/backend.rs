//! The storage backend under redb, with one change: a read past the end of
//! the file finds zeros, as it would in a sparse file, rather than an error.
//!
//! Why: a commit writes its header in place and its pages wherever the
//! allocator put them, some past the end of the file, in no promised order
//! before its fsync. If a write past the end fails (a full disk: ENOSPC)
//! after the header's went through, the header points at pages that are not
//! there. On the next open redb reads them to check the commit's checksums;
//! a short read is an I/O error to it, so the store would never open again
//! (found by the durable simulation, seed 5069), while zeros fail the
//! checksum and redb falls back to the commit before, which is whole.

use std::io;

use redb::StorageBackend;

#[derive(Debug)]
pub struct ZerosPastEnd<B>(pub B);

impl<B: StorageBackend> StorageBackend for ZerosPastEnd<B> {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        match self.0.read(offset, out) {
            // Only then the length: a read costs no more than it did.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                let len = self.0.len()?;
                let there = usize::try_from(len.saturating_sub(offset)).unwrap_or(usize::MAX);
                let (head, tail) = out.split_at_mut(there.min(out.len()));
                if !head.is_empty() {
                    self.0.read(offset, head)?;
                }
                tail.fill(0);
                Ok(())
            }
            result => result,
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
}
