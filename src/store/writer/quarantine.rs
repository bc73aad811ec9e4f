//! Deliveries whose stored records will not decode. Retrying cannot fix
//! them, and failing the writer's batch over them (as any error once did)
//! closed the store for everyone, again at every tick the scheduler found
//! them due. So such a delivery is failed with `internal_error`, leaves the
//! due index, and the bytes that would not decode are kept aside.

use super::{AttemptDone, Next, Tables};
use crate::config::model::Outcome;
use crate::store::records::{RuleEventRecord, Status};
use crate::store::tables::QUARANTINE;
use crate::store::{DueKey, StoreError};
use redb::ReadableTable;
use serde_json::Value;

/// A delivery failed as unreadable, reported (logged and counted) once
/// its commit is done: it is never due again, so this happens once.
#[derive(Debug)]
pub struct Quarantined {
    event: u128,
    rule: String,
    reason: String,
}

impl Quarantined {
    /// Logs and counts it; call once its commit is done.
    pub fn report(&self) {
        metrics::counter!("meshes_deliveries_unreadable_total").increment(1);
        let event = uuid::Uuid::from_u128(self.event);
        tracing::error!(%event, rule = %self.rule, reason = %self.reason, "a delivery could not be read: failed with internal_error, not retried");
    }
}

impl Tables<'_> {
    /// Records an attempt; a delivery record that will not decode is
    /// failed in its place (see the module docs).
    pub(super) fn record_attempt(
        &mut self,
        done: &AttemptDone,
    ) -> Result<Option<Quarantined>, StoreError> {
        let k = &done.key;
        let reason = match self.attempt(done) {
            Err(StoreError::Corrupt(why)) => self.set_aside(k, &why)?,
            Err(e) => return Err(e),
            Ok(()) => match &done.next {
                Next::Unreadable { reason } => reason.clone(),
                _ => return Ok(None),
            },
        };
        Ok(Some(Quarantined { event: k.event, rule: k.rule.clone(), reason }))
    }

    /// Fails and sets aside the undecodable record behind `k`, which the
    /// caller has taken out of the due index (a cancel or a move that met it).
    pub(super) fn quarantine(&mut self, k: &DueKey, why: &str) -> Result<Quarantined, StoreError> {
        let reason = self.set_aside(k, why)?;
        Ok(Quarantined { event: k.event, rule: k.rule.clone(), reason })
    }

    /// Moves the undecodable record of `k` to [`QUARANTINE`] and stores a
    /// failed one instead; returns its reason. `attempt` has already taken
    /// `k` out of the due index.
    fn set_aside(&mut self, k: &DueKey, why: &str) -> Result<String, StoreError> {
        let raw = match self.rule_events.get((k.event, k.rule.as_str()))? {
            Some(raw) => raw.value().to_vec(),
            None => Vec::new(),
        };
        self.txn.open_table(QUARANTINE)?.insert((k.event, k.rule.as_str()), raw.as_slice())?;
        let reason = format!(
            "internal_error: the stored delivery record could not be read ({why}); it was set aside and is not retried"
        );
        let rec = replacement(k, &raw, reason.clone(), crate::clock::now_ms());
        self.put(k.event, &rec)?;
        Ok(reason)
    }
}

/// A failed record for `k`, keeping whatever fields of the old one still
/// read, so the API shows the delivery where it was.
fn replacement(k: &DueKey, raw: &[u8], reason: String, at: u64) -> RuleEventRecord {
    let old: Value = serde_json::from_slice(raw).unwrap_or_default();
    let text = |f: &str| old.get(f).and_then(Value::as_str).map(str::to_string);
    let num = |f: &str| old.get(f).and_then(Value::as_u64);
    let connection = k.conn_key.split_once('/').map_or(k.conn_key.as_str(), |(_, c)| c);
    RuleEventRecord {
        rule_id: k.rule.clone(),
        connection: text("connection").unwrap_or_else(|| connection.to_string()),
        action: text("action").unwrap_or_default(),
        conn_key: k.conn_key.clone(),
        status: Status::Failed,
        attempts: num("attempts").and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
        budget_start: 0,
        deferrals: 0,
        next_attempt_at: None,
        last_outcome: Some(Outcome::InternalError),
        last_http_status: None,
        last_error: Some(reason),
        delivery_id: text("delivery_id").unwrap_or_default(),
        created_at: num("created_at").unwrap_or(at),
        started_at: num("started_at"),
        completed_at: Some(at),
    }
}
