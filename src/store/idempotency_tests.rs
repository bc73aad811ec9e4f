//! An `Idempotency-Key` answers its repeats for 24 h, whatever the
//! retention: the key keeps the original's record, so pruning the event
//! (a retention shorter than a day) neither lets a repeat in as a second
//! event nor changes what the repeat answers. Keys are per credential and
//! bound to the request body.

use super::migrate::LEGACY_IDEMPOTENCY;
use super::tables::{EVENT_ROWS, IDEMPOTENCY_BY_TIME, IDEMPOTENCY_REPLIES, event_row};
use super::tests::new_event;
use super::writer::{BulkOutcome, BulkReply, BulkRequest, IDEMPOTENCY_TTL_MS, IdempotencyKey};
use super::*;
use redb::TableHandle;

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn bulk_item(mut e: NewEvent, i: usize) -> NewEvent {
    e.idempotency_key = e.idempotency_key.map(|k| k.item(i));
    e
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
    // One event, and a bulk of two: all without deliveries, so finished
    // and prunable at once.
    let mut first = new_event("ws", "order.paid", &[], now, Some("order-42"));
    first.record.resource_id = Some("42".into());
    let item = |i| bulk_item(new_event("ws", "a", &[], now, Some("b")), i);
    let bulk = vec![item(0), item(1)];
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

/// An event sent by `created_by` under `scope` with the body `body`.
fn sent(by: (&str, &str), event: &str, key: &str, body: &[u8], now: u64) -> NewEvent {
    let mut e = new_event("ws", event, &[], now, None);
    e.record.created_by = by.0.into();
    e.idempotency_key = Some(IdempotencyKey::new(key.into(), by.1.into(), body));
    e
}

const PUBLIC: (&str, &str) = ("publishable_key", "pk");
const SERVER: (&str, &str) = ("mk_server", "mk:mk_server");

#[tokio::test]
async fn keys_are_per_credential_and_bound_to_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let now = wall_ms();
    let ingest = |e: NewEvent| async { w.ingest_checked(vec![e], now + 1).await.unwrap() };
    let ignored = ingest(sent(PUBLIC, "t.ignored", "order-42", b"a", now)).await.unwrap();
    // The server's machine key with the same key: its own, real event.
    let paid = ingest(sent(SERVER, "payment.succeeded", "order-42", b"b", now)).await.unwrap();
    assert!(!paid[0].duplicate, "another credential's key must not replay");
    assert_eq!(paid[0].event.event, "payment.succeeded");
    assert_ne!(paid[0].event.id, ignored[0].event.id);
    // Each credential's repeat answers its own original, nothing of the other's.
    let again = ingest(sent(PUBLIC, "t.ignored", "order-42", b"a", now)).await.unwrap();
    assert_eq!((again[0].duplicate, &again[0].event), (true, &ignored[0].event));
    let again = ingest(sent(SERVER, "payment.succeeded", "order-42", b"b", now)).await.unwrap();
    assert_eq!((again[0].duplicate, &again[0].event), (true, &paid[0].event));
    // The same key with another body: refused, nothing written.
    let reused = ingest(sent(SERVER, "payment.succeeded", "order-42", b"c", now)).await;
    let message = reused.unwrap_err().to_string();
    assert!(message.contains("`order-42` was already used with a different request body"));
    assert_eq!(events_in(&store, "ws"), 2);
    // A bulk item never meets a single event's key, whatever the key says.
    let single = ingest(sent(PUBLIC, "a", "k#0", b"x", now)).await.unwrap();
    let bulk = vec![bulk_item(sent(PUBLIC, "a", "k", b"x", now), 0)];
    let item = w.ingest_checked(bulk, now + 1).await.unwrap().unwrap();
    assert!(!item[0].duplicate);
    assert_ne!(item[0].event.id, single[0].event.id);
    store.close().await;
}

/// One item of a bulk request reusing its key with another body refuses the
/// whole request: none of its items is written, even new ones.
#[tokio::test]
async fn a_bulk_conflict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let now = wall_ms();
    let first = vec![bulk_item(sent(PUBLIC, "a", "b", b"[1]", now), 0)];
    w.ingest_checked(first, now).await.unwrap().unwrap();
    let item = |i| bulk_item(sent(PUBLIC, "a", "b", b"[1,2]", now), i);
    let conflict = w.ingest_checked(vec![item(0), item(1)], now).await.unwrap();
    assert_eq!(conflict.unwrap_err().key, "b");
    assert_eq!(events_in(&store, "ws"), 1);
    store.close().await;
}

