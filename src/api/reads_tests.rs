//! Handler reads leave the async workers free, wait for the gate, and
//! `/metrics` scrapes share one queue-depth scan. No test sleeps: the
//! gate and cache tests run on tokio's paused clock, the worker test on a
//! one-thread runtime a blocked worker could not get past.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::api::auth::mint_jwt;
use crate::api::router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use tower::ServiceExt;

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
const PK: &str = "mesh_pub_reads";
const AK: &str = "mk_reads_0001";
const SECRET: &str = "reads-machine-secret-0001";

fn state(dir: &std::path::Path, reads: Reads) -> AppState {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: {PK} }}\n\
         machine_keys: [ {{ access_key: {AK}, secret: {SECRET} }} ]\n\
         connections:\n  out:\n    type: log\n\
         rules:\n  - {{ id: r1, event: a, connection: out, metadata: {{ action: log }} }}\n"
    );
    crate::api::test_state(dir, text, reads)
}

async fn ingest_one(st: &AppState) -> StatusCode {
    let req = Request::post("/api/v1/events")
        .header("content-type", "application/json")
        .header("x-meshes-publishable-key", PK)
        .body(Body::from(r#"{"event":"a","payload":{"n":1}}"#))
        .unwrap();
    router(st.clone()).oneshot(req).await.unwrap().status()
}

async fn list_events(st: AppState) -> (StatusCode, serde_json::Value) {
    let jwt = mint_jwt(AK, SECRET.as_bytes(), crate::clock::now_ms() / 1000, 60);
    let req = Request::get("/api/v1/events")
        .header("authorization", format!("Bearer {jwt}"))
        .body(Body::empty())
        .unwrap();
    let resp = router(st).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The runtime has one thread: had the read run on it, the ingest could
/// not be answered until the read gave up waiting for its release (which
/// it reports), so it would not have been released by the test.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_read_leaves_the_worker_free_for_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path(), Reads::default());
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reader = st.clone();
    let blocked = tokio::spawn(async move {
        read(&reader, move |_| {
            let _ = started_tx.send(());
            Ok(release_rx.recv_timeout(Duration::from_secs(10)).is_ok())
        })
        .await
    });
    started_rx.await.unwrap();
    assert_eq!(ingest_one(&st).await, StatusCode::CREATED);
    release_tx.send(()).unwrap();
    assert!(blocked.await.unwrap().unwrap(), "the read was not released by the test");
}

/// With every permit held, `GET /events` waits (ingest does not); once
/// one is free, it answers with the event.
#[tokio::test(start_paused = true)]
async fn the_list_route_reads_through_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path(), Reads::new(1));
    let held = st.reads.hold().await;
    let mut list = tokio::spawn(list_events(st.clone()));
    assert_eq!(ingest_one(&st).await, StatusCode::CREATED);
    let waited = tokio::time::timeout(Duration::from_secs(60), &mut list).await;
    assert!(waited.is_err(), "the list answered without a permit");
    drop(held);
    let (status, body) = list.await.unwrap();
    assert_eq!((status, &body["count"]), (StatusCode::OK, &serde_json::json!(1)), "{body}");
}

#[tokio::test]
async fn a_read_that_panics_is_a_500_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let st = state(dir.path(), Reads::new(1));
    let got = read(&st, |_| -> Result<(), StoreError> { panic!("bug in a read") }).await;
    assert!(matches!(got, Err(ApiError::Internal(ref m)) if m.contains("panicked")), "{got:?}");
    // The permit came back with the unwinding: the next read runs.
    assert_eq!(read(&st, |_| Ok(7)).await.unwrap(), 7);
    let got = read(&st, |_| -> Result<(), _> { Err(StoreError::Closed) }).await;
    assert!(matches!(got, Err(ApiError::Unavailable(_))), "{got:?}");
}

fn depth(n: u64) -> Vec<QueueDepth> {
    vec![QueueDepth { conn_key: "ws/out".into(), due: n, later: 0, running: 0 }]
}

/// A scan that counts itself and answers its count as the depth.
fn counted(
    scans: &Arc<AtomicUsize>,
) -> impl FnOnce() -> Result<Vec<QueueDepth>, StoreError> + Send + use<> {
    let scans = scans.clone();
    move || Ok(depth(scans.fetch_add(1, Ordering::SeqCst) as u64 + 1))
}

#[tokio::test(start_paused = true)]
async fn scrapes_share_one_scan_until_it_is_a_second_old() {
    let cache = DepthCache::default();
    let scans = Arc::new(AtomicUsize::new(0));
    assert_eq!(*cache.get(counted(&scans)).await.unwrap(), depth(1));
    tokio::time::advance(DEPTHS_MAX_AGE - Duration::from_millis(1)).await;
    assert_eq!(*cache.get(counted(&scans)).await.unwrap(), depth(1));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(*cache.get(counted(&scans)).await.unwrap(), depth(2));
    assert_eq!(scans.load(Ordering::SeqCst), 2);
    // A failed scan is not kept: the next scrape scans again.
    tokio::time::advance(DEPTHS_MAX_AGE).await;
    assert!(cache.get(|| Err(StoreError::Closed)).await.is_err());
    assert_eq!(*cache.get(counted(&scans)).await.unwrap(), depth(3));
}

/// Scrapes during a scan wait for it and take its result, even when the
/// scrape that started it is dropped mid-scan.
#[tokio::test(start_paused = true)]
async fn concurrent_scrapes_wait_for_the_running_scan() {
    let cache = Arc::new(DepthCache::default());
    let scans = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = {
        let (cache, scans) = (cache.clone(), scans.clone());
        tokio::spawn(async move {
            cache
                .get(move || {
                    let _ = started_tx.send(());
                    release_rx.recv().unwrap();
                    counted(&scans)()
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let others: Vec<_> = (0..3)
        .map(|_| {
            let (cache, scans) = (cache.clone(), scans.clone());
            tokio::spawn(async move { cache.get(counted(&scans)).await })
        })
        .collect();
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    release_tx.send(()).unwrap();
    for other in others {
        assert_eq!(*other.await.unwrap().unwrap(), depth(1));
    }
    assert_eq!(scans.load(Ordering::SeqCst), 1);
}
