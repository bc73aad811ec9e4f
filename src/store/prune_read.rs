//! Pruning as the gateway asks for it: a pass of bounded steps, each step's
//! rows read here, on a blocking thread, before the writer deletes them.
//!
//! Pruning is the one writer request that touches old data, and the pages of
//! events a retention window old have often left the OS page cache: under
//! memory pressure, or to proactive reclaim (the VM the benchmarks run on
//! pages out file pages idle for a minute, with DAMON). Read inside the
//! writer, each such page is a disk read that every ingest and attempt
//! record queued behind the step waits for: stalls of 1–6 s at 6,000
//! events/s (BENCHMARKS.md, tenth session). Read here first, the pages are
//! in memory when the writer gets to them, and a slow disk read holds up
//! this task alone.

use super::tables::{
    ACTIVITY, ACTIVITY_BY_TIME, ATTEMPTS, EVENT_ROWS, IDEMPOTENCY, IDEMPOTENCY_BY_TIME,
    RULE_EVENTS, attempts_of, rule_events_of, uuid7_bound,
};
use super::writer::{IDEMPOTENCY_TTL_MS, PRUNE_STEP};
use super::{PruneStep, Store, StoreError};
use redb::ReadableDatabase;

impl Store {
    /// A whole pass: steps of [`PRUNE_STEP`] rows until every row older than
    /// `before` (Unix ms) has been looked at once; returns the rows deleted.
    pub async fn prune_all(&self, before: u64, now: u64) -> Result<usize, StoreError> {
        let mut step = PruneStep { before, now, limit: PRUNE_STEP, from: 0 };
        let mut removed = 0;
        loop {
            let store = self.clone();
            // Best effort: should the read fail, the writer reads the pages itself.
            let _ = tokio::task::spawn_blocking(move || store.read_ahead(&step)).await;
            let done = self.writer.prune(step).await?;
            removed += done.removed;
            match done.next {
                Some(from) => step.from = from,
                None => return Ok(removed),
            }
        }
    }

    /// Reads every row the writer will look at for `s` (the events scanned
    /// with their deliveries and attempts, the expired idempotency keys, the
    /// old contact activity); returns how many.
    pub(super) fn read_ahead(&self, s: &PruneStep) -> Result<usize, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let limit = s.limit.max(1);
        let events = txn.open_table(EVENT_ROWS)?;
        let rules = txn.open_table(RULE_EVENTS)?;
        let attempts = txn.open_table(ATTEMPTS)?;
        let mut rows = 0;
        for row in events.range(s.from..uuid7_bound(s.before))?.take(limit) {
            let id = row?.0.value();
            let of_rules = rules.range(rule_events_of(id))?.count();
            let of_attempts = attempts.range(attempts_of(id))?.count();
            rows += 1 + of_rules + of_attempts;
        }
        let cutoff = s.now.saturating_sub(IDEMPOTENCY_TTL_MS);
        let keys = txn.open_table(IDEMPOTENCY)?;
        let by_time = txn.open_table(IDEMPOTENCY_BY_TIME)?;
        for row in by_time.range((0, "", "")..(cutoff, "", ""))?.take(limit) {
            let (k, _) = row?;
            let (_, ws, key) = k.value();
            rows += 1 + usize::from(keys.get((ws, key))?.is_some());
        }
        let activity = txn.open_table(ACTIVITY)?;
        let old = txn.open_table(ACTIVITY_BY_TIME)?;
        for row in old.range((0, 0)..(uuid7_bound(s.before), 0))?.take(limit) {
            let (id, contact) = row?.0.value();
            rows += 1 + usize::from(activity.get((contact, id))?.is_some());
        }
        Ok(rows)
    }
}
