//! The database handle, and reopening it after a write failure.
//!
//! redb poisons a `Database` after any I/O error (every later call answers
//! `PreviousIo`) until it is closed and opened again. A full disk must not
//! take the gateway down for good, so the handle lives in a slot the writer
//! can empty and refill: while it is empty, reads and writes answer
//! "unavailable" (503, nothing acknowledged); once space returns, the writer
//! reopens the file (redb repairs it if needed) and service resumes.

use super::StoreError;
use arc_swap::ArcSwapOption;
use redb::Database;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a database file is opened: [`Database::create`] in production, a
/// fault-injecting backend in tests.
pub type Opener = Arc<dyn Fn(&Path) -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// Default page cache. redb's own default (1 GiB) lets memory grow with the
/// backlog; the hot set here (due-index heads, recent events) is small.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// The default opener: the file on disk with the default cache.
pub fn file_opener() -> Opener {
    file_opener_with_cache(DEFAULT_CACHE_BYTES)
}

/// The file on disk with a page cache of `bytes`.
pub fn file_opener_with_cache(bytes: usize) -> Opener {
    Arc::new(move |path: &Path| {
        redb::Builder::new().set_cache_size(bytes).set_repair_callback(repair_log()).create(path)
    })
}

thread_local! {
    /// Set while [`DbSlot`] reopens the file after a failed write: a repair
    /// then is not the one of a start after an unclean stop. The opener is
    /// the caller's, and redb runs the repair callback on the opening thread.
    static REOPENING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// After an unclean stop redb checks and repairs the file before opening
/// it, which takes seconds per GiB and answers nothing meanwhile: say so,
/// and how far it got, every tenth of the way.
fn repair_log() -> impl Fn(&mut redb::RepairSession) + 'static {
    let logged = std::cell::Cell::new(-1i32);
    move |session| {
        // In [0, 1): a tenth at most 9.
        let tenth = (session.progress() * 10.0) as i32;
        if tenth > logged.get() {
            logged.set(tenth);
            repair_progress(tenth * 10, REOPENING.with(std::cell::Cell::get));
        }
    }
}

fn repair_progress(done_percent: i32, reopening: bool) {
    if reopening {
        tracing::warn!(
            done_percent,
            "repairing the store after a failed write (requests get 503 until it is reopened)"
        );
    } else {
        tracing::info!(
            done_percent,
            "repairing the store after an unclean stop (meshes serves once it is done)"
        );
    }
}

/// Shortest time between two reopen attempts while the disk is failing.
const REOPEN_EVERY: Duration = Duration::from_millis(500);
/// Longest wait for readers to let go of the old handle before reopening.
const READERS_GRACE: Duration = Duration::from_secs(2);

/// The shared slot: readers load it, the writer empties it after a failed
/// commit, and whoever next needs it (reader or writer) reopens the file,
/// at most every `REOPEN_EVERY`.
#[derive(Clone)]
pub struct DbSlot {
    slot: Arc<ArcSwapOption<Database>>,
    /// False from a failed commit until the next one succeeds.
    writable: Arc<AtomicBool>,
    /// Set once the writer thread died: the file is never opened again.
    retired: Arc<AtomicBool>,
    last_reopen: Arc<Mutex<Option<Instant>>>,
    path: PathBuf,
    opener: Opener,
}

impl std::fmt::Debug for DbSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbSlot").field("path", &self.path).finish_non_exhaustive()
    }
}

impl DbSlot {
    /// Opens the file at `path` with `opener`.
    pub fn open(path: PathBuf, opener: Opener) -> Result<DbSlot, redb::DatabaseError> {
        let db = opener(&path)?;
        Ok(DbSlot {
            slot: Arc::new(ArcSwapOption::from_pointee(db)),
            writable: Arc::new(AtomicBool::new(true)),
            retired: Arc::default(),
            last_reopen: Arc::default(),
            path,
            opener,
        })
    }

    /// The current handle (reopening the file if it was closed after a
    /// failure), or `Unavailable` while it cannot be opened.
    pub fn get(&self) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self.slot.load_full() {
            return Ok(db);
        }
        if self.retired.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(super::death::WRITER_DIED.into()));
        }
        self.reopen_if_due();
        self.slot.load_full().ok_or_else(|| {
            StoreError::Unavailable(
                "the store is recovering from a write failure (disk full or I/O error)".into(),
            )
        })
    }

    /// Closes a handle poisoned by a failed write (waiting briefly for
    /// readers to let go of it, so the file lock is released).
    pub fn failed(&self, db: Arc<Database>) {
        drop(db);
        self.writable.store(false, Ordering::SeqCst);
        let Some(old) = self.slot.swap(None) else { return };
        if let Ok(mut last) = self.last_reopen.lock() {
            *last = Some(Instant::now());
        }
        let deadline = Instant::now() + READERS_GRACE;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the handle for good after the writer thread panicked inside
    /// it: its locks may be poisoned, so any later call (a read, the close
    /// when the last clone goes) would panic too. Readers get a short
    /// grace; a panic of the close itself is caught (the file is still
    /// released: the handle's parts are dropped while unwinding).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.writable.store(false, Ordering::SeqCst);
        let Some(old) = self.slot.swap(None) else { return };
        let deadline = Instant::now() + READERS_GRACE;
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(old)));
    }

    /// Records a successful commit.
    pub fn committed(&self) {
        self.writable.store(true, Ordering::SeqCst);
    }

    /// Whether the last commit succeeded.
    pub fn writable(&self) -> bool {
        self.writable.load(Ordering::SeqCst)
    }

    fn reopen_if_due(&self) {
        // One caller reopens; the others answer "unavailable" meanwhile.
        let Ok(mut last) = self.last_reopen.try_lock() else { return };
        if self.slot.load().is_some() || last.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        REOPENING.with(|r| r.set(true));
        let reopened = (self.opener)(&self.path);
        REOPENING.with(|r| r.set(false));
        match reopened {
            Ok(db) => {
                self.slot.store(Some(Arc::new(db)));
                tracing::warn!(path = %self.path.display(), "store reopened; accepting writes again");
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.path.display(), "store still cannot be opened; requests get 503");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The repair log says which open it belongs to: redb calls it on the
    /// opening thread, here called as redb would with the flag it reads.
    #[test]
    fn a_repair_on_reopen_after_a_failed_write_says_so() {
        let (_guard, logs) = crate::delivery::observe::tests::Logs::capture();
        let dir = tempfile::tempdir().unwrap();
        let opener: Opener = Arc::new(|path: &Path| {
            repair_progress(0, REOPENING.with(std::cell::Cell::get));
            Database::create(path)
        });
        let slot = DbSlot::open(dir.path().join("db.redb"), opener).unwrap();
        slot.failed(slot.get().unwrap());
        *slot.last_reopen.lock().unwrap() = None; // not wait `REOPEN_EVERY`
        slot.get().unwrap();
        let lines = logs.lines();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].contains("after an unclean stop (meshes serves"), "{}", lines[0]);
        assert!(lines[1].contains("after a failed write (requests get 503"), "{}", lines[1]);
        assert!(lines[2].contains("store reopened"), "{}", lines[2]);
        assert!(!REOPENING.with(std::cell::Cell::get), "only while reopening");
    }
}
