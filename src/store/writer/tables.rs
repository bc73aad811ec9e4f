//! The tables of one write transaction, and how a writer request is
//! dispatched to the code that changes them.

use super::{Answer, Op, contacts};
use crate::store::StoreError;
use crate::store::tables::*;
use redb::{Table, WriteTransaction};

/// The tables of one write transaction, as the writer's requests and
/// automation jobs see them.
pub struct Tables<'t> {
    pub(super) txn: &'t WriteTransaction,
    /// Opened on first use: ingest-only batches never pay for them.
    pub(super) contacts: Option<contacts::ContactTables<'t>>,
    pub(super) events: Table<'t, u128, &'static [u8]>,
    pub(super) rule_events: Table<'t, (u128, &'static str), &'static [u8]>,
    pub(super) attempts: Table<'t, (u128, &'static str, u32), &'static [u8]>,
    pub(super) due: Table<'t, (&'static str, u64, u128, &'static str), ()>,
    pub(super) idempotency: Table<'t, (&'static str, &'static str), (u64, &'static [u8])>,
    pub(super) idempotency_by_time: Table<'t, (u64, &'static str, &'static str), ()>,
    /// The earliest due time this transaction put in the due index.
    pub(super) earliest_due: u64,
}

impl std::fmt::Debug for Tables<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").finish_non_exhaustive()
    }
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            txn,
            contacts: None,
            events: txn.open_table(EVENT_ROWS)?,
            rule_events: txn.open_table(RULE_EVENTS)?,
            attempts: txn.open_table(ATTEMPTS)?,
            due: txn.open_table(DUE)?,
            idempotency: txn.open_table(IDEMPOTENCY_REPLIES)?,
            idempotency_by_time: txn.open_table(IDEMPOTENCY_BY_TIME)?,
            earliest_due: u64::MAX,
        })
    }

    pub(super) fn apply(&mut self, op: &mut Op) -> Result<Answer, StoreError> {
        Ok(match op {
            Op::Job(job, _) => match job.take() {
                Some(job) => Answer::Job(job(self)?),
                None => Answer::Unit,
            },
            Op::Ingest(events, bulk, now, _) => {
                Answer::Ingest(self.ingest_request(events, bulk.as_ref(), *now)?)
            }
            Op::Attempt(done, _) => match self.record_attempt(done)? {
                Some(q) => Answer::Quarantined(q),
                None => Answer::Unit,
            },
            Op::Retry(event, rule, now, _) => Answer::Retry(self.retry(*event, rule, *now)?),
            Op::Cancel(event, rule, reason, now, _) => {
                Answer::Cancel(self.cancel(*event, rule.as_deref(), reason, *now)?)
            }
            Op::Prune(step, _) => Answer::Pruned(self.prune_step(step)?),
            Op::Shutdown | Op::Probe(_) => Answer::Unit,
        })
    }
}
