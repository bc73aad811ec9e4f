//! A delivery whose record will not decode is failed by its first attempt
//! (`internal_error`) and leaves the due index: it is not read, warned
//! about and dispatched again at every tick.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::model::Outcome;
use crate::gateway::runtime;
use crate::store::{NewEvent, Status};

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

fn runtime() -> Runtime {
    runtime::from_text(format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out:\n    type: log\n\
         rules:\n  - {{ id: r1, event: a, connection: out, metadata: {{ action: log }} }}\n"
    ))
}

fn event(due: u64) -> NewEvent {
    crate::store::tests::new_event(WS, "a", &[("r1", "out")], due, None)
}

#[tokio::test]
async fn an_unreadable_delivery_fails_once_and_is_not_dispatched_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut engine = Engine::new(store.clone(), Arc::new(ArcSwap::from_pointee(runtime())));
    let (shared, now) = (engine.shared(), clock::now_ms());
    let stored = store.writer().ingest(vec![event(now)], now).await.unwrap();
    let id = crate::store::event_key(&stored[0].event.id).unwrap();
    store.garble_for_tests(id, "r1");

    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(id, "r1"), "dispatched once");
    while !shared.in_flight.is_empty() {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.due_len().unwrap(), 0, "out of the due index");
    let rec = &store.event(id).unwrap().unwrap().rule_events[0];
    assert_eq!((rec.status, rec.last_outcome), (Status::Failed, Some(Outcome::InternalError)));
    assert_eq!(rec.attempts, 0, "the destination was never called");
    engine.tick_at(now + 1).unwrap();
    assert!(!shared.in_flight.contains(id, "r1"), "not dispatched again");
    store.close().await;
}
