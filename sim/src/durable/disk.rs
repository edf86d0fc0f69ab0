//! The broker's data store on turmoil's simulated disk: a redb backend over
//! a simulated file, and the power switch the harness turns off before it
//! crashes the host.
//!
//! turmoil runs `Drop` when it crashes a host, and a store that wrote in
//! `Drop` would make every crash look like a clean shutdown. With the power
//! off, every write and sync fails, as they would on a machine that has
//! lost it; reads still work, for whatever `Drop` reads.
//!
//! Beside the power, spells of faults the harness turns on and off: writes
//! and syncs that fail now and then (EIO), and a full disk (ENOSPC for any
//! write that would grow the file; blocks it already has can be rewritten,
//! as on a file system that allocated them).

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// The disk's spell of faults, if any. Shared by the harness and every
/// incarnation of the broker host; its draws come from the run's seed.
#[derive(Debug, Clone)]
pub struct Faults(Arc<Mutex<FaultState>>);

#[derive(Debug)]
struct FaultState {
    fault: Option<Fault>,
    rng: StdRng,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Each write or sync fails with this probability.
    IoErrors(f64),
    /// No room for the file to grow.
    Full,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults(Arc::new(Mutex::new(FaultState {
            fault: None,
            rng: StdRng::seed_from_u64(seed),
        })))
    }

    pub fn set(&self, fault: Option<Fault>) {
        self.state().fault = fault;
    }

    /// Whether a spell of faults is on now.
    pub fn on(&self) -> bool {
        self.state().fault.is_some()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write or sync that ends at `end` in a file of `len` bytes.
    fn check(&self, end: u64, len: u64) -> io::Result<()> {
        let mut state = self.state();
        let fault = state.fault;
        match fault {
            Some(Fault::IoErrors(p)) if state.rng.random_bool(p) => {
                Err(io::Error::other("I/O error (planted by the harness)"))
            }
            Some(Fault::Full) if end > len => Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device (planted by the harness)",
            )),
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
pub struct SimDisk {
    file: File,
    power: Power,
    faults: Faults,
}

impl SimDisk {
    /// The store's file, made durable as a new file must be: its directory
    /// entries synced, not only its data.
    pub fn open(power: Power, faults: Faults) -> io::Result<SimDisk> {
        fs::create_dir_all(DIR)?;
        fs::sync_dir("/")?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(FILE)?;
        fs::sync_dir(DIR)?;
        Ok(SimDisk {
            file,
            power,
            faults,
        })
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len_checked(&self, len: u64) -> io::Result<()> {
        self.power.check()?;
        self.faults.check(len, SimDisk::len(self)?)?;
        self.file.set_len(len)
    }

    fn sync_checked(&self) -> io::Result<()> {
        self.power.check()?;
        self.faults.check(0, 0)?;
        self.file.sync_data()
    }

    fn write_checked(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.power.check()?;
        let end = offset.saturating_add(data.len() as u64);
        self.faults.check(end, SimDisk::len(self)?)?;
        self.file.write_all_at(data, offset)
    }
}

impl redb::StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        SimDisk::len(self)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let result = self.set_len_checked(len);
        tracing::trace!(len, ?result, "set_len");
        result
    }

    fn sync_data(&self) -> io::Result<()> {
        let result = self.sync_checked();
        tracing::trace!(?result, "sync_data");
        result
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let result = self.write_checked(offset, data);
        tracing::trace!(offset, len = data.len(), ?result, "write");
        result
    }
}
