//! Retention: finished events past `delivery.retention` are pruned in the
//! background, following the config in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;

/// Retention follows the config in force: a reload that shortens the window
/// prunes finished events without a restart, and keeps unfinished ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_shortens_retention_prunes_finished_events() {
    let (ok, down) = (Receiver::start().await, Receiver::start().await);
    down.set_default(Reply::Status(503));
    let cfg = webhook_config(&[("ok", &ok.url), ("down", &down.url)], "[0s, 1h]");
    let gw = TestGateway::start(&cfg).await;
    let mut ids = Vec::new();
    for event in ["user.ok", "user.down"] {
        let (status, body) = gw.post_event(json!({"event": event, "payload": {"n": 1}})).await;
        assert_eq!(status, 201);
        ids.push(format!("/api/v1/events/{}", body["event"]["id"].as_str().unwrap()));
    }
    gw.wait_status(&ids[0]["/api/v1/events/".len()..], "completed").await;
    down.wait_for(1).await;
    gw.write_config(&cfg.replace("delivery:\n", "delivery:\n  retention: 1s\n"));
    eventually("the delivered event to be pruned", Duration::from_secs(15), || async {
        (gw.get(&ids[0]).await.0 == 404).then_some(())
    })
    .await;
    // Waiting an hour for its retry: kept whatever its age.
    let (status, body) = gw.get(&ids[1]).await;
    assert_eq!((status, body["event"]["status"].as_str()), (200, Some("retrying")));
}
