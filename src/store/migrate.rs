//! Moving a store written by an earlier version to the current layout, when
//! it is opened and before anything reads it.
//!
//! Layout 1 kept each event in three tables: `events` (record), `payloads`
//! and a `by_workspace` index. Layout 2 keeps one row per event in
//! `event_rows` (one B-tree insert instead of three at ingest). Rows move in
//! chunks, each chunk in one transaction that inserts the new rows and
//! deletes the old ones, so a crash mid-way leaves every event in exactly one
//! layout and the next start carries on.
//!
//! Idempotency keys used to name their event (`idempotency`: id, time), so
//! a key whose event was pruned (a retention under 24 h) let a repeat in as
//! a new event. They now keep the event's record (`idempotency_replies`);
//! keys are moved the same way, each taking its event's record with it. A
//! key whose event is already gone is dropped: it no longer worked before.
//!
//! There is no way back: a binary from before layout 2 would find none of
//! the events in a migrated store (downgrades are not supported).

use super::StoreError;
use super::tables::{EVENT_ROWS, IDEMPOTENCY_REPLIES, event_row, split_row};
use redb::{Database, ReadableTable, TableDefinition, TableHandle};

/// Layout 1: event id → event record (JSON).
pub(super) const LEGACY_EVENTS: TableDefinition<u128, &[u8]> = TableDefinition::new("events");
/// Layout 1: event id → payload (raw JSON).
pub(super) const LEGACY_PAYLOADS: TableDefinition<u128, &[u8]> = TableDefinition::new("payloads");
/// Layout 1: (workspace, event id), for listing.
pub(super) const LEGACY_BY_WORKSPACE: TableDefinition<(&str, u128), ()> =
    TableDefinition::new("by_workspace");

/// Before replies were kept: (workspace, key) → (event id, accepted at ms).
pub(super) const LEGACY_IDEMPOTENCY: TableDefinition<(&str, &str), (u128, u64)> =
    TableDefinition::new("idempotency");

/// Events moved per transaction: bounds the memory of one commit.
const CHUNK: usize = 10_000;

/// Brings a store of any earlier layout to the current one. Returns how
/// many events moved (0 for a store already in layout 2).
pub fn run(db: &Database) -> Result<u64, StoreError> {
    let moved = event_rows(db)?;
    idempotency_replies(db)?;
    Ok(moved)
}

/// Moves every legacy idempotency key to `idempotency_replies`, with its
/// event's record, and drops the old table.
fn idempotency_replies(db: &Database) -> Result<(), StoreError> {
    loop {
        let txn = db.begin_write()?;
        if !txn.list_tables()?.any(|t| t.name() == LEGACY_IDEMPOTENCY.name()) {
            return Ok(());
        }
        if move_keys(&txn)? == 0 {
            txn.delete_table(LEGACY_IDEMPOTENCY)?;
        }
        txn.commit()?;
    }
}

fn move_keys(txn: &redb::WriteTransaction) -> Result<usize, StoreError> {
    let mut old = txn.open_table(LEGACY_IDEMPOTENCY)?;
    let mut replies = txn.open_table(IDEMPOTENCY_REPLIES)?;
    let events = txn.open_table(EVENT_ROWS)?;
    type Key = (String, String, u128, u64);
    let chunk: Vec<Key> = old
        .iter()?
        .take(CHUNK)
        .map(|r| {
            let (k, v) = r?;
            let ((ws, key), (id, at)) = (k.value(), v.value());
            Ok((ws.to_string(), key.to_string(), id, at))
        })
        .collect::<Result<_, redb::StorageError>>()?;
    for (ws, key, id, at) in &chunk {
        if let Some(row) = events.get(*id)?
            && let Ok((record, _)) = split_row(row.value())
        {
            replies.insert((ws.as_str(), key.as_str()), (*at, record))?;
        }
        old.remove((ws.as_str(), key.as_str()))?;
    }
    Ok(chunk.len())
}

