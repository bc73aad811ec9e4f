//! The scheduler's scan cursor: entries ahead of it are found without
//! walking the in-flight ones again, and an entry that lands behind it is
//! still found by the next scan from the head. Ticks are given explicit
//! times: `clock::now_ms` is shared by every test in the process, so a
//! paused clock here would not reliably move it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::gateway::runtime;
use crate::store::{EventRecord, NewEvent, NewRuleEvent};

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

fn runtime() -> Runtime {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out:\n    type: log\n\
         rules:\n  - {{ id: r1, event: a, connection: out, metadata: {{ action: log }} }}\n"
    );
    runtime::from_text(text)
}

/// An event for rule `r1` on `out`, due at `due`.
fn event(due: u64) -> (u128, NewEvent) {
    let id = uuid::Uuid::now_v7();
    let record = EventRecord {
        id: id.to_string(),
        workspace: WS.into(),
        event: "a".into(),
        resource: "global".into(),
        resource_id: None,
        created_by: "publishable_key".into(),
        created_at: due,
    };
    let rule = NewRuleEvent {
        rule_id: "r1".into(),
        connection: "out".into(),
        action: "log".into(),
        conn_key: format!("{WS}/out"),
        delivery_id: uuid::Uuid::now_v7().to_string(),
        due,
    };
    let ev = NewEvent {
        record,
        payload: br#"{"n":1}"#.to_vec(),
        idempotency_key: None,
        rules: vec![rule],
        inbox: false,
    };
    (id.as_u128(), ev)
}

/// A store in a temp dir (kept alive by the returned guard) and an engine on it.
fn setup() -> (tempfile::TempDir, Store, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new(store.clone(), Arc::new(ArcSwap::from_pointee(runtime())));
    (dir, store, engine)
}

#[tokio::test]
async fn an_entry_behind_the_cursor_is_found_by_the_next_head_scan() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());

    let (later, ev) = event(now);
    store.writer().ingest(vec![ev], now).await.unwrap();
    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(later, "r1"), "the due entry is dispatched");
    assert!(engine.cursors.contains_key(&format!("{WS}/out")), "and the cursor is after it");
    // Let its attempt finish (recorded by the writer thread).
    while shared.in_flight.contains(later, "r1") {
        tokio::task::yield_now().await;
    }

    // Committed after the cursor passed, with an earlier due time.
    let (behind, ev) = event(now - 10);
    store.writer().ingest(vec![ev], now).await.unwrap();
    engine.tick_at(now).unwrap();
    assert!(!shared.in_flight.contains(behind, "r1"), "a scan from the cursor does not see it");

    engine.tick_at(now + HEAD_SCAN_SHORT_MS).unwrap();
    assert!(shared.in_flight.contains(behind, "r1"), "the head scan finds it");
    store.close().await;
}

#[tokio::test]
async fn under_a_backlog_the_head_is_scanned_at_least_every_second() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());
    // More due entries than the lane has slots (concurrency defaults below
    // 1,000), so a scan from the cursor never comes up short.
    let backlog: Vec<NewEvent> = (0..1_000).map(|_| event(now).1).collect();
    store.writer().ingest(backlog, now).await.unwrap();
    engine.tick_at(now).unwrap();
    let (behind, ev) = event(now - 10);
    store.writer().ingest(vec![ev], now).await.unwrap();

    // Let the dispatched attempts finish, then scan on from the cursor: the
    // backlog is ahead of it, so the scan is full and never comes up short.
    while !shared.in_flight.is_empty() {
        tokio::task::yield_now().await;
    }
    engine.tick_at(now).unwrap();
    assert!(!shared.in_flight.contains(behind, "r1"), "a scan from the cursor does not see it");
    while !shared.in_flight.is_empty() {
        tokio::task::yield_now().await;
    }
    engine.tick_at(now + HEAD_SCAN_EVERY_MS).unwrap();
    assert!(shared.in_flight.contains(behind, "r1"), "the periodic head scan finds it");
    store.close().await;
}
