//! Deliveries that follow their rule to another connection, and the
//! cancels of the reload cleanup, as jobs run inside the writer's
//! transaction (see [`super::Handle::run`]): the cleanup checks, in the same
//! transaction, that the config it decided under is still in force.

use super::{Quarantined, RetryOutcome, Tables, encode_rule_event};
use crate::store::records::RuleEventRecord;
use crate::store::{DueKey, StoreError, decode};
use redb::ReadableTable;

/// A connection a delivery is queued under: its name and `<workspace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Connection name.
    pub connection: String,
    /// `<workspace>/<connection>`: the due-index partition.
    pub conn_key: String,
}

impl Tables<'_> {
    /// Moves the delivery behind `key` to `to`'s partition, due at the same
    /// time, and records its new connection with it. True when moved; a
    /// stale entry (the record no longer points at it) is only removed, and
    /// an unreadable record is set aside into `bad`.
    pub fn move_due(
        &mut self,
        key: &DueKey,
        to: &Route,
        bad: &mut Vec<Quarantined>,
    ) -> Result<bool, StoreError> {
        self.due.remove((key.conn_key.as_str(), key.due, key.event, key.rule.as_str()))?;
        let rec = match self.record(key.event, &key.rule) {
            Err(StoreError::Corrupt(why)) => {
                bad.push(self.quarantine(key, &why)?);
                return Ok(false);
            }
            other => other?,
        };
        let Some(mut rec) = rec else { return Ok(false) };
        if rec.status.is_terminal()
            || rec.next_attempt_at != Some(key.due)
            || rec.conn_key != key.conn_key
        {
            return Ok(false);
        }
        self.reroute(key.event, &mut rec, to, key.due)?;
        Ok(true)
    }

    /// Cancels the deliveries behind `keys` (stale entries are only
    /// removed). A record that will not decode is set aside into `bad`: an
    /// error would fail the whole job, and the pass would retry the same
    /// page until the next reload, every entry after it left pending.
    pub fn cancel_due(
        &mut self,
        keys: &[DueKey],
        reason: &str,
        now: u64,
        bad: &mut Vec<Quarantined>,
    ) -> Result<usize, StoreError> {
        let mut canceled = 0;
        for k in keys {
            match self.cancel_key(k, reason, now) {
                Ok(done) => canceled += usize::from(done),
                Err(StoreError::Corrupt(why)) => bad.push(self.quarantine(k, &why)?),
                Err(e) => return Err(e),
            }
        }
        Ok(canceled)
    }

    /// A manual retry that queues the delivery under `to` (the connection
    /// its rule routes to now) rather than the one it was queued under.
    pub fn retry_via(
        &mut self,
        event: u128,
        rule: &str,
        to: Option<&Route>,
        now: u64,
    ) -> Result<RetryOutcome, StoreError> {
        let Some(mut rec) = self.record(event, rule)? else { return Ok(RetryOutcome::NotFound) };
        if let Some(to) = to.filter(|to| to.conn_key != rec.conn_key) {
            if let Some(at) = rec.next_attempt_at.take() {
                self.due.remove((rec.conn_key.as_str(), at, event, rule))?;
            }
            self.reroute(event, &mut rec, to, None)?;
        }
        self.retry(event, rule, now)
    }

    fn record(&self, event: u128, rule: &str) -> Result<Option<RuleEventRecord>, StoreError> {
        self.rule_events.get((event, rule))?.map(|raw| decode(raw.value())).transpose()
    }

    /// Points `rec` at `to`, queued at `due` if given, and stores it.
    fn reroute(
        &mut self,
        event: u128,
        rec: &mut RuleEventRecord,
        to: &Route,
        due: impl Into<Option<u64>>,
    ) -> Result<(), StoreError> {
        rec.connection.clone_from(&to.connection);
        rec.conn_key.clone_from(&to.conn_key);
        rec.next_attempt_at = due.into();
        if let Some(at) = rec.next_attempt_at {
            self.due.insert((to.conn_key.as_str(), at, event, rec.rule_id.as_str()), ())?;
            // The scheduler's cursor on `to` may be past this due time.
            self.earliest_due = self.earliest_due.min(at);
        }
        let encoded = encode_rule_event(rec.json());
        self.rule_events.insert((event, rec.rule_id.as_str()), encoded.as_slice())?;
        Ok(())
    }
}
