//! Which layout wrote a store. Each store records its layout number in a
//! `meta` table, so a store written by a newer meshes (one whose tables a
//! migration changed) is refused with a clear message instead of being
//! read as if it were ours: depending on the change, that would show an
//! empty store or fail deep inside redb with "table type mismatch".
//!
//! Stores from before the number was kept are layout 1 or 2; `migrate`
//! brings them to the current layout and the number is written after it.

use super::StoreError;
use redb::{Database, ReadableDatabase, TableDefinition, TableHandle};

/// `"layout"` → the layout number of the store.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const KEY: &str = "layout";

/// The layout this build writes: 2, one row per event (`event_rows`) and
/// idempotency keys that keep their reply (`idempotency_replies`).
pub const CURRENT: u64 = 2;

/// Refuses a store written by a newer layout; run before anything opens
/// its tables (a newer layout may have changed their types).
pub fn check(db: &Database) -> Result<(), String> {
    match recorded(db).map_err(|e| e.to_string())? {
        Some(found) if found > CURRENT => Err(format!(
            "the store was written by a newer meshes (store layout {found}; this build reads \
             layouts up to {CURRENT}): run that version or newer, or point --data-dir at \
             another directory"
        )),
        _ => Ok(()),
    }
}

/// Records the current layout, once the store has been brought to it.
pub fn stamp(db: &Database) -> Result<(), StoreError> {
    if recorded(db)? == Some(CURRENT) {
        return Ok(());
    }
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(KEY, CURRENT)?;
    txn.commit()?;
    Ok(())
}

/// The layout number the store records, if any.
pub fn recorded(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    if !txn.list_tables()?.any(|t| t.name() == META.name()) {
        return Ok(None);
    }
    Ok(txn.open_table(META)?.get(KEY)?.map(|v| v.value()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn a_new_store_records_the_current_layout_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap().close().await;
        let db = Database::open(dir.path().join("meshes.redb")).unwrap();
        assert_eq!(recorded(&db).unwrap(), Some(CURRENT));
        drop(db);
        Store::open(dir.path()).unwrap().close().await;
    }

    #[tokio::test]
    async fn a_store_from_a_newer_layout_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path()).unwrap().close().await;
        let file = dir.path().join("meshes.redb");
        let db = Database::open(&file).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META).unwrap().insert(KEY, CURRENT + 1).unwrap();
        txn.commit().unwrap();
        drop(db);
        let err = Store::open(dir.path()).map(|_| ()).unwrap_err().to_string();
        let want =
            format!("store layout {}; this build reads layouts up to {CURRENT}", CURRENT + 1);
        assert!(err.contains("written by a newer meshes") && err.contains(&want), "{err}");
        assert!(err.starts_with("cannot open the store at "), "{err}");
        // Refused before anything was written: the number is still the newer one.
        let db = Database::open(&file).unwrap();
        assert_eq!(recorded(&db).unwrap(), Some(CURRENT + 1));
    }
}
