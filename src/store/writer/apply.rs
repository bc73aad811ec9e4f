//! How each writer request changes the tables (inside the batch's transaction).

use super::{
    AttemptDone, NewRuleEvent, Next, Prepared, RetryOutcome, Tables, encode, encode_rule_event,
};
use crate::config::model::Outcome;
use crate::store::json::RuleEventJson;
use crate::store::records::{RuleEventRecord, Status};
use crate::store::tables::rule_events_of;
use crate::store::{DueKey, StoreError, decode, event_key};
use redb::ReadableTable;

/// A new delivery's record (pending, due at `r.due`), borrowing the ingest
/// request's fields.
pub(super) fn pending(r: &NewRuleEvent, created_at: u64) -> RuleEventJson<'_> {
    RuleEventJson {
        rule_id: &r.rule_id,
        connection: &r.connection,
        action: &r.action,
        conn_key: &r.conn_key,
        status: Status::Pending,
        attempts: 0,
        budget_start: 0,
        deferrals: 0,
        next_attempt_at: Some(r.due),
        last_outcome: None,
        last_http_status: None,
        last_error: None,
        delivery_id: &r.delivery_id,
        created_at,
        started_at: None,
        completed_at: None,
    }
}

impl Tables<'_> {
    /// Writes a new event: its row, deliveries, due entries and key.
    pub(super) fn store_event(&mut self, p: &Prepared, now: u64) -> Result<(), StoreError> {
        let e = &p.event;
        let id = event_key(&e.record.id)
            .ok_or_else(|| StoreError::Invalid("event id is not a UUID".into()))?;
        self.events.insert(id, p.row.as_slice())?;
        for (r, encoded) in e.rules.iter().zip(&p.rule_events) {
            self.rule_events.insert((id, r.rule_id.as_str()), encoded.as_slice())?;
            self.due.insert((r.conn_key.as_str(), r.due, id, r.rule_id.as_str()), ())?;
            self.earliest_due = self.earliest_due.min(r.due);
        }
        if e.inbox {
            self.inbox_push(id)?;
        }
        self.remember_key(p, now)
    }

    fn rule_event(&self, event: u128, rule: &str) -> Result<Option<RuleEventRecord>, StoreError> {
        match self.rule_events.get((event, rule))? {
            Some(raw) => Ok(Some(decode(raw.value())?)),
            None => Ok(None),
        }
    }

    pub(super) fn put(&mut self, event: u128, rec: &RuleEventRecord) -> Result<(), StoreError> {
        self.rule_events
            .insert((event, rec.rule_id.as_str()), encode_rule_event(rec.json()).as_slice())?;
        Ok(())
    }

    /// Removes the due entry a record points at, if it has one.
    fn unschedule(&mut self, event: u128, rec: &mut RuleEventRecord) -> Result<(), StoreError> {
        if let Some(at) = rec.next_attempt_at.take() {
            self.due.remove((rec.conn_key.as_str(), at, event, rec.rule_id.as_str()))?;
        }
        Ok(())
    }

    fn schedule(
        &mut self,
        event: u128,
        rec: &mut RuleEventRecord,
        at: u64,
    ) -> Result<(), StoreError> {
        self.due.insert((rec.conn_key.as_str(), at, event, rec.rule_id.as_str()), ())?;
        self.earliest_due = self.earliest_due.min(at);
        rec.next_attempt_at = Some(at);
        Ok(())
    }

    pub(super) fn attempt(&mut self, done: &AttemptDone) -> Result<(), StoreError> {
        let k = &done.key;
        self.due.remove((k.conn_key.as_str(), k.due, k.event, k.rule.as_str()))?;
        let Some(mut rec) = self.rule_event(k.event, &k.rule)? else { return Ok(()) };
        let attempts_before = rec.attempts;
        if let Some(a) = &done.attempt {
            self.attempts.insert((k.event, k.rule.as_str(), a.attempt), encode(a).as_slice())?;
            rec.attempts = rec.attempts.max(a.attempt);
            rec.started_at.get_or_insert(a.started_at);
            rec.last_outcome = Some(a.outcome);
            rec.last_http_status = a.http_status;
            // A delivery canceled while this attempt ran keeps its reason.
            if !rec.status.is_terminal() {
                rec.last_error = a.error.clone();
            }
        }
        // The entry just consumed is the one the record pointed at, unless the
        // delivery was canceled or re-scheduled meanwhile: then leave it be.
        if rec.status.is_terminal() || rec.next_attempt_at != Some(k.due) {
            // Canceled while this attempt ran, and the attempt delivered: the
            // receiver has it, so the record says so (the cancel came too
            // late). Otherwise the cancel stands and stops the retries.
            if rec.status == Status::Canceled && matches!(done.next, Next::Completed) {
                let now = done.attempt.as_ref().map_or(done.at, |a| a.started_at + a.duration_ms);
                finish(&mut rec, Status::Completed, now, None);
            }
            return self.put(k.event, &rec);
        }
        // Moved to its rule's new connection, at the same due time, while
        // this attempt ran (the scheduler skips it there while it is in
        // flight): this outcome decides, and the moved entry goes. Left
        // due, a delivered event would be sent again from the new queue.
        if rec.conn_key != k.conn_key {
            self.due.remove((rec.conn_key.as_str(), k.due, k.event, k.rule.as_str()))?;
        }
        rec.next_attempt_at = None;
        let now = done.attempt.as_ref().map_or(done.at, |a| a.started_at + a.duration_ms);
        match &done.next {
            Next::Retry { at } => {
                rec.status = Status::Retrying;
                self.schedule(k.event, &mut rec, *at)?;
            }
            Next::Deferred { at } => {
                // The budget counts attempts after `budget_start`: moving it
                // past this one leaves the budget as it was before it.
                rec.budget_start = rec.budget_start.saturating_add(1).min(rec.attempts);
                rec.deferrals = rec.deferrals.saturating_add(1);
                rec.status = Status::Retrying;
                self.schedule(k.event, &mut rec, *at)?;
            }
            Next::Postponed { at } => {
                // Not counted: the next try takes the same number, so its row
                // replaces this one, and a shortage that lasts leaves one row
                // per delivery, not one per try.
                rec.attempts = attempts_before;
                // Postponed before any attempt (a cancellation waiting out
                // its config's grace): it has not failed, its status stays.
                if done.attempt.is_some() {
                    rec.status = Status::Retrying;
                }
                self.schedule(k.event, &mut rec, *at)?;
            }
            Next::Completed => finish(&mut rec, Status::Completed, now, None),
            Next::Failed => finish(&mut rec, Status::Failed, now, None),
            Next::Canceled { reason } => {
                finish(&mut rec, Status::Canceled, now, Some(reason.clone()))
            }
            Next::Unreadable { reason } => {
                finish(&mut rec, Status::Failed, now, Some(reason.clone()));
                rec.last_outcome = Some(Outcome::InternalError);
            }
        }
        self.put(k.event, &rec)
    }

    pub(super) fn retry(
        &mut self,
        event: u128,
        rule: &str,
        now: u64,
    ) -> Result<RetryOutcome, StoreError> {
        let Some(mut rec) = self.rule_event(event, rule)? else {
            return Ok(RetryOutcome::NotFound);
        };
        self.unschedule(event, &mut rec)?;
        rec.status = Status::Pending;
        rec.budget_start = rec.attempts;
        rec.deferrals = 0;
        rec.completed_at = None;
        self.schedule(event, &mut rec, now)?;
        self.put(event, &rec)?;
        Ok(RetryOutcome::Scheduled)
    }

    pub(super) fn cancel(
        &mut self,
        event: u128,
        rule: Option<&str>,
        reason: &str,
        now: u64,
    ) -> Result<Option<usize>, StoreError> {
        if self.events.get(event)?.is_none() {
            return Ok(None);
        }
        let records: Vec<RuleEventRecord> = match rule {
            Some(r) => match self.rule_event(event, r)? {
                Some(rec) => vec![rec],
                None => return Ok(None),
            },
            None => {
                let rows = self.rule_events.range(rule_events_of(event))?;
                rows.map(|row| decode(row?.1.value())).collect::<Result<_, StoreError>>()?
            }
        };
        let mut canceled = 0;
        for mut rec in records.into_iter().filter(|r| !r.status.is_terminal()) {
            self.unschedule(event, &mut rec)?;
            finish(&mut rec, Status::Canceled, now, Some(reason.to_string()));
            self.put(event, &rec)?;
            canceled += 1;
        }
        Ok(Some(canceled))
    }

    /// Cancels the delivery behind the due entry `k`; false for a stale
    /// entry (the record no longer points at it), which is only removed.
    pub(super) fn cancel_key(
        &mut self,
        k: &DueKey,
        reason: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.due.remove((k.conn_key.as_str(), k.due, k.event, k.rule.as_str()))?;
        let Some(mut rec) = self.rule_event(k.event, &k.rule)? else { return Ok(false) };
        if rec.status.is_terminal() || rec.next_attempt_at != Some(k.due) {
            return Ok(false);
        }
        rec.next_attempt_at = None;
        finish(&mut rec, Status::Canceled, now, Some(reason.to_string()));
        self.put(k.event, &rec)?;
        Ok(true)
    }
}

