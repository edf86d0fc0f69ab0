//! The broker's data store on turmoil's simulated disk: a redb backend over
//! a simulated file, and the power switch the harness turns off before it
//! crashes the host.
//!
//! turmoil runs `Drop` when it crashes a host, and a store that wrote in
//! `Drop` would make every crash look like a clean shutdown. With the power
//! off, every write and sync fails, as they would on a machine that has
//! lost it; reads still work, for whatever `Drop` reads.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use turmoil::fs::shim::std::fs::{self, File, OpenOptions};

/// Where the broker host keeps its store.
const DIR: &str = "/data";
const FILE: &str = "/data/tern.redb";

/// Off: writes fail. Shared by the harness and every incarnation of the
/// broker host.
#[derive(Debug, Clone, Default)]
pub struct Power(Arc<AtomicBool>);

impl Power {
    pub fn on(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn off(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        match self.0.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err(io::Error::other("the power is off")),
        }
    }
}

#[derive(Debug)]
pub struct SimDisk {
    file: File,
    power: Power,
}

impl SimDisk {
    /// The store's file, made durable as a new file must be: its directory
    /// entries synced, not only its data.
    pub fn open(power: Power) -> io::Result<SimDisk> {
        fs::create_dir_all(DIR)?;
        fs::sync_dir("/")?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(FILE)?;
        fs::sync_dir(DIR)?;
        Ok(SimDisk { file, power })
    }
}

impl redb::StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.power.check()?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.power.check()?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.power.check()?;
        self.file.write_all_at(data, offset)
    }
}
