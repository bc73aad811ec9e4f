//! What a prune step asks before deleting a finished, old event: whether
//! an attempt of it is running, and, for a whole pass, the policy in force
//! at each step (a reload mid-pass).

#![allow(clippy::unwrap_used)]

use super::tables::QUARANTINE;
use super::tests::new_event;
use super::writer::PRUNE_STEP;
use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// `n` finished events (no deliveries) of workspace `ws`; their ids.
async fn finished(store: &Store, ws: &str, n: usize) -> Vec<u128> {
    let events = (0..n).map(|_| new_event(ws, "a", &[], 10, None)).collect();
    let stored = store.writer().ingest(events, 10).await.unwrap();
    stored.iter().map(|s| event_key(&s.event.id).unwrap()).collect()
}

fn exists(store: &Store, id: u128) -> bool {
    store.event(id).unwrap().is_some()
}

#[tokio::test]
async fn an_event_with_an_attempt_running_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids = finished(&store, "ws", 2).await;
    let busy = ids[0];
    let later = wall_ms() + 60_000;
    let running = Some(Running(Arc::new(move |event| event == busy)));
    let step = PruneStep { running, ..PruneStep::new(later, later, 100) };
    assert_eq!(store.writer().prune(step.clone()).await.unwrap().removed, 1);
    assert!(exists(&store, busy) && !exists(&store, ids[1]));
    assert!(!store.read_ahead(&step).unwrap().deletes, "the read ahead agrees");
    assert_eq!(store.prune_all(later, later).await.unwrap().removed, 1, "once it is over");
    store.close().await;
}

#[tokio::test]
async fn a_pass_asks_before_every_step_so_a_lengthened_window_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids = finished(&store, "ws", PRUNE_STEP * 2 + 10).await;
    let later = wall_ms() + 60_000;
    let asked = AtomicUsize::new(0);
    // The first step runs under a short window; a reload then restores a
    // long one (nothing is old enough) before the second.
    let pass = store
        .prune_all_with(|| {
            let before = if asked.fetch_add(1, Ordering::SeqCst) == 0 { later } else { 0 };
            PruneStep::new(before, later, PRUNE_STEP)
        })
        .await
        .unwrap();
    assert_eq!(pass.removed, PRUNE_STEP, "only the first step deleted");
    assert!(asked.load(Ordering::SeqCst) >= 2, "asked again before the next step");
    assert_eq!(ids.iter().filter(|id| exists(&store, **id)).count(), PRUNE_STEP + 10);
    store.close().await;
}

#[tokio::test]
async fn bytes_set_aside_go_with_their_event_even_after_a_retry_replaced_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids = finished(&store, "ws", 1).await;
    // As if a delivery of it had been set aside, then retried and
    // delivered: its record no longer says internal_error.
    let txn = store.db.get().unwrap().begin_write().unwrap();
    txn.open_table(QUARANTINE).unwrap().insert((ids[0], "r1"), b"garbled".as_slice()).unwrap();
    txn.commit().unwrap();
    let later = wall_ms() + 60_000;
    assert_eq!(store.prune_all(later, later).await.unwrap().removed, 1);
    let txn = store.db.get().unwrap().begin_read().unwrap();
    assert!(txn.open_table(QUARANTINE).unwrap().get((ids[0], "r1")).unwrap().is_none());
    drop(txn);
    store.close().await;
}

#[tokio::test]
async fn attempts_read_with_their_event_say_when_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ids = finished(&store, "ws", 1).await;
    assert_eq!(store.attempts_of_event(ids[0], "r1").unwrap().map(|a| a.len()), Some(0));
    let later = wall_ms() + 60_000;
    store.prune_all(later, later).await.unwrap();
    assert!(store.attempts_of_event(ids[0], "r1").unwrap().is_none());
    store.close().await;
}