/// Moves every layout-1 event into `event_rows` and drops the old tables.
fn event_rows(db: &Database) -> Result<u64, StoreError> {
    let mut moved = 0u64;
    loop {
        let txn = db.begin_write()?;
        let legacy = txn.list_tables()?.any(|t| t.name() == LEGACY_EVENTS.name());
        if !legacy {
            return Ok(moved);
        }
        let n = move_chunk(&txn)?;
        if n == 0 {
            txn.delete_table(LEGACY_EVENTS)?;
            txn.delete_table(LEGACY_PAYLOADS)?;
            txn.delete_table(LEGACY_BY_WORKSPACE)?;
        }
        txn.commit()?;
        moved += n as u64;
        if n == 0 {
            tracing::info!(events = moved, "store moved to layout 2 (one row per event)");
            return Ok(moved);
        }
    }
}

fn move_chunk(txn: &redb::WriteTransaction) -> Result<usize, StoreError> {
    let mut old = txn.open_table(LEGACY_EVENTS)?;
    let mut payloads = txn.open_table(LEGACY_PAYLOADS)?;
    let mut rows = txn.open_table(EVENT_ROWS)?;
    let chunk: Vec<(u128, Vec<u8>)> = old
        .iter()?
        .take(CHUNK)
        .map(|r| r.map(|(k, v)| (k.value(), v.value().to_vec())))
        .collect::<Result<_, _>>()?;
    for (id, record) in &chunk {
        let payload = payloads.remove(*id)?.map(|p| p.value().to_vec()).unwrap_or_default();
        // The record is stored as it was: it is already JSON.
        let record: &serde_json::value::RawValue = serde_json::from_slice(record)
            .map_err(|e| StoreError::Unavailable(format!("corrupt event record: {e}")))?;
        let row = event_row(|out| out.extend_from_slice(record.get().as_bytes()), &payload);
        rows.insert(*id, row.as_slice())?;
        old.remove(*id)?;
    }
    Ok(chunk.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ListFilter, Store};
    use redb::ReadableDatabase;

    #[tokio::test]
    async fn a_layout_1_store_opens_with_every_event_readable() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<u128> =
            (0..25_u128).map(|i| (u128::from(1_700_000_000_000_u64) << 80) + i).collect();
        {
            let db = Database::create(dir.path().join("meshes.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut events = txn.open_table(LEGACY_EVENTS).unwrap();
                let mut payloads = txn.open_table(LEGACY_PAYLOADS).unwrap();
                let mut index = txn.open_table(LEGACY_BY_WORKSPACE).unwrap();
                for (i, id) in ids.iter().enumerate() {
                    let record = serde_json::json!({
                        "id": uuid::Uuid::from_u128(*id).to_string(), "workspace": "ws",
                        "event": "user.signup", "resource": "global",
                        "created_by": "publishable_key", "created_at": 1_700_000_000_000_u64,
                    });
                    events.insert(*id, serde_json::to_vec(&record).unwrap().as_slice()).unwrap();
                    let payload = format!(r#"{{"n": {i}}}"#);
                    payloads.insert(*id, payload.as_bytes()).unwrap();
                    index.insert(("ws", *id), ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        for (i, id) in ids.iter().enumerate() {
            let view = store.event(*id).unwrap().unwrap();
            let payload = store.payload(*id).unwrap().unwrap();
            assert_eq!(view.event.id, uuid::Uuid::from_u128(*id).to_string());
            assert_eq!(view.event.event, "user.signup");
            assert_eq!(payload, format!(r#"{{"n": {i}}}"#).into_bytes());
        }
        let page = store.list("ws", &ListFilter::default(), None, 100, &|_, _| false).unwrap();
        assert_eq!(page.records.len(), ids.len());
        let txn = store.db.get().unwrap().begin_read().unwrap();
        let names: Vec<String> = txn.list_tables().unwrap().map(|t| t.name().to_string()).collect();
        for gone in ["events", "payloads", "by_workspace"] {
            assert!(!names.iter().any(|n| n == gone), "{gone} still there: {names:?}");
        }
        drop(txn);
        store.close().await;
    }
}
