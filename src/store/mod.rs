//! The durable outbox: events (record and payload in one row), deliveries,
//! attempts and the due-time index, in one embedded redb file.
//!
//! Every write goes through one writer thread ([`writer`]) that batches
//! concurrent requests into one transaction and one fsync (group commit).
//! Reads use their own snapshots and never block it.

pub mod contact_records;
mod contacts_read;
pub mod db;
mod death;
mod due;
pub mod fault;
pub mod json;
mod layout;
mod listing;
mod migrate;
mod newest;
mod opening;
mod perms;
mod prune_read;
pub mod records;
pub mod stamps;
mod tables;
pub mod writer;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod idempotency_tests;
#[cfg(test)]
mod opening_tests;
#[cfg(test)]
mod prune_inbox_tests;
#[cfg(test)]
mod prune_policy_tests;
#[cfg(test)]
pub(crate) mod tests;
/// Why the file did not open: redb refused its magic number (perhaps a
/// creation killed midway), or anything else, said with what to do.
enum Refused {
    Magic(String),
    Other(String),
}

impl Refused {
    fn said(self) -> String {
        match self {
            Refused::Magic(s) | Refused::Other(s) => s,
        }
    }
}

/// Opens and prepares the file. redb panics on some damaged pages: said as
/// such, not as a bug.
fn open_file(file: &Path, opener: Opener) -> Result<DbSlot, Refused> {
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let db = DbSlot::open(file.to_path_buf(), opener).map_err(|e| {
            let said = opening::explain(&e, file);
            if opening::is_magic_mismatch(&e) { Refused::Magic(said) } else { Refused::Other(said) }
        })?;
        prepare_file(&db).map(|()| db).map_err(Refused::Other)
    }));
    opened.unwrap_or_else(|_| Err(Refused::Other(opening::panicked(file))))
}

#[cfg(test)]
mod unreadable_tests;

pub use contact_records::{
    ActionOutcome, ActivityRecord, ContactRecord, EnrollmentRecord, EnrollmentStatus, TriggerFact,
};
pub use contacts_read::{ActivityPage, SuppressedPage};
pub use death::WriterDeath;
pub use due::{DueKey, Landed, QueueDepth};
pub use prune_read::PrunePass;
pub use records::{AttemptRecord, AttemptView, EventRecord, EventView, RuleEventRecord, Status};
pub use writer::contacts::email_key;
pub use writer::{
    AttemptDone, Ingested, NewEvent, NewRuleEvent, Next, PruneStep, Pruned, Quarantined,
    RetryOutcome, Route, Running, Tables,
};

use db::{DbSlot, Opener};
use redb::{ReadableDatabase, ReadableTable};
use std::path::Path;
use std::sync::Arc;
use tables::*;

/// Why the store could not do something. Every variant maps to 503: the
/// request was not acknowledged and may be retried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the store at {path}: {message}")]
    Open {
        /// The data directory.
        path: String,
        /// The underlying error.
        message: String,
    },
    /// A read or write failed (disk full, I/O error, corruption).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The writer thread has stopped (shutdown or a fatal error).
    #[error("store writer stopped")]
    Closed,
    /// A stored record will not decode. It fails the request that read it,
    /// not the store: the file itself is fine.
    #[error("store record unreadable: {0}")]
    Corrupt(String),
    /// A request the store cannot apply (an id that is not a UUID): it
    /// fails alone, the rest of its write batch commits.
    #[error("store request refused: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the storage itself failed (I/O, redb): the writer then
    /// reopens the file. Otherwise only the request that hit it fails.
    pub fn is_storage(&self) -> bool {
        matches!(self, StoreError::Open { .. } | StoreError::Unavailable(_) | StoreError::Closed)
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

/// Parses an event id (UUID string) into its table key.
pub fn event_key(id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(id).ok().map(|u| u.as_u128())
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("corrupt record: {e}")))
}

/// Filters of `GET /events`.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Event type.
    pub event: Option<String>,
    /// Derived status.
    pub status: Option<Status>,
    /// Resource.
    pub resource: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
}

/// One page of events, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The events.
    pub records: Vec<EventView>,
    /// Pass back as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// Most events a list request examines before it returns a partial page
/// with a cursor, so a rare filter cannot scan the whole store in one request.
const LIST_SCAN_BUDGET: usize = 5_000;

/// The store: cheap to clone, shared by the API and the delivery engine.
#[derive(Debug, Clone)]
pub struct Store {
    db: DbSlot,
    writer: writer::Handle,
    landed: Landed,
    /// Suppression stamps whose writes have not committed yet.
    pub stamps: stamps::PendingStamps,
    thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    death: WriterDeath,
}

