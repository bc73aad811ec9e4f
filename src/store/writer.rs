//! The single writer: group commit for everything that changes the store.
//!
//! Requests queue on a channel; the writer thread takes whatever has queued
//! (up to [`MAX_BATCH`]), applies it in one redb transaction and commits once
//! (`Durability::Immediate`: fsync'd when `commit` returns). Only then does
//! each caller get its answer, so a `201` always means "on disk". Under load
//! many requests share one fsync; alone, a request pays one.

use super::db::DbSlot;
use super::death::WriterDeath;
use super::json::RuleEventJson;
use super::records::EventRecord;
use super::{Landed, StoreError};
use std::any::Any;
use tokio::sync::{mpsc, oneshot};

/// Most requests applied in one transaction.
pub const MAX_BATCH: usize = 1024;
/// How long an `Idempotency-Key` protects against repeats.
pub const IDEMPOTENCY_TTL_MS: u64 = 24 * 3_600_000;

/// A [`NewEvent`] with its records already encoded.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) event: NewEvent,
    /// The event row: record and payload.
    pub(super) row: Vec<u8>,
    /// One encoded pending rule event per `event.rules` entry.
    pub(super) rule_events: Vec<Vec<u8>>,
}

impl Prepared {
    fn new(event: NewEvent) -> Self {
        let row =
            crate::store::tables::event_row(|out| event.record.write_json(out), &event.payload);
        let rule_events = event
            .rules
            .iter()
            .map(|r| encode_rule_event(apply::pending(r, event.record.created_at)))
            .collect();
        Prepared { event, row, rule_events }
    }

    /// The answer for this event: the original one when its idempotency key
    /// was already used (`original`), else the event itself.
    pub(super) fn answer(self, original: Option<EventRecord>) -> Ingested {
        match original {
            Some(event) => Ingested { event, duplicate: true },
            None => Ingested { event: self.event.record, duplicate: false },
        }
    }
}

/// A unit of work run inside the writer's transaction (automations): it
/// reads and writes through [`Tables`] and its result is handed back only
/// after the commit. A storage `Err` fails the whole batch; any other `Err`
/// (a record that will not decode, a bad id) fails this job alone, so jobs
/// return domain refusals inside `Ok` and only store errors as `Err`.
type Job =
    Box<dyn for<'t> FnOnce(&mut Tables<'t>) -> Result<Box<dyn Any + Send>, StoreError> + Send>;

enum Op {
    Job(Option<Job>, oneshot::Sender<Result<Box<dyn Any + Send>, StoreError>>),
    /// Answered with the events themselves (and, per event, the original of
    /// an idempotent repeat), so the writer thread neither clones nor frees them.
    /// A keyed bulk request comes with its own key row ([`BulkRequest`]).
    Ingest(
        Vec<Prepared>,
        Option<BulkRequest>,
        u64,
        oneshot::Sender<Result<IngestAnswer, StoreError>>,
    ),
    Attempt(AttemptDone, oneshot::Sender<Result<(), StoreError>>),
    Retry(u128, String, u64, oneshot::Sender<Result<RetryOutcome, StoreError>>),
    Cancel(u128, Option<String>, String, u64, oneshot::Sender<Result<Option<usize>, StoreError>>),
    Prune(PruneStep, oneshot::Sender<Result<Pruned, StoreError>>),
    /// Finish what is queued before it, then stop (later requests get `Closed`).
    Shutdown,
    /// An empty commit: can the store write (again)?
    Probe(oneshot::Sender<Result<(), StoreError>>),
}

/// Sends requests to the writer thread.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Op>,
}

async fn call<T>(
    tx: &mpsc::Sender<Op>,
    make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Op,
) -> Result<T, StoreError> {
    let (reply, rx) = oneshot::channel();
    tx.send(make(reply)).await.map_err(|_| StoreError::Closed)?;
    rx.await.map_err(|_| StoreError::Closed)?
}

