//! An attempt that panics (a bug in meshes) releases its delivery: it is
//! recorded as `internal_error` and retried by the connection's policy,
//! then failed, instead of staying in flight (`processing`) forever.

#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
use crate::adapters::adapter::{Adapter, AttemptReport, BoxFuture, Delivery};
use crate::config::model::Outcome;
use crate::gateway::runtime;
use crate::store::{NewEvent, Status};

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

#[derive(Debug)]
struct Panics;

impl Adapter for Panics {
    fn deliver<'a>(&'a self, _: &'a Delivery, _: Duration) -> BoxFuture<'a, AttemptReport> {
        Box::pin(async { panic!("an adapter bug") })
    }
}

/// Connection `out` (two tries, a minute apart; its breaker opens on one
/// unhealthy answer, so a panic counted as one would show) whose adapter panics.
fn runtime() -> Runtime {
    let mut rt = runtime::from_text(format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out:\n    type: log\n    delivery: {{ retry: {{ schedule: [0s, 1m], jitter: 0 }}, circuit_breaker: {{ failure_threshold: 1 }} }}\n\
         rules:\n  - {{ id: r1, event: a, connection: out, metadata: {{ action: log }} }}\n"
    ));
    let ws = Arc::get_mut(rt.workspaces.get_mut(WS).unwrap()).unwrap();
    Arc::get_mut(ws.connections.get_mut("out").unwrap()).unwrap().adapter = Arc::new(Panics);
    rt
}

fn event(due: u64) -> NewEvent {
    crate::store::tests::new_event(WS, "a", &[("r1", "out")], due, None)
}

/// Waits for the running attempt to be released; a pinned one fails the
/// test instead of hanging it.
async fn released(shared: &Shared) {
    let wait = async {
        while !shared.in_flight.is_empty() {
            tokio::task::yield_now().await;
        }
    };
    assert!(tokio::time::timeout(Duration::from_secs(20), wait).await.is_ok(), "still in flight");
}

#[tokio::test]
async fn a_panicking_attempt_releases_its_delivery_and_is_retried_then_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut engine = Engine::new(store.clone(), Arc::new(ArcSwap::from_pointee(runtime())));
    let (shared, now) = (engine.shared(), clock::now_ms());
    let stored = store.writer().ingest(vec![event(now)], now).await.unwrap();
    let id = crate::store::event_key(&stored[0].event.id).unwrap();

    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(id, "r1"), "dispatched");
    released(&shared).await;
    let lane = engine.lanes[&format!("{WS}/out")].clone();
    assert_eq!(lane.capacity(now), 8, "its request slot is free again");
    assert_eq!(lane.free_recording(), lane.recording_slots(), "and its recording slot");
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.status, rec.attempts), (Status::Retrying, 1));
    assert_eq!(rec.last_outcome, Some(Outcome::InternalError));
    let due = rec.next_attempt_at.unwrap();
    assert!(due >= now + 60_000, "the schedule's second delay, not at once: {due}");
    let error = rec.last_error.unwrap();
    assert!(error.starts_with("internal_error: ") && !error.contains("adapter bug"), "{error}");
    assert!(!lane.is_open(), "a bug of ours is not the destination's failure");

    engine.tick_at(due).unwrap();
    assert!(shared.in_flight.contains(id, "r1"), "dispatched again");
    released(&shared).await;
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.status, rec.attempts), (Status::Failed, 2), "the schedule is spent");
    assert_eq!(rec.last_outcome, Some(Outcome::InternalError));
    assert_eq!(store.due_len().unwrap(), 0);
    store.close().await;
}
