//! Table definitions. Keys are tuples so that related rows are adjacent:
//! an event's rule events and attempts, a connection's due entries in time order.

use redb::{Database, TableDefinition};

/// Event id → event record (JSON).
pub const EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// Event id → payload (raw JSON).
pub const PAYLOADS: TableDefinition<u128, &[u8]> = TableDefinition::new("payloads");
/// (event id, rule id) → rule event record (JSON).
pub const RULE_EVENTS: TableDefinition<(u128, &str), &[u8]> = TableDefinition::new("rule_events");
/// (event id, rule id, attempt) → attempt record (JSON).
pub const ATTEMPTS: TableDefinition<(u128, &str, u32), &[u8]> = TableDefinition::new("attempts");
/// (connection key, due ms, event id, rule id): the due-time index, partitioned
/// by connection so one backed-up connection never hides another's due work.
pub const DUE: TableDefinition<(&str, u64, u128, &str), ()> = TableDefinition::new("due");
/// (workspace, event id): listing a workspace's events, newest first.
pub const BY_WORKSPACE: TableDefinition<(&str, u128), ()> = TableDefinition::new("by_workspace");
/// (workspace, idempotency key) → (event id, accepted at ms).
pub const IDEMPOTENCY: TableDefinition<(&str, &str), (u128, u64)> =
    TableDefinition::new("idempotency");
/// (accepted at ms, workspace, key): expiring idempotency keys in time order.
pub const IDEMPOTENCY_BY_TIME: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("idempotency_by_time");

/// Creates every table so readers never meet a missing one.
pub fn create_all(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(EVENTS)?;
    txn.open_table(PAYLOADS)?;
    txn.open_table(RULE_EVENTS)?;
    txn.open_table(ATTEMPTS)?;
    txn.open_table(DUE)?;
    txn.open_table(BY_WORKSPACE)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(IDEMPOTENCY_BY_TIME)?;
    txn.commit()?;
    Ok(())
}