impl Handle {
    /// Stores events and their deliveries; returns once fsync'd.
    pub async fn ingest(
        &self,
        events: Vec<NewEvent>,
        now: u64,
    ) -> Result<Vec<Ingested>, StoreError> {
        let stored = self.ingest_checked(events, now).await?;
        stored.map_err(|conflict| StoreError::Invalid(conflict.to_string()))
    }
    /// Like [`Handle::ingest`], but an `Idempotency-Key` reused with another
    /// body is an answer of its own (nothing of that request is written).
    pub async fn ingest_checked(
        &self,
        events: Vec<NewEvent>,
        now: u64,
    ) -> Result<Result<Vec<Ingested>, KeyConflict>, StoreError> {
        Ok(match self.ingest_keyed(events, None, now).await? {
            Ok(BulkOutcome::Stored(stored)) => Ok(stored),
            Ok(BulkOutcome::Replayed(_)) => {
                return Err(StoreError::Invalid("a bulk reply for a request without one".into()));
            }
            Err(conflict) => Err(conflict),
        })
    }
    /// Stores a keyed bulk request's events (none at all when every one
    /// was refused: the key is still checked). A repeat of the request
    /// (its whole body) answers the reply the first one kept, storing
    /// nothing; another body under the key is a conflict.
    pub async fn ingest_bulk(
        &self,
        events: Vec<NewEvent>,
        request: BulkRequest,
        now: u64,
    ) -> Result<Result<BulkOutcome, KeyConflict>, StoreError> {
        self.ingest_keyed(events, Some(request), now).await
    }
    async fn ingest_keyed(
        &self,
        events: Vec<NewEvent>,
        request: Option<BulkRequest>,
        now: u64,
    ) -> Result<Result<BulkOutcome, KeyConflict>, StoreError> {
        // Encoding happens here, on the caller's task, so the one writer
        // thread spends its time on the B-trees and the fsync only.
        let prepared = events.into_iter().map(Prepared::new).collect();
        let (prepared, outcome) = call(&self.tx, |r| Op::Ingest(prepared, request, now, r)).await?;
        Ok(outcome.map(|o| match o {
            Outcome::Events(originals) => BulkOutcome::Stored(
                prepared.into_iter().zip(originals).map(|(p, o)| p.answer(o)).collect(),
            ),
            Outcome::Replay(reply) => BulkOutcome::Replayed(reply),
        }))
    }
    /// Records an attempt and the delivery's next state.
    pub async fn attempt(&self, done: AttemptDone) -> Result<(), StoreError> {
        call(&self.tx, |r| Op::Attempt(done, r)).await
    }
    /// Schedules a rule event again now, with a fresh attempt budget.
    pub async fn retry(
        &self,
        event: u128,
        rule: &str,
        now: u64,
    ) -> Result<RetryOutcome, StoreError> {
        call(&self.tx, |r| Op::Retry(event, rule.to_string(), now, r)).await
    }
    /// Cancels an event's (or one rule's) unfinished deliveries; `None` when not found.
    pub async fn cancel(
        &self,
        event: u128,
        rule: Option<&str>,
        reason: &str,
        now: u64,
    ) -> Result<Option<usize>, StoreError> {
        call(&self.tx, |r| Op::Cancel(event, rule.map(str::to_string), reason.to_string(), now, r))
            .await
    }
    /// One bounded step of pruning (see [`PruneStep`]): finished events
    /// created before `step.before`, idempotency keys older than 24 h and old
    /// contact activity. Repeat with `from = next` until `next` is `None`.
    pub async fn prune(&self, step: PruneStep) -> Result<Pruned, StoreError> {
        call(&self.tx, |r| Op::Prune(step, r)).await
    }
    /// Runs `job` inside the next batch's transaction; its result comes back
    /// once that transaction is committed (fsync'd).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl for<'t> FnOnce(&mut Tables<'t>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let boxed: Job = Box::new(move |t| job(t).map(|v| Box::new(v) as Box<dyn Any + Send>));
        let any = call(&self.tx, |r| Op::Job(Some(boxed), r)).await?;
        any.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Unavailable("writer job returned the wrong type".into()))
    }
    /// Commits an empty transaction: `Ok` when the store can write. After a
    /// write failure this is what reopens the file when nothing else writes.
    pub async fn probe(&self) -> Result<(), StoreError> {
        call(&self.tx, Op::Probe).await
    }
    /// Requests waiting for the writer (tests line up a batch with it).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
    /// Asks the writer to stop once everything queued so far is committed.
    /// Other handles may still exist; their later requests fail with `Closed`.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Op::Shutdown).await;
    }
}

/// Starts the writer thread; `death` is set if it ends by a panic.
pub fn spawn(
    db: DbSlot,
    landed: Landed,
    death: WriterDeath,
) -> std::io::Result<(Handle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
    // The opener's subscriber: the process's in production, a test's own.
    let logs = tracing::dispatcher::get_default(Clone::clone);
    let thread =
        std::thread::Builder::new().name("meshes-store-writer".into()).spawn(move || {
            let _logs = tracing::dispatcher::set_default(&logs);
            // Unwinding drops the receiver and the batch's reply senders: every
            // caller, waiting or later, hears `Closed`, and nothing of the
            // batch was committed. The thread is not restarted in place: after
            // a panic inside redb its state cannot be trusted.
            let ran =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&db, rx, &landed)));
            if ran.is_err() {
                death.died(db.path());
                db.retire();
            }
        })?;
    Ok((Handle { tx }, thread))
}

