//! One attempt: read the delivery, pace it, call the adapter, decide what
//! comes next and record it.

use super::cleanup::move_one;
use super::engine::Shared;
use super::lane::{Lane, Slots};
use super::local;
use super::observe;
use super::panicked::{self, Release};
use super::retry;
use super::route::{Fate, fate, grace_left, postponed};
use crate::adapters::adapter::{AttemptReport, AttemptResult, Delivery, QuotaScope};
use crate::adapters::limits;
use crate::adapters::payload::Payload;
use crate::automations::stale::stale;
use crate::clock;
use crate::config::model::Outcome;
use crate::gateway::runtime::{ConnectionRt, Runtime, Target, WorkspaceRt};
use crate::store::{AttemptDone, AttemptRecord, AttemptView, DueKey, Next, StoreError};
use std::sync::Arc;

/// Runs one attempt and records it; always releases the delivery, even
/// when the attempt panics.
pub async fn run(shared: Arc<Shared>, lane: Arc<Lane>, key: DueKey, slots: Slots) {
    let Slots { request, recording } = slots;
    let _release = Release::new(shared.clone(), &key, recording);
    let done = panicked::caught(&shared, &key, attempt(&shared, &lane, &key)).await;
    // The destination has answered: its request slot takes the next due
    // delivery while this outcome waits for the writer's next commit. The
    // delivery stays in flight (never dispatched twice) until it is written.
    drop(request);
    shared.wake.notify_one();
    if let Some(done) = done {
        // If recording fails the due entry stays, and the delivery is simply
        // attempted again later: at-least-once, never lost.
        if let Err(e) = shared.store.writer().attempt(done).await {
            tracing::error!(error = %e, rule = %key.rule, "could not record an attempt; it will be retried");
        }
    }
}

async fn attempt(shared: &Shared, lane: &Lane, key: &DueKey) -> Option<AttemptDone> {
    let rt = shared.runtime.load_full();
    if let Some(stop) = reroute(shared, &rt, key).await {
        return stop;
    }
    let (conn, view, payload) = match load(shared, &rt, key) {
        Ok(loaded) => loaded?,
        Err(unreadable) => return Some(*unreadable),
    };
    let (event, rec) = (&view.event, &view.rule_event);
    // The scheduler's snapshot may predate the commit of this delivery's
    // previous attempt (it saw the due entry, then found it no longer in
    // flight). This read is newer than that commit, so it decides: a
    // delivery already finished or rescheduled is not sent again.
    if rec.status.is_terminal() || rec.next_attempt_at != Some(key.due) {
        return None;
    }
    let ws = rt.workspace(&event.workspace)?;
    let target = ws.target(&key.rule)?;
    if let Some(stop) = stop_stale(shared, ws, &view, key, &target.metadata.action) {
        return stop;
    }
    // The first turn is taken before the attempt's clock starts, as the
    // attempt's own deadline must not include queueing for the budget.
    if let Some(budget) = &lane.budget {
        budget.take().await;
    }
    let delivery = delivery(&view, key, target, &conn, payload);
    let started = clock::now_ms();
    let t0 = tokio::time::Instant::now();
    let ((report, queued), out_of_fds) = local::watch(send(&conn, lane, &delivery)).await;
    let duration = t0.elapsed().saturating_sub(queued);
    let spent =
        retry::Spent { attempts: delivery.attempt - rec.budget_start, deferrals: rec.deferrals };
    let sent = Sent { report, out_of_fds, started, duration };
    Some(conclude(&conn, lane, key, &delivery, spent, sent))
}

/// What came of sending an attempt.
#[derive(Debug)]
struct Sent {
    report: AttemptReport,
    /// The attempt ran out of file descriptors.
    out_of_fds: bool,
    /// Unix ms.
    started: u64,
    /// The destination's time, not the budget's.
    duration: std::time::Duration,
}

