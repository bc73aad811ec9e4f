//! An `Idempotency-Key` answers its repeats for 24 h, whatever the
//! retention: the key keeps the original's record, so pruning the event
//! (a retention shorter than a day) neither lets a repeat in as a second
//! event nor changes what the repeat answers.

use super::migrate::LEGACY_IDEMPOTENCY;
use super::tables::{EVENT_ROWS, event_row};
use super::tests::new_event;
use super::writer::IDEMPOTENCY_TTL_MS;
use super::*;
use redb::TableHandle;

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn events_in(store: &Store, ws: &str) -> usize {
    store.list(ws, &ListFilter::default(), None, 100, &|_, _| false).unwrap().records.len()
}

/// Prunes every finished event (ids are minted from the wall clock) while
/// keys accepted at `at` are still live.
async fn prune_events(store: &Store, at: u64) {
    let pass = store.prune_all(wall_ms() + 1_000, at + 1).await.unwrap();
    assert!(pass.removed > 0, "the events were pruned");
}

#[tokio::test]
async fn a_repeat_after_its_event_was_pruned_answers_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let now = wall_ms();
    // One event, and a bulk of two (keys `<key>#<index>`): all without
    // deliveries, so finished and prunable at once.
    let mut first = new_event("ws", "order.paid", &[], now, Some("order-42"));
    first.record.resource_id = Some("42".into());
    let bulk = vec![
        new_event("ws", "a", &[], now, Some("b#0")),
        new_event("ws", "a", &[], now, Some("b#1")),
    ];
    let original = w.ingest(vec![first.clone()], now).await.unwrap().remove(0);
    let originals = w.ingest(bulk.clone(), now).await.unwrap();
    prune_events(&store, now).await;
    assert_eq!(events_in(&store, "ws"), 0);

    let later = now + IDEMPOTENCY_TTL_MS - 1;
    let again = w.ingest(vec![first.clone()], later).await.unwrap().remove(0);
    assert!(again.duplicate);
    assert_eq!(again.event, original.event, "the same record: the same 201 body");
    let bulk_again = w.ingest(bulk, later).await.unwrap();
    for (a, o) in bulk_again.iter().zip(&originals) {
        assert!(a.duplicate);
        assert_eq!(a.event, o.event);
    }
    assert_eq!(events_in(&store, "ws"), 0, "no repeat created an event");

    // Keys are per workspace: another one's repeat is its own event.
    let other = w.ingest(vec![new_event("ws2", "a", &[], now, Some("order-42"))], later).await;
    let other = other.unwrap().remove(0);
    assert!(!other.duplicate);
    assert_eq!(other.event.workspace, "ws2");
    // After 24 h the key is free again.
    let late = now + IDEMPOTENCY_TTL_MS;
    let fresh = w.ingest(vec![first], late).await.unwrap().remove(0);
    assert!(!fresh.duplicate);
    store.close().await;
}

#[tokio::test]
async fn a_key_written_before_replies_were_kept_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let now = wall_ms();
    let kept = new_event("ws", "a", &[], now, None);
    let kept_id = event_key(&kept.record.id).unwrap();
    {
        let db = redb::Database::create(dir.path().join("meshes.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut rows = txn.open_table(EVENT_ROWS).unwrap();
            let row = event_row(|o| serde_json::to_writer(o, &kept.record).unwrap(), b"{}");
            rows.insert(kept_id, row.as_slice()).unwrap();
            let mut keys = txn.open_table(LEGACY_IDEMPOTENCY).unwrap();
            keys.insert(("ws", "k1"), (kept_id, now)).unwrap();
            // Its event already pruned: this key did nothing any more.
            keys.insert(("ws", "k2"), (u128::from(now) << 80, now)).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    prune_events(&store, now).await;
    let again = w.ingest(vec![new_event("ws", "a", &[], now, Some("k1"))], now + 5).await.unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].event, kept.record);
    let gone = w.ingest(vec![new_event("ws", "a", &[], now, Some("k2"))], now + 5).await.unwrap();
    assert!(!gone[0].duplicate);
    let txn = store.db.get().unwrap().begin_read().unwrap();
    let legacy = txn.list_tables().unwrap().any(|t| t.name() == "idempotency");
    assert!(!legacy, "the old table is gone");
    drop(txn);
    store.close().await;
}
