//! Table definitions. Keys are tuples so that related rows are adjacent:
//! an event's rule events and attempts, a connection's due entries in time order.

use super::StoreError;
use redb::{Database, TableDefinition};
use std::ops::RangeInclusive;

/// The keys of event `id`'s rule events in [`RULE_EVENTS`].
pub fn rule_events_of(id: u128) -> RangeInclusive<(u128, &'static str)> {
    (id, "")..=(id, "\u{10FFFF}")
}

/// The keys of every attempt of event `id` in [`ATTEMPTS`], all rules.
pub fn attempts_of(id: u128) -> RangeInclusive<(u128, &'static str, u32)> {
    (id, "", 0)..=(id, "\u{10FFFF}", u32::MAX)
}

/// The first UUID v7 minted at `ms` (its top 48 bits are the Unix ms), so
/// `..uuid7_bound(ms)` holds every event or activity id minted before it.
pub fn uuid7_bound(ms: u64) -> u128 {
    u128::from(ms) << 80
}

/// Event id → the event's row: its record and payload ([`event_row`]). One
/// insert per event: the record, the payload and a per-workspace index used
/// to be three (see `migrate`). UUID v7 keys keep rows in time order.
pub const EVENT_ROWS: TableDefinition<u128, &[u8]> = TableDefinition::new("event_rows");
/// (event id, rule id) → rule event record (JSON).
pub const RULE_EVENTS: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("rule_events");
/// (event id, rule id, attempt) → attempt record (JSON).
pub const ATTEMPTS: TableDefinition<(u128, &str, u32), &[u8]> = TableDefinition::new("attempts");
/// (connection key, due ms, event id, rule id): the due-time index, partitioned
/// by connection so one backed-up connection never hides another's due work.
pub const DUE: TableDefinition<(&str, u64, u128, &str), ()> = TableDefinition::new("due");
/// (workspace, idempotency key with its credential) → (accepted at ms, the
/// request body's hash and the original event's record JSON): all a replay
/// answers, so it outlives the event itself (`delivery.retention` may be
/// shorter than the key's 24 h). Layout in `writer::idempotency`.
pub const IDEMPOTENCY_REPLIES: TableDefinition<(&str, &str), (u64, &[u8])> =
    TableDefinition::new("idempotency_replies");
/// (accepted at ms, workspace, key): expiring idempotency keys in time order.
pub const IDEMPOTENCY_BY_TIME: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("idempotency_by_time");

/// (event id, rule id) → the bytes of a delivery record that would not
/// decode, set aside when the delivery was failed in its place (for a
/// person to look at); pruned with its event.
pub const QUARANTINE: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("quarantine");

/// Contact id → contact record (JSON).
pub const CONTACTS: TableDefinition<u128, &[u8]> = TableDefinition::new("contacts");
/// (workspace, lowercased email) → contact id.
pub const CONTACT_EMAILS: TableDefinition<(&str, &str), u128> =
    TableDefinition::new("contact_emails");
/// (workspace, external id) → contact id.
pub const CONTACT_EXTERNAL_IDS: TableDefinition<(&str, &str), u128> =
    TableDefinition::new("contact_external_ids");
/// (contact id, sequence) → enrolment record (JSON).
pub const ENROLLMENTS: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("enrollments");
/// (due ms, contact id, sequence): the sequence steps' due-time index.
pub const SEQUENCE_DUE: TableDefinition<(u64, u128, &str), ()> =
    TableDefinition::new("sequence_due");
/// (contact id, activity id) → activity record (JSON), oldest first.
pub const ACTIVITY: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("activity");
/// (activity id, contact id): activity in time order (UUID v7), for retention.
pub const ACTIVITY_BY_TIME: TableDefinition<(u128, u128), ()> =
    TableDefinition::new("activity_by_time");
/// (workspace, unsubscribed at ms, contact id): the suppression list in time order.
pub const SUPPRESSED: TableDefinition<(&str, u64, u128), ()> = TableDefinition::new("suppressed");
/// Event id: ingested events that `event` automations (or contact upserts
/// from events) still have to see; written in the event's own transaction.
pub const AUTOMATION_INBOX: TableDefinition<u128, ()> = TableDefinition::new("automation_inbox");

/// Creates every table so readers never meet a missing one.
pub fn create_all(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(EVENT_ROWS)?;
    txn.open_table(RULE_EVENTS)?;
    txn.open_table(ATTEMPTS)?;
    txn.open_table(DUE)?;
    txn.open_table(IDEMPOTENCY_REPLIES)?;
    txn.open_table(IDEMPOTENCY_BY_TIME)?;
    txn.open_table(QUARANTINE)?;
    txn.open_table(CONTACTS)?;
    txn.open_table(CONTACT_EMAILS)?;
    txn.open_table(CONTACT_EXTERNAL_IDS)?;
    txn.open_table(ENROLLMENTS)?;
    txn.open_table(SEQUENCE_DUE)?;
    txn.open_table(ACTIVITY)?;
    txn.open_table(ACTIVITY_BY_TIME)?;
    txn.open_table(SUPPRESSED)?;
    txn.open_table(AUTOMATION_INBOX)?;
    txn.commit()?;
    Ok(())
}

/// An event row: `[record length, u32 little-endian][record JSON][payload JSON]`,
/// built in one buffer; `write` appends the record's JSON.
pub fn event_row(write: impl FnOnce(&mut Vec<u8>), payload: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(320 + payload.len());
    row.extend_from_slice(&[0; 4]);
    write(&mut row);
    let len = u32::try_from(row.len() - 4).unwrap_or(u32::MAX);
    row[..4].copy_from_slice(&len.to_le_bytes());
    row.extend_from_slice(payload);
    row
}

/// The decoded record of an event row (its payload left alone).
pub fn row_record(row: &[u8]) -> Result<super::EventRecord, StoreError> {
    super::decode(split_row(row)?.0)
}

/// The record and payload of an event row.
pub fn split_row(row: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let corrupt = || StoreError::Corrupt("corrupt event row: bad record length".into());
    let (len, rest) = row.split_first_chunk::<4>().ok_or_else(corrupt)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| corrupt())?;
    if len > rest.len() {
        return Err(corrupt());
    }
    Ok(rest.split_at(len))
}
