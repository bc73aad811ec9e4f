//! One batch's transaction, and what happens when a request in it fails.
//!
//! A storage failure (I/O, redb) fails the whole batch and the file is
//! reopened. A request that fails on its own (a record that will not decode,
//! an id that is not a UUID) must not: it is answered with its error and the
//! batch runs again without it. Its writes may be half done, and redb cannot
//! roll back part of a transaction that has written (savepoints need a clean
//! one), so the transaction is aborted and rebuilt. Either way nothing is
//! answered `Ok` before the commit that holds it.

use super::{Answer, Op, Tables, WriterMetrics, reply};
use crate::store::{Landed, StoreError};
use redb::Database;
use std::time::Instant;

/// Why a transaction was not committed: the index of the request that
/// failed on its own, or `None` for the storage.
type Failure = (Option<usize>, StoreError);

/// Applies and commits a batch; `false` when the store failed under it.
pub(super) fn apply_batch(
    db: &Database,
    batch: Vec<Op>,
    m: &WriterMetrics,
    landed: &Landed,
) -> bool {
    let mut batch = jobs_last(batch);
    loop {
        match try_commit(db, &mut batch, m, landed) {
            Ok(answers) => {
                batch.into_iter().zip(answers).for_each(|(op, a)| reply(op, Ok(a)));
                return true;
            }
            Err((Some(at), e)) if !e.is_storage() => batch = refuse(batch, at, e),
            Err((_, e)) => {
                tracing::error!(error = %e, ops = batch.len(), "store write failed; nothing in this batch was acknowledged");
                batch.into_iter().for_each(|op| reply(op, Err(e.clone())));
                return false;
            }
        }
    }
}

/// Jobs run once (they own what they write), so a batch that has to run
/// again cannot rerun one. Applied after every other request, a job is
/// spent only when the failing request is a job too. The requests of one
/// batch were all waiting at once, so any order of them is a valid one.
fn jobs_last(batch: Vec<Op>) -> Vec<Op> {
    if !batch.iter().any(|op| matches!(op, Op::Job(..))) {
        return batch;
    }
    let (jobs, mut rest): (Vec<Op>, Vec<Op>) =
        batch.into_iter().partition(|op| matches!(op, Op::Job(..)));
    rest.extend(jobs);
    rest
}

/// Answers the request at `at` with its error, and the jobs the aborted
/// transaction spent with a retryable one; returns the rest, to run again.
fn refuse(mut batch: Vec<Op>, at: usize, e: StoreError) -> Vec<Op> {
    metrics::counter!("meshes_store_requests_refused_total").increment(1);
    tracing::warn!(error = %e, "a store request failed on its own; the rest of its batch is written without it");
    reply(batch.remove(at), Err(e));
    let (spent, rest): (Vec<Op>, Vec<Op>) =
        batch.into_iter().partition(|op| matches!(op, Op::Job(None, _)));
    for op in spent {
        let again = "a request beside it in the same write failed; nothing was written, try again";
        reply(op, Err(StoreError::Unavailable(again.into())));
    }
    rest
}

/// One transaction over the whole batch, committed (fsync'd) when every
/// request applied. The earliest due time it wrote goes to `landed` once it
/// is committed (a scheduler reading it earlier could scan before the entry
/// is visible).
fn try_commit(
    db: &Database,
    batch: &mut [Op],
    m: &WriterMetrics,
    landed: &Landed,
) -> Result<Vec<Answer>, Failure> {
    let started = Instant::now();
    let mut applied = started;
    let storage = |e: StoreError| (None, e);
    let result = (|| -> Result<Vec<Answer>, Failure> {
        let txn = db.begin_write().map_err(|e| storage(e.into()))?;
        let (answers, earliest) = {
            let mut t = Tables::open(&txn).map_err(storage)?;
            let mut answers = Vec::with_capacity(batch.len());
            for (i, op) in batch.iter_mut().enumerate() {
                answers.push(t.apply(op).map_err(|e| (Some(i), e))?);
            }
            (answers, t.earliest_due)
        };
        applied = Instant::now();
        txn.commit().map_err(|e| storage(e.into()))?;
        landed.note(earliest);
        Ok(answers)
    })();
    // Where the writer's time goes: building the transaction vs commit + fsync.
    m.ops.record(batch.len() as f64);
    m.apply.record((applied - started).as_secs_f64());
    m.commit.record(applied.elapsed().as_secs_f64());
    result
}