/// Tells the breaker, the metrics and the log how an attempt went, and
/// decides what comes next.
fn conclude(
    conn: &ConnectionRt,
    lane: &Lane,
    key: &DueKey,
    delivery: &Delivery,
    spent: retry::Spent,
    sent: Sent,
) -> AttemptDone {
    let now = clock::now_ms();
    let Sent { report, out_of_fds, started, duration } = sent;
    if local::is_local(out_of_fds, &report.result) {
        // Not the destination's doing, and nothing was sent: its breaker,
        // its metrics and the delivery's attempt log are not told.
        return local::postpone(key, now);
    }
    local::had_descriptors();
    feed_lane(conn, lane, &report.result, now);
    let next = retry::next_for(&report, &conn.retry, spent, now, rand::random());
    observe::attempt(conn, &report, duration, now.saturating_sub(delivery.created_at_ms));
    if next == Next::Failed {
        observe::failed(delivery, &conn.conn_key, &report);
    }
    let attempt = record(delivery, &report, started, duration);
    AttemptDone { key: key.clone(), attempt: Some(attempt), next, at: now }
}

/// `Some` when the entry is not attempted here: `Some(done)` cancels it
/// (or postpones it, under a config still in its grace), `None` leaves it
/// to the queue of the connection its rule now targets.
async fn reroute(shared: &Shared, rt: &Arc<Runtime>, key: &DueKey) -> Option<Option<AttemptDone>> {
    match fate(rt, key) {
        Fate::Keep => None,
        Fate::Cancel(reason) => match grace_left(rt) {
            left if left.is_zero() => Some(Some(canceled(key, reason))),
            left => Some(Some(postponed(key, left))),
        },
        Fate::Move(to) => {
            // Met before the reload cleanup got to it: sent from here, it
            // would go under the old connection's lane (concurrency, rate
            // limit, breaker). Left where it is if this fails or the config
            // changed again: the next dispatch decides anew.
            if let Err(e) = move_one(shared, rt.clone(), key.clone(), to).await {
                tracing::warn!(error = %e, rule = %key.rule, "cannot move a delivery to its rule's connection; it waits");
            }
            Some(None)
        }
    }
}

/// The end of a delivery that is not sent, decided now.
fn canceled(key: &DueKey, reason: String) -> AttemptDone {
    AttemptDone {
        key: key.clone(),
        attempt: None,
        next: Next::Canceled { reason },
        at: clock::now_ms(),
    }
}

/// Tells the lane's breaker how the destination answered; an account's
/// spent quota pauses the connection until its reset (and says so itself).
fn feed_lane(conn: &ConnectionRt, lane: &Lane, result: &AttemptResult, now: u64) {
    let change = lane.record(healthy(result), now);
    if let AttemptResult::Deferred { until, scope: QuotaScope::Connection, .. } = result {
        pause(conn, lane, *until);
    } else if let Some(change) = change {
        observe::breaker(&conn.conn_key, change);
    }
}

/// Holds the connection's deliveries until an account-wide quota resets.
fn pause(conn: &ConnectionRt, lane: &Lane, until: u64) {
    if lane.reopens_at().is_none_or(|set| set < until) {
        let at = clock::rfc3339(until);
        tracing::warn!(connection = %conn.conn_key, until = %at, "the account's quota is spent: the connection pauses until it resets");
    }
    lane.pause_until(until, clock::now_ms());
}

/// Calls the adapter; with a rate limit, each further HTTP request it sends
/// (a look-up before the write, a token refresh) takes its own turn. Also
/// says how long those turns were waited for: the attempt's recorded
/// duration (and its latency metric) is the destination's time, not ours.
async fn send(
    conn: &ConnectionRt,
    lane: &Lane,
    delivery: &Delivery,
) -> (AttemptReport, std::time::Duration) {
    let call = conn.adapter.deliver(delivery, conn.timeout);
    match &lane.budget {
        Some(budget) => limits::paced(budget.clone(), true, call).await,
        None => (call.await, std::time::Duration::ZERO),
    }
}

/// What the adapter is given for this attempt.
fn delivery(
    view: &AttemptView,
    key: &DueKey,
    target: Target<'_>,
    conn: &ConnectionRt,
    payload: Payload,
) -> Delivery {
    let (event, rec) = (&view.event, &view.rule_event);
    Delivery {
        delivery_id: rec.delivery_id.clone(),
        attempt: rec.attempts + 1,
        event_id: event.id.clone(),
        event: event.event.clone(),
        resource: event.resource.clone(),
        resource_id: event.resource_id.clone(),
        workspace: event.workspace.clone(),
        created_at_ms: event.created_at,
        rule_id: key.rule.clone(),
        metadata: target.metadata.clone(),
        payload,
        mapping: crate::adapters::mapping::effective(conn.config.mapping(), target.mapping),
        warnings: crate::adapters::mapping::Warnings::default(),
    }
}

