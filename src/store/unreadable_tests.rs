//! A delivery record that will not decode: its attempt fails it with
//! `internal_error` (once, for good), and pruning steps over it meanwhile
//! rather than stopping at it.

use super::tables::{QUARANTINE, RULE_EVENTS};
use super::tests::new_event;
use super::*;
use crate::config::model::Outcome;

const GARBLED: &[u8] = b"{\"rule_id\":\"r1\",\"connection\":\"hook\",\"status\":";

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Overwrites the record of `(event, rule)` with bytes that will not decode.
fn garble(store: &Store, event: u128, rule: &str) {
    let txn = store.db.get().unwrap().begin_write().unwrap();
    txn.open_table(RULE_EVENTS).unwrap().insert((event, rule), GARBLED).unwrap();
    txn.commit().unwrap();
}

#[tokio::test]
async fn an_unreadable_delivery_fails_once_and_then_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let now = wall_ms();
    let ev = w.ingest(vec![new_event("ws", "a", &[("r1", "hook")], now, None)], now).await;
    let id = event_key(&ev.unwrap()[0].event.id).unwrap();
    garble(&store, id, "r1");
    assert!(matches!(store.attempt_view(id, "r1"), Err(StoreError::Corrupt(_))));

    // Pruning steps over it (it cannot tell whether it is finished).
    let pass = store.prune_all(now + 60_000, now).await.unwrap();
    assert_eq!(pass.removed, 0);

    // The worker's answer to an unreadable read; the writer fails it.
    let key = store.due("ws/hook", u64::MAX, 10, &|_, _| false).unwrap().remove(0);
    let next = Next::Unreadable { reason: "internal_error: test".into() };
    w.attempt(AttemptDone { key, attempt: None, next, at: now }).await.unwrap();
    assert_eq!(store.due_len().unwrap(), 0, "never due again");
    let view = store.event(id).unwrap().unwrap();
    let rec = &view.rule_events[0];
    assert_eq!((rec.status, rec.last_outcome), (Status::Failed, Some(Outcome::InternalError)));
    assert_eq!((rec.connection.as_str(), rec.conn_key.as_str()), ("hook", "ws/hook"));
    assert!(rec.last_error.as_deref().unwrap().contains("could not be read"), "{rec:?}");
    let txn = store.db.get().unwrap().begin_read().unwrap();
    let kept = txn.open_table(QUARANTINE).unwrap().get((id, "r1")).unwrap().unwrap();
    assert_eq!(kept.value(), GARBLED, "the bytes are kept aside");
    drop((kept, txn));

    // Now finished: the next pass prunes the event and the bytes kept aside.
    let pass = store.prune_all(wall_ms() + 60_000, now).await.unwrap();
    assert_eq!(pass.removed, 1);
    let txn = store.db.get().unwrap().begin_read().unwrap();
    assert!(txn.open_table(QUARANTINE).unwrap().get((id, "r1")).unwrap().is_none());
    drop(txn);
    store.close().await;
}

/// The canceling of an orphan meets the unreadable record too: it fails
/// it the same way, rather than failing its batch over and over.
#[tokio::test]
async fn a_cancel_that_meets_an_unreadable_record_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let ev = w.ingest(vec![new_event("ws", "a", &[("r1", "hook")], 10, None)], 10).await;
    let id = event_key(&ev.unwrap()[0].event.id).unwrap();
    garble(&store, id, "r1");
    let key = store.due("ws/hook", u64::MAX, 10, &|_, _| false).unwrap().remove(0);
    let next = Next::Canceled { reason: "rule `r1` was removed from the config".into() };
    w.attempt(AttemptDone { key, attempt: None, next, at: 10 }).await.unwrap();
    assert_eq!(store.due_len().unwrap(), 0);
    let rec = &store.event(id).unwrap().unwrap().rule_events[0];
    assert_eq!((rec.status, rec.last_outcome), (Status::Failed, Some(Outcome::InternalError)));
    store.close().await;
}

impl Store {
    /// Makes the record of `(event, rule)` undecodable (other modules' tests).
    pub(crate) fn garble_for_tests(&self, event: u128, rule: &str) {
        garble(self, event, rule);
    }
}
