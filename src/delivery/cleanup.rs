//! The pass after a reload (and at startup) over every queued delivery:
//! cancels those the config in force can no longer make, moves those whose
//! rule now delivers through another connection. Moves are made at once;
//! cancellations only once that config has been in force for
//! [`CANCEL_GRACE`](super::route::CANCEL_GRACE), by a second pass after it
//! when the first met any, so a config cut short by a slow write and
//! replaced meanwhile cancels nothing. The scheduler reads only the queues of
//! connections in the config, so a removed connection's entries are
//! settled by this pass alone: it pages through the whole due index, one
//! bounded read per step, and retries store errors with a backoff until it
//! is done, superseded by a newer reload, or stopped at shutdown.
//!
//! Each page is decided against the config in force after it was read: an
//! entry in the page was ingested under that config or an older one (an
//! ingest reads the config before it commits), never under a newer one. The
//! writer job checks, in its own transaction, that this config is still in
//! force and does nothing otherwise, so a cancel or move is never applied
//! on behalf of a config that has since been replaced; the page is then
//! decided again.

use super::engine::Shared;
use super::route::{Fate, fate, grace_left};
use crate::clock;
use crate::gateway::runtime::Runtime;
use crate::store::{DueKey, Quarantined, Route, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Due entries read (and at most cancelled or moved in one writer job) per step.
pub const PAGE: usize = 1_000;
/// The first wait after a store error; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Which cleanup may run: each applied reload starts one and stops the one
/// before it (whose decisions its own pass revisits anyway); shutdown stops
/// them all.
#[derive(Debug, Default)]
pub struct Cleanups {
    root: CancellationToken,
    current: Mutex<Option<CancellationToken>>,
}

impl Cleanups {
    /// The stop token of a new cleanup; the previous one is stopped.
    pub fn begin(&self) -> CancellationToken {
        let token = self.root.child_token();
        if let Ok(mut current) = self.current.lock()
            && let Some(old) = current.replace(token.clone())
        {
            old.cancel();
        }
        token
    }

    /// Stops every cleanup (shutdown), now and later.
    pub fn stop_all(&self) {
        self.root.cancel();
    }
}

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Deliveries canceled.
    pub canceled: usize,
    /// Deliveries moved to their rule's new connection.
    pub moved: usize,
    /// Deliveries left for a later pass to cancel: the config was in its grace.
    pub deferred: usize,
}

impl std::ops::AddAssign for Swept {
    fn add_assign(&mut self, other: Swept) {
        self.canceled += other.canceled;
        self.moved += other.moved;
        self.deferred += other.deferred;
    }
}

/// One step of a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing after the cursor: the pass is complete.
    Done,
    /// This page is settled; the next one starts after its last entry.
    Next(DueKey, Swept),
    /// The config changed between the decision and the writer: decide again.
    Stale,
}

/// Runs passes until one has nothing left to cancel later; `None` when
/// stopped first (a newer reload, or shutdown) or the store writer is gone.
/// A pass under a config in its grace moves what it must but cancels
/// nothing: the next one starts when that grace ends, so a newer reload
/// meanwhile (which stops this cleanup) leaves those deliveries pending.
pub async fn run(shared: &Shared, stop: &CancellationToken) -> Option<Swept> {
    let mut total = Swept::default();
    loop {
        let pass = retrying(stop, |cursor| async move { step(shared, cursor.as_ref()).await });
        let swept = pass.await?;
        total += swept;
        total.deferred = swept.deferred;
        if swept.deferred == 0 {
            return Some(total);
        }
        let left = grace_left(&shared.runtime.load());
        tokio::select! {
            biased;
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(left) => {}
        }
    }
}

