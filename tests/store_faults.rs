//! A failing disk: ingest answers 503 and acknowledges nothing; the gateway
//! serves again, with nothing acknowledged lost, once writes succeed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::store::fault::DiskFull;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A gateway with one webhook to `rx` (first attempt at once, then an hour
/// later) whose store is on a disk the test can fill.
async fn on_a_disk_that_can_fill(rx: &Receiver) -> (DiskFull, TestGateway) {
    let disk = DiskFull::default();
    let opener = disk.opener();
    let gw = TestGateway::start_with(&webhook_config(&[("hook", &rx.url)], "[0s, 1h]"), move |o| {
        o.store_opener = Some(opener.clone());
    })
    .await;
    (disk, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_answers_503_then_recovers() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(503)); // keep deliveries pending: they must survive too
    let (disk, gw) = on_a_disk_that_can_fill(&rx).await;
    let (code, before) = gw.post_event(json!({"event": "user.hook", "payload": {"n": 1}})).await;
    assert_eq!(code, 201);

    disk.set(true);
    for n in 0..5 {
        let (code, body) = gw.post_event(json!({"event": "user.hook", "payload": {"n": n}})).await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["error"]["name"], "ServiceUnavailableError", "{body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains("store"), "the message says why: {msg}");
    }
    let (code, _) = gw.get("/readyz").await;
    assert_eq!(code, 503, "readiness reflects the failing store");

    disk.set(false);
    // Readiness itself probes the store, so a pod taken out of service
    // because of the disk comes back without needing traffic.
    eventually("readiness to recover", Duration::from_secs(10), || async {
        (gw.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (code, after) = gw.post_event(json!({"event": "user.hook", "payload": {"n": 99}})).await;
    assert_eq!(code, 201, "{after}");
    // Exactly the two acknowledged events exist.
    let (_, list) = gw.get("/api/v1/events?limit=200").await;
    let ids: Vec<&str> =
        list["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{list}");
    for ev in [&before, &after] {
        assert!(ids.contains(&ev["event"]["id"].as_str().unwrap()));
    }
    let mut gw = gw;
    gw.stop().await;
}

/// The destination accepted the attempt, but its outcome could not be
/// written: the delivery must be made again once the disk is back, with the
/// same `webhook-id` (at least once), and the event then ends `completed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_outcome_cannot_be_written_is_made_again_with_the_same_id() {
    let rx = Receiver::start().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    rx.script([Reply::Gate(gate.clone())]);
    let (disk, gw) = on_a_disk_that_can_fill(&rx).await;
    let (code, body) = gw.post_event(json!({"event": "user.hook", "payload": {"n": 1}})).await;
    assert_eq!(code, 201, "{body}");
    // The attempt is at the destination; the disk fills before it answers,
    // and stays full until the write of its outcome has been refused.
    let first = rx.wait_for(1).await[0].headers["webhook-id"].clone();
    disk.set(true);
    gate.notify_one();
    eventually("the outcome's write to fail", Duration::from_secs(10), || async {
        (disk.refused() > 0).then_some(())
    })
    .await;

    disk.set(false);
    let seen = rx.wait_for(2).await;
    assert!(seen.iter().all(|s| s.headers["webhook-id"] == first), "one delivery id throughout");
    let detail = gw.wait_status(body["event"]["id"].as_str().unwrap(), "completed").await;
    assert_eq!(detail["status"], "completed", "{detail}");
    let mut gw = gw;
    gw.stop().await;
}

/// A panic on the store's writer thread (redb meeting a damaged page) stops
/// the gateway by itself, so that `serve` exits and a supervisor restarts
/// it; every acknowledged event is there at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_store_writer_stops_the_gateway_and_loses_nothing() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(503)); // keep the delivery pending
    let (disk, mut gw) = on_a_disk_that_can_fill(&rx).await;
    let (code, before) = gw.post_event(json!({"event": "user.hook", "payload": {"n": 1}})).await;
    assert_eq!(code, 201, "{before}");

    disk.panic_next_write();
    let (code, body) = gw.post_event(json!({"event": "user.hook", "payload": {"n": 2}})).await;
    assert_eq!(code, 503, "{body}");
    let gateway = gw.gateway.take().unwrap();
    let stopping = tokio::time::timeout(Duration::from_secs(10), gateway.shutdown.cancelled());
    stopping.await.expect("the gateway stops by itself");
    gateway.join().await;

    gw.boot().await;
    let id = before["event"]["id"].as_str().unwrap();
    let (code, detail) = gw.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(code, 200, "{detail}");
    let (_, list) = gw.get("/api/v1/events?limit=200").await;
    assert_eq!(list["records"].as_array().unwrap().len(), 1, "only the acknowledged one: {list}");
    gw.stop().await;
}
