//! Background pruning, one bounded step per writer request.
//!
//! Events are scanned oldest first from a cursor the caller carries between
//! steps. An event that still has unfinished deliveries is kept and stepped
//! over: restarting every step from the oldest event would let a head of
//! `limit` such events (a long retry schedule, a destination down for good)
//! stop every younger event from ever being pruned. So is an event still
//! in the automation inbox.

use super::Tables;
use crate::store::records::RuleEventRecord;
use crate::store::tables::{QUARANTINE, rule_events_of, uuid7_bound};
use crate::store::{StoreError, decode};
use redb::ReadableTable;
use std::sync::Arc;

/// Rows looked at per table in one step of [`Store::prune_all`](crate::store::Store::prune_all). Each step
/// rides in a writer batch with the ingest and delivery records queued
/// beside it, which wait for it: at 1,000 a step added up to ~25 ms to them
/// (the delivery latency's p99 at 6,000 events/s went from 14 to 79–93 ms
/// with pruning running); at 100 it adds a tenth of that (p99 18 ms), for
/// more, smaller commits. Those runs predate the scheduler's landed mark,
/// whose bug also moved that p99, so the split is approximate.
pub const PRUNE_STEP: usize = 100;

/// One step of pruning: what is old enough to go, and where to look.
#[derive(Debug, Clone)]
pub struct PruneStep {
    /// Finished events created before this (Unix ms) go.
    pub before: u64,
    /// Now (Unix ms), for the idempotency keys' 24 h TTL.
    pub now: u64,
    /// Rows looked at per table in this step (at least 1); it bounds the
    /// transaction.
    pub limit: usize,
    /// The first event id not looked at yet (0 to start a pass).
    pub from: u128,
    /// Events with an attempt running now: kept, even when every delivery
    /// is finished (one canceled during its attempt), so the attempt's
    /// outcome has a record to land in.
    pub running: Option<Running>,
}

/// Whether an attempt of an event is running (the engine's in-flight set).
#[derive(Clone)]
pub struct Running(pub Arc<dyn Fn(u128) -> bool + Send + Sync>);

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Running(..)")
    }
}

impl PruneStep {
    /// A step over events created before `before`, with no attempt known to run.
    pub fn new(before: u64, now: u64, limit: usize) -> Self {
        PruneStep { before, now, limit, from: 0, running: None }
    }

    /// Whether event `id` may go as far as attempts are concerned: none of
    /// its deliveries has one running.
    pub(crate) fn may_go(&self, id: u128) -> bool {
        !self.running.as_ref().is_some_and(|r| (r.0)(id))
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted: events (with their deliveries and attempts), idempotency
    /// keys and contact activity.
    pub removed: usize,
    /// The `from` of the next step, or `None` when this pass has looked at
    /// every old row.
    pub next: Option<u128>,
}

/// Where a step's events scan resumes: after its last event when it looked
/// at a full `limit` of them, else nowhere (it reached the bound). The
/// writer's step and the read ahead of it must agree on this, since a step
/// the read finds nothing in is skipped with the read's answer.
pub(crate) fn resume_after(seen: usize, limit: usize, last: Option<u128>) -> Option<u128> {
    if seen == limit { last.map(|l| l + 1) } else { None }
}

impl Tables<'_> {
    pub(super) fn prune_step(&mut self, s: &PruneStep) -> Result<Pruned, StoreError> {
        let limit = s.limit.max(1);
        let (events, next) = self.prune_events(s, limit)?;
        let keys = self.prune_idempotency(s.now, limit)?;
        let activity = self.prune_activity(s.before, limit)?;
        // The other tables are pruned from their head (nothing there is ever
        // kept), so a full chunk just means "more next step": the events scan
        // then resumes at its end, where it finds nothing.
        let bound = uuid7_bound(s.before);
        let more = keys == limit || activity == limit;
        let next = next.or(more.then_some(bound.max(s.from)));
        Ok(Pruned { removed: events + keys + activity, next })
    }

    /// Deletes the finished events with no attempt running among the next
    /// `limit` events in `s.from..` created before `s.before`; returns how
    /// many went and where the scan stopped (`None` when it reached `s.before`).
    fn prune_events(
        &mut self,
        s: &PruneStep,
        limit: usize,
    ) -> Result<(usize, Option<u128>), StoreError> {
        let mut ids = Vec::new();
        for row in self.events.range(s.from..uuid7_bound(s.before))? {
            ids.push(row?.0.value());
            if ids.len() == limit {
                break;
            }
        }
        let next = resume_after(ids.len(), limit, ids.last().copied());
        let mut pruned = 0;
        let mut quarantine = self.txn.open_table(QUARANTINE)?;
        for id in ids {
            if s.may_go(id) && self.prune_event(id, &mut quarantine)? {
                pruned += 1;
            }
        }
        Ok((pruned, next))
    }

    /// Deletes one event with its deliveries and attempts, unless one of its
    /// deliveries is unfinished or `event` automations have yet to see it
    /// (its deliveries can all finish first, and the automation worker
    /// skips an event that is gone).
    fn prune_event(
        &mut self,
        id: u128,
        quarantine: &mut redb::Table<'_, (u128, &'static str), &'static [u8]>,
    ) -> Result<bool, StoreError> {
        let rows: Vec<RuleEventRecord> = match self
            .rule_events
            .range(rule_events_of(id))?
            .map(|row| decode(row?.1.value()))
            .collect::<Result<_, StoreError>>()
        {
            Ok(rows) => rows,
            // Whether it is finished cannot be told: it stays, and the
            // rest of the step goes on (an error here used to stop every
            // pass at this event). Its attempt fails it, then it goes.
            Err(StoreError::Corrupt(e)) => {
                let event = uuid::Uuid::from_u128(id);
                tracing::warn!(%event, error = %e, "a delivery of this event cannot be read; the event is not pruned");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        if rows.iter().any(|r| !r.status.is_terminal()) || self.in_inbox(id)? {
            return Ok(false);
        }
        for r in &rows {
            self.rule_events.remove((id, r.rule_id.as_str()))?;
            self.attempts.retain_in(
                (id, r.rule_id.as_str(), 0)..=(id, r.rule_id.as_str(), u32::MAX),
                |_, _| false,
            )?;
        }
        // Bytes set aside for a delivery failed as unreadable go with the
        // event, also when a manual retry since replaced its outcome.
        quarantine.retain_in(rule_events_of(id), |_, _| false)?;
        self.events.remove(id)?;
        Ok(true)
    }
}