/// A row written before keys were scoped (no scope, no hash) keeps working
/// for its 24 h, for the credential that created its event only, and a
/// repeat naming another event is a conflict.
#[tokio::test]
async fn a_row_from_before_scoped_keys_answers_its_own_credential_only() {
    let dir = tempfile::tempdir().unwrap();
    let now = wall_ms();
    let original = sent(PUBLIC, "order.paid", "order-42", b"a", now);
    {
        let db = redb::Database::create(dir.path().join("meshes.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut keys = txn.open_table(IDEMPOTENCY_REPLIES).unwrap();
            let record = serde_json::to_vec(&original.record).unwrap();
            keys.insert(("ws", "order-42"), (now, record.as_slice())).unwrap();
            txn.open_table(IDEMPOTENCY_BY_TIME)
                .unwrap()
                .insert((now, "ws", "order-42"), ())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let at = |t: u64, e: NewEvent| async move { w.ingest_checked(vec![e], t).await.unwrap() };
    // Another body from the same credential cannot be compared: it replays.
    let again = at(now + 5, sent(PUBLIC, "order.paid", "order-42", b"other", now)).await.unwrap();
    assert!(again[0].duplicate);
    assert_eq!(again[0].event, original.record);
    let other_event = at(now + 5, sent(PUBLIC, "t.ignored", "order-42", b"a", now)).await;
    assert!(other_event.is_err(), "another event type under the key is a conflict");
    let machine = at(now + 5, sent(SERVER, "order.paid", "order-42", b"a", now)).await.unwrap();
    assert!(!machine[0].duplicate, "another credential never sees the old row");
    let late = now + IDEMPOTENCY_TTL_MS;
    let expired = at(late, sent(PUBLIC, "t.ignored", "order-42", b"a", now)).await.unwrap();
    assert!(!expired[0].duplicate, "the old row expires like any other");
    store.close().await;
}

fn request(key: &str, body: &[u8], reply: &[u8]) -> BulkRequest {
    let reply = BulkReply { status: 207, body: reply.to_vec() };
    BulkRequest {
        workspace: "ws".into(),
        key: IdempotencyKey::new(key.into(), "pk".into(), body),
        reply,
    }
}

/// A bulk request's own row answers its repeats with the reply it kept,
/// storing nothing; the item rows an earlier version wrote alone (no
/// request row) still answer theirs, and still refuse another body.
#[tokio::test]
async fn a_bulk_request_row_answers_as_a_whole_and_old_item_rows_still_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let now = wall_ms();
    let item = |key: &str, body: &[u8], i| bulk_item(sent(PUBLIC, "a", key, body, now), i);
    let first = w.ingest_bulk(vec![item("new", b"[1]", 0)], request("new", b"[1]", b"r"), now);
    let BulkOutcome::Stored(first) = first.await.unwrap().unwrap() else { panic!("a replay") };
    assert!(!first[0].duplicate);
    let again = w.ingest_bulk(vec![item("new", b"[1]", 0)], request("new", b"[1]", b"x"), now);
    let reply = BulkReply { status: 207, body: b"r".to_vec() };
    assert!(matches!(again.await.unwrap().unwrap(), BulkOutcome::Replayed(r) if r == reply));
    // Another body under the key, with no valid item at all: refused.
    let other = w.ingest_bulk(Vec::new(), request("new", b"[2]", b"x"), now).await.unwrap();
    assert_eq!(other.unwrap_err().key, "new");

    // What an earlier version kept: the items' rows alone.
    let old = w.ingest(vec![item("old", b"[1,2]", 0), item("old", b"[1,2]", 1)], now).await;
    let old = old.unwrap();
    let repeat = vec![item("old", b"[1,2]", 0), item("old", b"[1,2]", 1)];
    let again = w.ingest_bulk(repeat, request("old", b"[1,2]", b"x"), now).await.unwrap();
    let BulkOutcome::Stored(again) = again.unwrap() else { panic!("no request row was kept") };
    for (a, o) in again.iter().zip(&old) {
        assert_eq!((a.duplicate, &a.event), (true, &o.event));
    }
    let other = w.ingest_bulk(vec![item("old", b"[3]", 0)], request("old", b"[3]", b"x"), now);
    assert_eq!(other.await.unwrap().unwrap_err().key, "old");
    assert_eq!(events_in(&store, "ws"), 3);
    store.close().await;
}
