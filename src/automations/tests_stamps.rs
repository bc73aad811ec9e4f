//! The suppression list read while an unsubscribe is being written: a page
//! "as of" a time never changes once it has been read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contact::Upsert;
use super::service;
use super::tests::{WS, harness};
use crate::delivery::engine::Engine;
use arc_swap::ArcSwap;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppression_page_does_not_shift_when_a_pending_unsubscribe_commits() {
    let h = harness("");
    let c = h.upsert("ada@example.com", Upsert::default(), 1_000).await;
    let id = uuid::Uuid::parse_str(&c.id).unwrap().as_u128();
    let engine = Engine::new(h.store.clone(), Arc::new(ArcSwap::new(h.rt.clone())));
    let shared = engine.shared();
    // Hold the writer so the unsubscribe waits, stamped but not committed.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let store = h.store.clone();
    let hold = tokio::spawn(async move { store.writer().run(move |_| Ok(held.recv().ok())).await });
    let unsubscribe = tokio::spawn({
        let shared = shared.clone();
        async move { service::unsubscribe(&shared, WS, id, "unsubscribed".into()).await }
    });
    let stamps = h.store.stamps.clone();
    while stamps.settled(u64::MAX) == u64::MAX {
        tokio::task::yield_now().await;
    }
    // A read now, "as of" as late as asked: it stops before the stamp.
    let as_of = stamps.settled(u64::MAX);
    let before = h.store.suppressed(WS, as_of, None, 10).unwrap();
    assert!(before.records.is_empty());
    release.send(()).unwrap();
    hold.await.unwrap().unwrap();
    let done = unsubscribe.await.unwrap().unwrap();
    let stamp = done.unsubscribed_at.unwrap();
    assert_eq!(as_of, stamp - 1, "the read stopped just before the pending stamp");
    assert_eq!(stamps.settled(u64::MAX), u64::MAX, "released once committed");
    let again = h.store.suppressed(WS, as_of, None, 10).unwrap();
    assert!(again.records.is_empty(), "the same page, read again after the commit");
    let later = h.store.suppressed(WS, stamp, None, 10).unwrap();
    assert_eq!(later.records.len(), 1, "a page as of the stamp has it");
    h.store.close().await;
}