/// The connection the rule routes to now, the event, this delivery's record
/// and the payload. `Err` when they will not decode: waiting would not
/// help, so the delivery fails (the writer logs it once).
fn load(shared: &Shared, rt: &Runtime, key: &DueKey) -> Result<Option<Loaded>, Box<AttemptDone>> {
    match shared.store.attempt_view(key.event, &key.rule) {
        Ok(view) => Ok(view.and_then(|view| route(rt, key, view))),
        Err(StoreError::Corrupt(why)) => {
            let reason = format!(
                "internal_error: the stored event or delivery could not be read ({why}); it is not retried"
            );
            let next = Next::Unreadable { reason };
            Err(Box::new(AttemptDone {
                key: key.clone(),
                attempt: None,
                next,
                at: clock::now_ms(),
            }))
        }
        Err(e) => {
            tracing::warn!(error = %e, rule = %key.rule, "cannot read the event; the attempt waits");
            Ok(None)
        }
    }
}

/// The connection an attempt goes through, what it reads, and its payload.
type Loaded = (Arc<ConnectionRt>, AttemptView, Payload);

/// The payload moves out of the view, which lives as long as the attempt:
/// only its compact text is held while the receiver answers.
fn route(rt: &Runtime, key: &DueKey, mut view: AttemptView) -> Option<Loaded> {
    let payload = Payload::from_stored(&std::mem::take(&mut view.payload));
    let ws = rt.workspace(&view.event.workspace)?;
    let conn = ws.connections.get(ws.target(&key.rule)?.connection)?.clone();
    Some((conn, view, payload))
}

/// `Some` when the attempt is not sent: `Some(done)` cancels a delivery
/// that no longer applies ([`stale`]: a suppressed contact's email, a step
/// of a sequence the contact has left), `None` waits as the contact could
/// not be read (an unreadable contact is not taken as "send").
fn stop_stale(
    shared: &Shared,
    ws: &WorkspaceRt,
    view: &AttemptView,
    key: &DueKey,
    action: &str,
) -> Option<Option<AttemptDone>> {
    match stale(&shared.store, Some(ws), &view.event, &key.rule, action) {
        Ok(None) => None,
        Ok(Some(reason)) => Some(Some(canceled(key, reason))),
        Err(e) => {
            tracing::warn!(error = %e, rule = %key.rule, "cannot read the contact; the attempt waits");
            Some(None)
        }
    }
}

/// Whether an attempt says the destination is healthy (for the circuit
/// breaker): a per-request rejection is healthy, an outage is not. One
/// registrant's spent daily quota is about that request; an account's
/// pauses the connection anyway.
fn healthy(result: &AttemptResult) -> bool {
    match result {
        AttemptResult::Delivered => true,
        AttemptResult::Deferred { scope, .. } => *scope == QuotaScope::Delivery,
        AttemptResult::Retry { .. } => false,
        AttemptResult::Permanent { code, .. } => *code != Outcome::AuthFailed,
    }
}

fn record(
    d: &Delivery,
    report: &AttemptReport,
    started: u64,
    duration: std::time::Duration,
) -> AttemptRecord {
    let error = match (&report.result, d.warnings.joined()) {
        (AttemptResult::Delivered, warnings) => warnings,
        (
            AttemptResult::Retry { message, .. }
            | AttemptResult::Deferred { message, .. }
            | AttemptResult::Permanent { message, .. },
            warnings,
        ) => match warnings {
            None => Some(message.clone()),
            Some(w) => Some(format!("{message} (mapping warnings: {w})")),
        },
    };
    AttemptRecord {
        attempt: d.attempt,
        started_at: started,
        duration_ms: duration.as_millis() as u64,
        outcome: report.outcome(),
        http_status: report.http_status,
        response_excerpt: report.response_excerpt.clone(),
        error,
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