/// The writer's own histograms, looked up once: each `histogram!` call
/// otherwise hashes its key into the recorder's registry per batch.
struct WriterMetrics {
    ops: metrics::Histogram,
    apply: metrics::Histogram,
    commit: metrics::Histogram,
}

fn run(db: &DbSlot, mut rx: mpsc::Receiver<Op>, landed: &Landed) {
    let m = WriterMetrics {
        ops: metrics::histogram!("meshes_store_batch_ops"),
        apply: metrics::histogram!("meshes_store_apply_seconds"),
        commit: metrics::histogram!("meshes_store_commit_seconds"),
    };
    let mut batcher = batch::Batcher::default();
    while let Some(first) = rx.blocking_recv() {
        let mut batch = batcher.collect(&mut rx, first);
        let stop = batch.iter().position(|op| matches!(op, Op::Shutdown));
        if let Some(at) = stop {
            batch.truncate(at);
        }
        if !batch.is_empty() {
            let (len, started) = (batch.len(), std::time::Instant::now());
            match db.get() {
                Ok(handle) => {
                    if commit::apply_batch(&handle, batch, &m, landed) {
                        batcher.committed(len, started.elapsed());
                        db.committed();
                    } else {
                        db.failed(handle);
                    }
                }
                Err(e) => batch.into_iter().for_each(|op| reply(op, Err(e.clone()))),
            }
        }
        if stop.is_some() {
            // Dropping the receiver answers anything still queued with `Closed`.
            return;
        }
    }
}

/// The events of an ingest op, and the original of each idempotent repeat
/// (or the key reused with another body).
type IngestAnswer = (Vec<Prepared>, Result<Outcome, KeyConflict>);

/// One answer per op, sent only after the commit.
enum Answer {
    Ingest(Result<Outcome, KeyConflict>),
    Unit,
    /// An attempt whose delivery record was set aside as unreadable.
    Quarantined(quarantine::Quarantined),
    Retry(RetryOutcome),
    Cancel(Option<usize>),
    Pruned(Pruned),
    Job(Box<dyn Any + Send>),
}

fn reply(op: Op, answer: Result<Answer, StoreError>) {
    // A caller that went away (client disconnect) just doesn't hear the answer;
    // what was committed stays committed.
    match (op, answer) {
        (Op::Job(_, r), a) => drop(r.send(a.and_then(|a| match a {
            Answer::Job(v) => Ok(v),
            _ => Err(StoreError::Unavailable("writer job did not run".into())),
        }))),
        (Op::Ingest(events, .., r), a) => drop(r.send(a.map(|a| match a {
            Answer::Ingest(outcome) => (events, outcome),
            _ => (events, Ok(Outcome::Events(Vec::new()))),
        }))),
        (Op::Attempt(_, r), a) | (Op::Probe(r), a) => drop(r.send(a.map(|a| {
            // Reported once it is committed: from then on it is never due again.
            if let Answer::Quarantined(q) = a {
                q.report();
            }
        }))),
        (Op::Retry(.., r), a) => drop(
            r.send(a.map(|a| if let Answer::Retry(o) = a { o } else { RetryOutcome::NotFound })),
        ),
        (Op::Cancel(.., r), a) => {
            drop(r.send(a.map(|a| if let Answer::Cancel(n) = a { n } else { None })))
        }
        (Op::Prune(.., r), a) => drop(r.send(a.map(|a| match a {
            Answer::Pruned(p) => p,
            _ => Pruned { removed: 0, next: None },
        }))),
        (Op::Shutdown, _) => {}
    }
}

/// A delivery record, written by hand ([`crate::store::json`]): every
/// ingest writes one per matched rule, and the worker one per attempt.
fn encode_rule_event(rec: RuleEventJson<'_>) -> Vec<u8> {
    // Sized for a pending delivery record (~285 bytes) so it never regrows.
    let mut out = Vec::with_capacity(320);
    rec.write(&mut out);
    out
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Sized for a pending delivery record (~285 bytes) so it never regrows.
    let mut out = Vec::with_capacity(320);
    let _ = serde_json::to_writer(&mut out, value);
    out
}

mod apply;
mod batch;
mod commit;
pub(crate) mod contacts;
mod idempotency;
mod prune;
mod quarantine;
mod requests;
mod reroute;
mod tables;

use idempotency::Outcome;
pub use idempotency::{BulkOutcome, BulkReply, BulkRequest, IdempotencyKey, KeyConflict};
pub(crate) use prune::resume_after;
pub use prune::{PRUNE_STEP, PruneStep, Pruned, Running};
pub use quarantine::Quarantined;
pub use requests::{AttemptDone, Ingested, NewEvent, NewRuleEvent, Next, RetryOutcome};
pub use reroute::Route;
pub use tables::Tables;
