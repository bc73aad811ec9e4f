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
//!
//! The read also tells whether the step has anything to delete. Old events
//! still delivering (a destination down for longer than the window) are
//! looked at again on every pass; a step made only of them goes no further
//! than this read, rather than costing the writer a commit and an fsync.

use super::records::RuleEventRecord;
use super::tables::{
    ACTIVITY, ACTIVITY_BY_TIME, ATTEMPTS, AUTOMATION_INBOX, EVENT_ROWS, IDEMPOTENCY_BY_TIME,
    IDEMPOTENCY_REPLIES, RULE_EVENTS, attempts_of, rule_events_of, uuid7_bound,
};
use super::writer::{IDEMPOTENCY_TTL_MS, PRUNE_STEP, resume_after};
use super::{PruneStep, Store, StoreError, decode};
use redb::{ReadTransaction, ReadableDatabase};

/// What reading one step ahead found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ahead {
    /// Rows read: events, their deliveries and attempts, expired keys, old activity.
    pub(super) rows: usize,
    /// Whether the writer would delete anything: a finished event, an
    /// expired key or old activity.
    pub(super) deletes: bool,
    /// Where the writer's step would resume the events scan (its `next`
    /// when it deletes nothing).
    pub(super) next: Option<u128>,
}

/// What a whole pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunePass {
    /// Rows deleted (see [`Pruned::removed`](super::Pruned::removed)).
    pub removed: usize,
    /// Steps sent to the writer, each one commit.
    pub writer_steps: usize,
    /// Steps that found nothing to delete, and so were not sent.
    pub skipped_steps: usize,
}

impl Store {
    /// A whole pass: steps of [`PRUNE_STEP`] rows until every row older than
    /// `before` (Unix ms) has been looked at once.
    pub async fn prune_all(&self, before: u64, now: u64) -> Result<PrunePass, StoreError> {
        self.prune_all_with(|| PruneStep::new(before, now, PRUNE_STEP)).await
    }

    /// A whole pass whose every step asks `policy` what may go (the window,
    /// the clock, running attempts), so a reload during a long pass applies to
    /// its next step: a window lengthened again after a mistake stops the
    /// deleting at once, not at the end of the pass. The step's `from` is
    /// set here.
    pub async fn prune_all_with(
        &self,
        policy: impl Fn() -> PruneStep,
    ) -> Result<PrunePass, StoreError> {
        let mut from = 0;
        let mut pass = PrunePass::default();
        loop {
            let step = PruneStep { from, ..policy() };
            let (store, ahead_of) = (self.clone(), step.clone());
            let ahead = tokio::task::spawn_blocking(move || store.read_ahead(&ahead_of)).await;
            let next = match ahead {
                Ok(Ok(Ahead { deletes: false, next, .. })) => {
                    pass.skipped_steps += 1;
                    next
                }
                // Something to delete, or (should the read fail) the writer
                // reads the pages itself and decides.
                _ => {
                    let done = self.writer.prune(step.clone()).await?;
                    pass.removed += done.removed;
                    pass.writer_steps += 1;
                    done.next
                }
            };
            match next {
                Some(next) => from = next,
                None => return Ok(pass),
            }
        }
    }

    /// Reads every row the writer will look at for `s` (the events scanned
    /// with their deliveries and attempts, the expired idempotency keys, the
    /// old contact activity).
    pub(super) fn read_ahead(&self, s: &PruneStep) -> Result<Ahead, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let limit = s.limit.max(1);
        let mut ahead = events_ahead(&txn, s, limit)?;
        let cutoff = s.now.saturating_sub(IDEMPOTENCY_TTL_MS);
        let keys = txn.open_table(IDEMPOTENCY_REPLIES)?;
        let by_time = txn.open_table(IDEMPOTENCY_BY_TIME)?;
        let mut heads = 0;
        for row in by_time.range((0, "", "")..(cutoff, "", ""))?.take(limit) {
            let (k, _) = row?;
            let (_, ws, key) = k.value();
            heads += 1 + usize::from(keys.get((ws, key))?.is_some());
        }
        let activity = txn.open_table(ACTIVITY)?;
        let old = txn.open_table(ACTIVITY_BY_TIME)?;
        for row in old.range((0, 0)..(uuid7_bound(s.before), 0))?.take(limit) {
            let (id, contact) = row?.0.value();
            heads += 1 + usize::from(activity.get((contact, id))?.is_some());
        }
        ahead.rows += heads;
        ahead.deletes |= heads > 0;
        Ok(ahead)
    }
}

/// The events part of [`Store::read_ahead`]: the next `limit` events in
/// `s.from..` created before `s.before`, with their deliveries and attempts;
/// `deletes` when one of them is finished with no attempt running (the
/// writer would delete it).
fn events_ahead(txn: &ReadTransaction, s: &PruneStep, limit: usize) -> Result<Ahead, StoreError> {
    let events = txn.open_table(EVENT_ROWS)?;
    let rules = txn.open_table(RULE_EVENTS)?;
    let attempts = txn.open_table(ATTEMPTS)?;
    let inbox = txn.open_table(AUTOMATION_INBOX)?;
    let (mut rows, mut seen, mut last, mut finished) = (0, 0, None, false);
    for row in events.range(s.from..uuid7_bound(s.before))?.take(limit) {
        let id = row?.0.value();
        (seen, last) = (seen + 1, Some(id));
        // As the writer's step: an event automations have yet to see stays,
        // as does one being attempted.
        let mut done = inbox.get(id)?.is_none() && s.may_go(id);
        for r in rules.range(rule_events_of(id))? {
            // As the writer's step: an unreadable delivery keeps its event.
            let r: Result<RuleEventRecord, _> = decode(r?.1.value());
            done &= r.is_ok_and(|r| r.status.is_terminal());
            rows += 1;
        }
        finished |= done;
        rows += 1 + count_rows(attempts.range(attempts_of(id))?)?;
    }
    let next = resume_after(seen, limit, last);
    Ok(Ahead { rows, deletes: finished, next })
}

/// How many rows `rows` yields, stopping at the first error. A redb range
/// that fails (a full disk, an I/O error) keeps yielding that error for
/// ever: `.count()` would count it without end (a shutdown once spun at
/// full CPU for 11 minutes in it). Every other consumer of a range or
/// `iter` in the store stops at its first error with `?`.
fn count_rows<T, E>(mut rows: impl Iterator<Item = Result<T, E>>) -> Result<usize, E> {
    rows.try_fold(0, |n, row| row.map(|_| n + 1))
}

#[cfg(test)]
mod tests {
    use super::count_rows;

    #[test]
    fn counting_stops_at_a_range_that_errors_for_ever() {
        let ok_then_latched =
            [Ok(1), Ok(2)].into_iter().chain(std::iter::repeat_with(|| Err("io")));
        assert_eq!(count_rows(ok_then_latched), Err("io"));
        assert_eq!(count_rows([Ok::<_, ()>(1), Ok(2), Ok(3)].into_iter()), Ok(3));
    }
}
