//! An event whose deliveries all finished, past the retention cutoff, but
//! still in the automation inbox is not pruned: its `event` automations
//! have yet to run, and the automation worker skips an event that is gone.

#![allow(clippy::unwrap_used)]

use super::tests::new_event;
use super::*;

#[tokio::test]
async fn an_event_automations_have_not_seen_is_kept_until_they_have() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let waiting = NewEvent { inbox: true, ..new_event("ws", "a", &[], 100, None) };
    let waiting = event_key(&w.ingest(vec![waiting], 100).await.unwrap()[0].event.id).unwrap();
    let plain = new_event("ws", "a", &[], 100, None);
    let plain = event_key(&w.ingest(vec![plain], 100).await.unwrap()[0].event.id).unwrap();
    assert_eq!(store.inbox(10).unwrap(), [waiting]);

    let later =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64
            + 60_000;
    let step = PruneStep::new(later, later, 100);
    // The writer's own check, not only the read ahead of it.
    assert_eq!(
        w.prune(step.clone()).await.unwrap().removed,
        1,
        "only the event without automations"
    );
    assert!(store.event(plain).unwrap().is_none());
    assert!(store.event(waiting).unwrap().is_some(), "kept for its automations");
    assert!(!store.read_ahead(&step).unwrap().deletes, "the read ahead agrees: no writer step");

    w.run(move |t| t.inbox_done(waiting)).await.unwrap();
    let pass = store.prune_all(later, later).await.unwrap();
    assert_eq!(pass.removed, 1, "seen by automations: it goes");
    assert!(store.event(waiting).unwrap().is_none());
    store.close().await;
}
