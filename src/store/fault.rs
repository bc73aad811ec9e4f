//! A file backend that can be told to fail, for fault tests: with the
//! switch on, every write, resize and sync fails as a full disk does
//! (`ENOSPC`), while reads keep working. It can also make the next write
//! panic, as redb does on the writer thread when it meets a damaged page.

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The switch shared by a test and its backends, and how many operations
/// it has refused (so a test can wait for a write to have failed).
#[derive(Debug, Clone, Default)]
pub struct DiskFull(Arc<Switch>);

#[derive(Debug, Default)]
struct Switch {
    full: AtomicBool,
    refused: AtomicU64,
    panic_once: AtomicBool,
}

impl DiskFull {
    /// Turns failures on or off.
    pub fn set(&self, full: bool) {
        self.0.full.store(full, Ordering::SeqCst);
    }
    /// Makes the next write panic (once).
    pub fn panic_next_write(&self) {
        self.0.panic_once.store(true, Ordering::SeqCst);
    }
    /// Writes, resizes and syncs refused so far.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::SeqCst)
    }
    fn check(&self) -> std::io::Result<()> {
        if self.0.full.load(Ordering::SeqCst) {
            self.0.refused.fetch_add(1, Ordering::SeqCst);
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        Ok(())
    }
    /// An opener (see [`super::db::Opener`]) whose files obey this switch.
    pub fn opener(&self) -> super::db::Opener {
        let switch = self.clone();
        Arc::new(move |path: &Path| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            let inner = FileBackend::new(file)?;
            redb::Builder::new()
                .set_cache_size(super::db::DEFAULT_CACHE_BYTES)
                .create_with_backend(Faulty { inner, switch: switch.clone() })
        })
    }
}

#[derive(Debug)]
struct Faulty {
    inner: FileBackend,
    switch: DiskFull,
}

impl StorageBackend for Faulty {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.switch.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.switch.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        #[allow(clippy::panic)] // the fault this injects
        if self.switch.0.panic_once.swap(false, Ordering::SeqCst) {
            panic!("injected fault: a store write panics");
        }
        self.switch.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(s, e)
    }
}