/// Drives `step` from the index's head to its end. A store error (the
/// store refuses service for a while after a full disk, say) is retried
/// from the same cursor after a wait that doubles up to [`MAX_BACKOFF`]:
/// given up, a removed connection's deliveries would stay pending, and
/// their events unprunable, until the next reload or restart.
async fn retrying<F, Fut>(stop: &CancellationToken, mut step: F) -> Option<Swept>
where
    F: FnMut(Option<DueKey>) -> Fut,
    Fut: Future<Output = Result<Step, StoreError>>,
{
    let (mut cursor, mut total, mut backoff) = (None, Swept::default(), FIRST_BACKOFF);
    while !stop.is_cancelled() {
        match step(cursor.clone()).await {
            Ok(Step::Done) => return Some(total),
            Ok(Step::Next(last, swept)) => {
                (cursor, backoff) = (Some(last), FIRST_BACKOFF);
                total += swept;
            }
            Ok(Step::Stale) => {}
            Err(StoreError::Closed) => return None,
            Err(e) => {
                let secs = backoff.as_secs();
                tracing::warn!(error = %e, retry_in_secs = secs, "reload cleanup cannot use the store; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    None
}

/// Reads the page after `after`, decides it under the config in force and
/// commits what it decided.
pub async fn step(shared: &Shared, after: Option<&DueKey>) -> Result<Step, StoreError> {
    let page = shared.store.due_page(after, PAGE)?;
    let Some(last) = page.last().cloned() else { return Ok(Step::Done) };
    let plan = Plan::decide(shared.runtime.load_full(), page);
    Ok(match commit(shared, plan).await? {
        Some(swept) => Step::Next(last, swept),
        None => Step::Stale,
    })
}

/// Moves one delivery to `to` (a worker that met it before the cleanup
/// did), unless the config `rt` has been replaced meanwhile.
pub async fn move_one(
    shared: &Shared,
    rt: Arc<Runtime>,
    key: DueKey,
    to: Route,
) -> Result<bool, StoreError> {
    let plan = Plan { decided: rt, cancels: HashMap::new(), moves: vec![(key, to)], deferred: 0 };
    Ok(commit(shared, plan).await?.is_some_and(|s| s.moved == 1))
}

/// What one page needs under one config.
#[derive(Debug)]
pub struct Plan {
    decided: Arc<Runtime>,
    cancels: HashMap<String, Vec<DueKey>>,
    moves: Vec<(DueKey, Route)>,
    deferred: usize,
}

impl Plan {
    /// Decides each of `keys` under `rt`; while `rt` is in its grace its
    /// cancellations are only counted, for a pass after the grace.
    pub fn decide(rt: Arc<Runtime>, keys: Vec<DueKey>) -> Plan {
        let may_cancel = grace_left(&rt).is_zero();
        let mut plan =
            Plan { cancels: HashMap::new(), moves: Vec::new(), decided: rt, deferred: 0 };
        for key in keys {
            match fate(&plan.decided, &key) {
                Fate::Keep => {}
                Fate::Move(to) => plan.moves.push((key, to)),
                Fate::Cancel(reason) if may_cancel => {
                    plan.cancels.entry(reason).or_default().push(key);
                }
                Fate::Cancel(_) => plan.deferred += 1,
            }
        }
        plan
    }
}

/// Applies `plan` in one writer job if its config is still in force (by
/// identity: the plan holds it, so its address cannot be reused meanwhile);
/// `None` when it is not.
pub async fn commit(shared: &Shared, plan: Plan) -> Result<Option<Swept>, StoreError> {
    let deferred = plan.deferred;
    if plan.cancels.is_empty() && plan.moves.is_empty() {
        return Ok(Some(Swept { deferred, ..Swept::default() }));
    }
    let (slot, now) = (shared.runtime.clone(), clock::now_ms());
    let decided = Arc::as_ptr(&plan.decided) as usize;
    let Plan { cancels, moves, decided: _keep, .. } = plan;
    let done = shared
        .store
        .writer()
        .run(move |t| {
            if Arc::as_ptr(&slot.load()) as usize != decided {
                return Ok(None);
            }
            let (mut swept, mut bad) = (Swept { deferred, ..Swept::default() }, Vec::new());
            for (reason, keys) in &cancels {
                swept.canceled += t.cancel_due(keys, reason, now, &mut bad)?;
            }
            for (key, to) in &moves {
                swept.moved += usize::from(t.move_due(key, to, &mut bad)?);
            }
            Ok(Some((swept, bad)))
        })
        .await?;
    Ok(done.map(|(swept, bad)| {
        bad.iter().for_each(Quarantined::report);
        swept
    }))
}

#[cfg(test)]
#[path = "cleanup_tests.rs"]
mod tests;
