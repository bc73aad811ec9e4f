//! The due-time index, read side: what the scheduler asks for, and the
//! low-water mark of the entries committed since it last asked.

use super::tables::DUE;
use super::{Store, StoreError};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The earliest due time (Unix ms) committed to the index since the
/// scheduler last took it. The scheduler reads each partition on from a
/// cursor; an entry can commit behind it (a bulk request stamped its due
/// time before a single event that committed first, or two entries of one
/// millisecond in the "wrong" id order). Without this mark such an entry
/// waited for the periodic head scan: up to a second under a backlog that
/// never ran short.
#[derive(Debug, Clone)]
pub struct Landed(Arc<AtomicU64>);

impl Default for Landed {
    fn default() -> Self {
        Landed(Arc::new(AtomicU64::new(u64::MAX)))
    }
}

impl Landed {
    /// Called by the writer after a commit with the earliest due time it wrote.
    pub(crate) fn note(&self, due: u64) {
        if due != u64::MAX {
            self.0.fetch_min(due, Ordering::AcqRel);
        }
    }

    /// The earliest due time committed since the last call, if any.
    pub(crate) fn take(&self) -> Option<u64> {
        Some(self.0.swap(u64::MAX, Ordering::AcqRel)).filter(|t| *t != u64::MAX)
    }
}

/// A due delivery: the due-index key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DueKey {
    /// `<workspace>/<connection>`.
    pub conn_key: String,
    /// Unix ms.
    pub due: u64,
    /// Event key.
    pub event: u128,
    /// Rule id.
    pub rule: String,
}

/// Pending deliveries of one connection: due and waiting to be sent,
/// scheduled later, or with an attempt running (its due entry stays until
/// the outcome is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// `<workspace>/<connection>`.
    pub conn_key: String,
    /// Due now and not running: waiting for a slot, the rate limit, or a
    /// breaker (which of them the scan cannot tell).
    pub due: u64,
    /// Scheduled later: retries waiting out their backoff, quota waits.
    pub later: u64,
    /// With an attempt running now (or its outcome not yet written).
    pub running: u64,
}

impl Store {
    /// Due deliveries of one connection (due ≤ `now`), oldest first, skipping `skip`.
    pub fn due(
        &self,
        conn_key: &str,
        now: u64,
        limit: usize,
        skip: &dyn Fn(u128, &str) -> bool,
    ) -> Result<Vec<DueKey>, StoreError> {
        self.due_after(conn_key, None, now, limit, skip)
    }

    /// Like [`Store::due`], starting after `after` (exclusive) instead of at
    /// the partition's head.
    pub fn due_after(
        &self,
        conn_key: &str,
        after: Option<&DueKey>,
        now: u64,
        limit: usize,
        skip: &dyn Fn(u128, &str) -> bool,
    ) -> Result<Vec<DueKey>, StoreError> {
        use std::ops::Bound::{Excluded, Included};
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(DUE)?;
        let start = match after {
            // (A cursor past `now` means the clock stepped back: start over.)
            Some(k) if k.due <= now => Excluded((conn_key, k.due, k.event, k.rule.as_str())),
            _ => Included((conn_key, 0u64, 0u128, "")),
        };
        let end = Included((conn_key, now, u128::MAX, "\u{10FFFF}"));
        let mut out = Vec::new();
        for row in table.range::<(&str, u64, u128, &str)>((start, end))? {
            let (key, _) = row?;
            let (c, due, event, rule) = key.value();
            if !skip(event, rule) {
                out.push(DueKey { conn_key: c.to_string(), due, event, rule: rule.to_string() });
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// When the next delivery of a connection is due, if any.
    pub fn next_due(&self, conn_key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(DUE)?;
        let mut range = table
            .range((conn_key, 0u64, 0u128, "")..=(conn_key, u64::MAX, u128::MAX, "\u{10FFFF}"))?;
        Ok(range.next().transpose()?.map(|(k, _)| k.value().1))
    }

    /// Per connection: deliveries due by `now`, deliveries scheduled later,
    /// and those `running` says have an attempt running (told apart by
    /// event and rule, as the scheduler does). A full scan of the due
    /// index: for metrics scrapes, not the hot path.
    pub fn queue_depths(
        &self,
        now: u64,
        running: &dyn Fn(u128, &str) -> bool,
    ) -> Result<Vec<QueueDepth>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(DUE)?;
        let mut out: Vec<QueueDepth> = Vec::new();
        for row in table.iter()? {
            let (key, _) = row?;
            let (conn, due, event, rule) = key.value();
            if out.last().is_none_or(|q| q.conn_key != conn) {
                let conn_key = conn.to_string();
                out.push(QueueDepth { conn_key, due: 0, later: 0, running: 0 });
            }
            if let Some(q) = out.last_mut() {
                // Only due entries can be running: the later ones, most
                // of a long backlog, are not looked up.
                if due > now {
                    q.later += 1;
                } else if running(event, rule) {
                    q.running += 1;
                } else {
                    q.due += 1;
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` due entries of any partition, in index order, after
    /// `after` (exclusive): the reload cleanup pages through the whole index
    /// with it, one bounded read per step.
    pub fn due_page(
        &self,
        after: Option<&DueKey>,
        limit: usize,
    ) -> Result<Vec<DueKey>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(DUE)?;
        let start = after.map_or(Unbounded, |k| {
            Excluded((k.conn_key.as_str(), k.due, k.event, k.rule.as_str()))
        });
        let mut out = Vec::new();
        for row in table.range::<(&str, u64, u128, &str)>((start, Unbounded))?.take(limit) {
            let (key, _) = row?;
            let (c, due, event, rule) = key.value();
            out.push(DueKey { conn_key: c.to_string(), due, event, rule: rule.to_string() });
        }
        Ok(out)
    }

    /// The earliest due time committed since the scheduler last asked
    /// (see [`Landed`]): a partition whose cursor is at or past it is read
    /// from its head again.
    pub fn take_landed(&self) -> Option<u64> {
        self.landed.take()
    }

    /// Number of pending deliveries (due entries).
    pub fn due_len(&self) -> Result<u64, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        Ok(txn.open_table(DUE)?.len()?)
    }
}