impl Store {
    /// Opens (or creates) `meshes.redb` in `dir` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(dir, db::file_opener())
    }

    /// Fails when `dir` names something other than a directory, with the
    /// error [`Store::open_with`] would give: for a caller that must know
    /// before anything else looks in the directory.
    pub fn check_dir(dir: &Path) -> Result<(), StoreError> {
        perms::not_a_file(dir).map_err(|e| StoreError::Open {
            path: dir.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Like [`Store::open`], with the file opened by `opener` (fault tests).
    pub fn open_with(dir: &Path, opener: Opener) -> Result<Store, StoreError> {
        let err = |message: String| StoreError::Open { path: dir.display().to_string(), message };
        let file = dir.join("meshes.redb");
        opening::note_if_empty(&file);
        perms::prepare(dir, &file).map_err(|e| err(e.to_string()))?;
        tracing::info!(path = %file.display(), "opening the store");
        let db = match open_file(&file, opener.clone()) {
            // Checked only once redb has refused it: a second `serve` must
            // not move aside the file a first one is creating (its lock).
            Err(Refused::Magic(e)) => match opening::set_aside_if_unfinished(&file) {
                Ok(true) => {
                    perms::prepare(dir, &file).map_err(|e| err(e.to_string()))?;
                    open_file(&file, opener).map_err(Refused::said)
                }
                Ok(false) => Err(e),
                Err(io) => Err(io.to_string()),
            },
            opened => opened.map_err(Refused::said),
        }
        .map_err(err)?;
        let (landed, death) = (Landed::default(), WriterDeath::default());
        let (writer, thread) = writer::spawn(db.clone(), landed.clone(), death.clone())
            .map_err(|e| err(e.to_string()))?;
        let thread = Arc::new(std::sync::Mutex::new(Some(thread)));
        let stamps = stamps::PendingStamps::default();
        Ok(Store { db, writer, landed, stamps, thread, death })
    }

    /// Waits for the writer to commit what it has queued, then stops it.
    /// The file is released once the last clone of the store is dropped.
    pub async fn close(self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        self.writer.shutdown().await;
        drop(self);
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Whether writes work: after a failed commit, an empty commit is tried
    /// (reopening the file if due) before answering. Never once the writer
    /// thread has died.
    pub async fn writable(&self) -> Result<(), StoreError> {
        if self.death.is_dead() {
            return Err(StoreError::Unavailable(death::WRITER_DIED.into()));
        }
        if self.db.writable() {
            return Ok(());
        }
        self.writer.probe().await
    }

    /// Set if the writer thread dies (the gateway then stops).
    pub fn writer_death(&self) -> WriterDeath {
        self.death.clone()
    }

    /// The writer, for ingest and state changes.
    pub fn writer(&self) -> &writer::Handle {
        &self.writer
    }

    /// An event with its rule events.
    pub fn event(&self, id: u128) -> Result<Option<EventView>, StoreError> {
        self.read(|txn| read_view(txn, id))
    }

    /// Runs `f` on a read snapshot. redb panics on some damaged pages: that
    /// is said for what it is (the file may be damaged, and what to do), a
    /// 503, rather than a 500 with a bug's panic on every such read.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let db = self.db.get()?;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&db.begin_read()?)));
        read.unwrap_or_else(|_| {
            let damaged = opening::panicked(self.db.path());
            tracing::error!(error = %damaged, "a store read failed");
            Err(StoreError::Unavailable(damaged))
        })
    }

    /// What an attempt reads, from one snapshot: the event, the one rule
    /// event it is for and the raw payload. The rule event is a point read,
    /// so with fan-out to N rules an attempt decodes one delivery record,
    /// not N.
    pub fn attempt_view(&self, id: u128, rule: &str) -> Result<Option<AttemptView>, StoreError> {
        self.read(|txn| listing::attempt_view(txn, id, rule))
    }

    /// The raw JSON payload of an event.
    pub fn payload(&self, id: u128) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let Some(row) = txn.open_table(EVENT_ROWS)?.get(id)? else { return Ok(None) };
            Ok(Some(split_row(row.value())?.1.to_vec()))
        })
    }
    /// The attempts of one rule event, oldest first (none when the event is gone).
    #[cfg(test)]
    pub(crate) fn attempts(
        &self,
        event: u128,
        rule: &str,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self.attempts_of_event(event, rule)?.unwrap_or_default())
    }

    /// The attempts of one rule event, oldest first, read with the event:
    /// `None` when the event is gone (pruned since the caller looked).
    pub fn attempts_of_event(
        &self,
        event: u128,
        rule: &str,
    ) -> Result<Option<Vec<AttemptRecord>>, StoreError> {
        self.read(|txn| {
            if txn.open_table(EVENT_ROWS)?.get(event)?.is_none() {
                return Ok(None);
            }
            let table = txn.open_table(ATTEMPTS)?;
            let mut out = Vec::new();
            for row in table.range((event, rule, 0u32)..=(event, rule, u32::MAX))? {
                out.push(decode(row?.1.value())?);
            }
            Ok(Some(out))
        })
    }

    /// A page of a workspace's events, newest first, filtered.
    pub fn list(
        &self,
        workspace: &str,
        filter: &ListFilter,
        cursor: Option<u128>,
        limit: usize,
        in_flight: &dyn Fn(u128, &str) -> bool,
    ) -> Result<Page, StoreError> {
        self.read(|txn| listing::list(txn, workspace, filter, cursor, limit, in_flight))
    }
}

/// Checks the layout, creates missing tables and migrates an older store.
fn prepare_file(db: &DbSlot) -> Result<(), String> {
    let db = db.get().map_err(|e| e.to_string())?;
    layout::check(&db)?;
    tables::create_all(&db).map_err(|e| e.to_string())?;
    migrate::run(&db).map_err(|e| e.to_string())?;
    layout::stamp(&db).map_err(|e| e.to_string())
}

/// An event with its rule events, from `txn`'s snapshot.
fn read_view(txn: &redb::ReadTransaction, id: u128) -> Result<Option<EventView>, StoreError> {
    let events = txn.open_table(EVENT_ROWS)?;
    let Some(raw) = events.get(id)? else { return Ok(None) };
    let event = row_record(raw.value())?;
    let rule_events = read_rule_events(&txn.open_table(RULE_EVENTS)?, id)?;
    Ok(Some(EventView { event, rule_events }))
}

fn read_rule_events(
    table: &impl ReadableTable<(u128, &'static str), &'static [u8]>,
    id: u128,
) -> Result<Vec<RuleEventRecord>, StoreError> {
    let mut out = Vec::new();
    for row in table.range(rule_events_of(id))? {
        out.push(decode(row?.1.value())?);
    }
    Ok(out)
}