fn finish(rec: &mut RuleEventRecord, status: Status, now: u64, reason: Option<String>) {
    rec.status = status;
    rec.next_attempt_at = None;
    rec.completed_at = Some(now);
    if status == Status::Completed {
        rec.last_error = None;
    }
    if reason.is_some() {
        rec.last_error = reason;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_delivery_is_stored_pending_and_as_serde_writes_it() {
        let r = NewRuleEvent {
            rule_id: "r\"1".into(),
            connection: "hook".into(),
            action: "send_webhook".into(),
            conn_key: "ws/hook".into(),
            delivery_id: "01a20c2e-759a-762b-821f-d6e228a54cc9".into(),
            due: 1_795_000_000_123,
        };
        let mut out = Vec::new();
        pending(&r, 1_795_000_000_000).write(&mut out);
        let stored: RuleEventRecord = serde_json::from_slice(&out).unwrap();
        let expected = RuleEventRecord {
            rule_id: "r\"1".into(),
            connection: "hook".into(),
            action: "send_webhook".into(),
            conn_key: "ws/hook".into(),
            status: Status::Pending,
            attempts: 0,
            budget_start: 0,
            deferrals: 0,
            next_attempt_at: Some(1_795_000_000_123),
            last_outcome: None,
            last_http_status: None,
            last_error: None,
            delivery_id: "01a20c2e-759a-762b-821f-d6e228a54cc9".into(),
            created_at: 1_795_000_000_000,
            started_at: None,
            completed_at: None,
        };
        assert_eq!(stored, expected);
        assert_eq!(out, serde_json::to_vec(&expected).unwrap(), "byte for byte serde's");
    }
}
