//! `/metrics` through its handler, over a real store: attempts running and
//! deliveries held by a breaker are not counted as waiting for a slot, and
//! the end-to-end histogram reaches a day.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::api::reads::Reads;
use crate::delivery::lane::Lane;
use crate::delivery::observe::tests::{recorder, sample};
use crate::store::tests::new_event;
use std::sync::Arc;

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

fn config() -> String {
    format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out: {{ type: log }}\n  held: {{ type: log }}\nrules: []\n"
    )
}

/// A lane of `conn` whose breaker opened at `since` and reopens at `until`.
fn paused(st: &AppState, conn: &str, since: u64, until: u64) {
    let rt = st.shared.runtime.load();
    let settings = rt.connections().find(|c| c.conn_key.ends_with(conn)).unwrap().lane.clone();
    let lane = Arc::new(Lane::new(settings));
    lane.pause_until(until, since);
    st.shared.lanes.track(&format!("{WS}/{conn}"), lane);
}

/// The exposition, checked to be served as Prometheus' text format names it.
async fn scrape(st: &AppState) -> String {
    let (parts, body) = metrics(State(st.clone())).await.into_parts();
    let content_type = parts.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    String::from_utf8(axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn running_and_breaker_held_deliveries_are_not_counted_as_waiting() {
    let (_guard, handle) = recorder();
    let dir = tempfile::tempdir().unwrap();
    let mut st = crate::api::test_state(dir.path(), config(), Reads::default());
    st.metrics = Some(handle);
    let now = crate::clock::now_ms();
    let due = |conn| new_event(WS, "a", &[("r1", conn)], now, None);
    let mut events = vec![due("out"), due("out"), due("out"), due("held"), due("held")];
    events.push(new_event(WS, "a", &[("r1", "out")], now + 3_600_000, None));
    let running = uuid::Uuid::parse_str(&events[0].record.id).unwrap().as_u128();
    st.shared.store.writer().ingest(events, now).await.unwrap();
    st.shared.in_flight.insert(running, "r1");
    // `held` is paused for an hour; `out`'s breaker cooled down a moment
    // ago with nothing sent since (still `Open`, no longer holding).
    paused(&st, "held", now, now + 3_600_000);
    paused(&st, "out", now - 1_000, now - 1);
    let text = scrape(&st).await;
    let gauge = |name: &str, conn: &str| {
        sample(&text, &format!("{name}{{connection=\"{WS}/{conn}\"}}"))
            .unwrap_or_else(|| panic!("no {name} for {conn}:\n{text}"))
    };
    assert_eq!(gauge("meshes_queue_depth", "out"), 2.0, "the running one is not waiting");
    assert_eq!(gauge("meshes_retry_backlog", "out"), 1.0);
    assert_eq!(gauge("meshes_circuit_open", "out"), 0.0, "its cooldown is over");
    assert_eq!(gauge("meshes_queue_depth", "held"), 0.0, "the breaker holds them");
    assert_eq!(gauge("meshes_retry_backlog", "held"), 2.0);
    assert_eq!(gauge("meshes_circuit_open", "held"), 1.0);
    assert_eq!(sample(&text, "meshes_pending_deliveries"), Some(6.0), "running ones are pending");
    assert_eq!(sample(&text, "meshes_deliveries_in_flight"), Some(1.0));
    st.shared.store.clone().close().await;
}

/// The default retry schedule spans about a day: a delivery that waited
/// for it lands in a bucket of its own, not in `+Inf` past 10 minutes.
#[test]
fn ingest_to_delivery_is_bucketed_up_to_a_day() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("meshes_event_to_delivery_seconds").record(5_000.0);
        metrics::histogram!("meshes_delivery_duration_seconds").record(5_000.0);
    });
    let text = handle.render();
    let bucket = |name: &str, le: &str| sample(&text, &format!("{name}_bucket{{le=\"{le}\"}}"));
    let e2e = "meshes_event_to_delivery_seconds";
    assert_eq!([bucket(e2e, "600"), bucket(e2e, "3600")], [Some(0.0), Some(0.0)], "{text}");
    assert_eq!([bucket(e2e, "7200"), bucket(e2e, "86400")], [Some(1.0), Some(1.0)]);
    let attempt = "meshes_delivery_duration_seconds";
    assert_eq!((bucket(attempt, "600"), bucket(attempt, "86400")), (Some(0.0), None));
}

/// A writer thread that died (here a job that panics in it) makes
/// readiness fail, naming it: the process must not look ready.
#[tokio::test]
async fn readiness_fails_naming_a_dead_store_writer() {
    let dir = tempfile::tempdir().unwrap();
    let st = crate::api::test_state(dir.path(), config(), Reads::default());
    let (code, _) = ready(&st).await;
    assert_eq!(code, StatusCode::OK);
    let store = st.shared.store.clone();
    let died = store.writer().run(|_| -> Result<(), crate::store::StoreError> {
        panic!("injected: a panic on the writer thread")
    });
    assert!(matches!(died.await, Err(crate::store::StoreError::Closed)));
    let death = store.writer_death();
    let noticed = tokio::time::timeout(std::time::Duration::from_secs(10), death.wait());
    noticed.await.expect("the death is noticed");
    let (code, body) = ready(&st).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    let error = body["store"]["error"].as_str().unwrap();
    assert!(error.contains("store writer thread stopped after a panic"), "{error}");
}

async fn ready(st: &AppState) -> (StatusCode, serde_json::Value) {
    let (parts, body) = readyz(State(st.clone())).await.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, serde_json::from_slice(&body).unwrap())
}
