//! A panicking attempt (a bug in meshes, such as an adapter overflowing the
//! clock on an absurd provider value) must not pin its delivery. Before
//! this, the worker task died with the delivery still in flight: the
//! scheduler skipped it forever, the API showed it `processing`, a manual
//! retry answered 425 and the in-flight gauge never came down.

use super::engine::Shared;
use super::retry;
use crate::adapters::adapter::AttemptResult;
use crate::clock;
use crate::config::model::{Outcome, RetryPolicy};
use crate::store::{AttemptDone, AttemptRecord, AttemptView, DueKey};
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// What the attempt row says. The panic message is not repeated: it may
/// quote anything the code had at hand, secrets included.
const MESSAGE: &str =
    "internal_error: the attempt was aborted by a bug in meshes (a panic; the log says where)";

/// Gives back what a dispatched attempt holds, however its task ends (a
/// panic outside [`caught`], or the task dropped at shutdown): its
/// in-flight entry, then its recording slot, then wakes the scheduler.
#[derive(Debug)]
pub(super) struct Release {
    shared: Arc<Shared>,
    event: u128,
    rule: String,
    recording: Option<OwnedSemaphorePermit>,
}

impl Release {
    pub(super) fn new(shared: Arc<Shared>, key: &DueKey, recording: OwnedSemaphorePermit) -> Self {
        Release { shared, event: key.event, rule: key.rule.clone(), recording: Some(recording) }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        // In-flight first: a slot freed before it would let the scheduler
        // scan this entry while it still looks taken.
        self.shared.in_flight.remove(self.event, &self.rule);
        drop(self.recording.take());
        self.shared.wake.notify_one();
    }
}

/// Runs `attempt`; a panic becomes an `internal_error` attempt, retried
/// (or failed) by the connection's retry policy like any other, so a bug
/// that always panics ends the delivery instead of spinning on it.
pub(super) async fn caught<F>(shared: &Shared, key: &DueKey, attempt: F) -> Option<AttemptDone>
where
    F: Future<Output = Option<AttemptDone>>,
{
    let started = clock::now_ms();
    match AssertUnwindSafe(attempt).catch_unwind().await {
        Ok(done) => done,
        Err(_) => panicked(shared, key, started),
    }
}

/// The outcome of an attempt that panicked; `None` (nothing recorded, the
/// in-flight entry is still released) when the delivery cannot be read or
/// is no longer due at this entry.
fn panicked(shared: &Shared, key: &DueKey, started: u64) -> Option<AttemptDone> {
    let event = uuid::Uuid::from_u128(key.event);
    let view = match shared.store.attempt_view(key.event, &key.rule) {
        Ok(Some(view)) => view,
        Ok(None) | Err(_) => {
            tracing::error!(%event, rule = %key.rule, "a delivery attempt panicked (a bug in meshes); its delivery could not be read back, so nothing is recorded");
            return None;
        }
    };
    let rec = &view.rule_event;
    if rec.status.is_terminal() || rec.next_attempt_at != Some(key.due) {
        tracing::error!(delivery = %rec.delivery_id, %event, rule = %key.rule, "a delivery attempt panicked (a bug in meshes); the delivery had already moved on");
        return None;
    }
    tracing::error!(delivery = %rec.delivery_id, %event, rule = %key.rule, "a delivery attempt panicked (a bug in meshes): recorded as internal_error, retried per the retry policy");
    metrics::counter!("meshes_deliveries_total", "connection" => key.conn_key.clone(), "outcome" => Outcome::InternalError.as_str()).increment(1);
    let now = clock::now_ms().max(started);
    let attempt = rec.attempts + 1;
    let result =
        AttemptResult::Retry { code: Outcome::InternalError, after: None, message: MESSAGE.into() };
    let spent = retry::Spent { attempts: attempt - rec.budget_start, deferrals: rec.deferrals };
    let next = retry::next_step(&result, &policy(shared, &view), spent, now, rand::random());
    if next == crate::store::Next::Failed {
        // The same line as any delivery that fails for good (`observe::failed`).
        tracing::warn!(delivery = %rec.delivery_id, %event, rule = %key.rule, connection = %key.conn_key, attempt, outcome = Outcome::InternalError.as_str(), "delivery failed for good: it is not retried");
    }
    let record = AttemptRecord {
        attempt,
        started_at: started,
        duration_ms: now - started,
        outcome: Outcome::InternalError,
        http_status: None,
        response_excerpt: None,
        error: Some(MESSAGE.into()),
    };
    Some(AttemptDone { key: key.clone(), attempt: Some(record), next, at: now })
}

/// The retry policy of the connection the delivery routes to now; the
/// default one if the config no longer routes it (the next dispatch will
/// cancel or move it).
fn policy(shared: &Shared, view: &AttemptView) -> RetryPolicy {
    let rt = shared.runtime.load();
    let conn = rt.workspace(&view.event.workspace).and_then(|ws| {
        let target = ws.target(&view.rule_event.rule_id)?;
        ws.connections.get(target.connection).cloned()
    });
    conn.map_or_else(RetryPolicy::default, |c| c.retry.clone())
}
