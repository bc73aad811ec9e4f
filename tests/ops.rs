//! Operations: Prometheus metrics, JSON logs and graceful shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_ingest_deliveries_queues_and_reloads() {
    // This test binary owns the process-wide recorder.
    let handle = meshes::api::ops::prometheus_builder().install_recorder().unwrap();
    let (ok, down) = (Receiver::start().await, Receiver::start().await);
    down.set_default(Reply::Status(503));
    let cfg = webhook_config(&[("ok", &ok.url), ("down", &down.url)], "[0s, 1h]");
    // A condition that fails on every event (an int plus a string).
    let picky = "  - { id: picky, event: user.cel, connection: ok, when: \"payload.n + 'x' == 1\", metadata: { action: send_webhook } }\n";
    let cfg = cfg.replace("rules:\n", &format!("rules:\n{picky}"));
    let mut gw = TestGateway::prepare(&cfg);
    gw.metrics = Some(handle);
    gw.boot().await;
    for event in ["user.ok", "user.ok", "user.down"] {
        assert_eq!(gw.post_event(json!({"event": event, "payload": {"n": 1}})).await.0, 201);
    }
    // Replays are neither ingested events nor condition errors again.
    let one = r#"{"event":"user.cel","payload":{"n":1}}"#;
    for (path, body) in
        [("/api/v1/events", one.to_string()), ("/api/v1/events/bulk", format!("[{one}]"))]
    {
        for _ in 0..2 {
            let resp = gw
                .http
                .post(format!("{}{path}", gw.base))
                .header("x-meshes-publishable-key", PK)
                .header("idempotency-key", "once")
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 201);
        }
    }
    ok.wait_for(2).await;
    down.wait_for(1).await;
    gw.write_config("version: 1\nworkspace: [broken\n");
    let text = eventually("the metrics to show it all", Duration::from_secs(10), || async {
        let text = gw.http.get(format!("{}/metrics", gw.base)).send().await.unwrap();
        let text = text.text().await.unwrap();
        // The queue gauges can be a second stale (scrapes share a scan):
        // wait for the failed delivery to show in the retry backlog.
        let done = text.contains(r#"meshes_config_reloads_total{result="rejected"} 1"#)
            && text.contains(&format!("meshes_retry_backlog{{connection=\"{WS}/down\"}} 1"));
        done.then_some(text)
    })
    .await;
    // The check when the watcher starts found the files as loaded: no reload.
    assert!(!text.contains(r#"meshes_config_reloads_total{result="unchanged"}"#), "{text}");
    let conn = |name: &str| format!("connection=\"{WS}/{name}\"");
    let line = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}:\n{text}"))
    };
    assert!(line("meshes_events_ingested_total").ends_with(" 5"));
    assert!(
        line(&format!("meshes_rule_condition_errors_total{{workspace=\"{WS}\",rule=\"picky\"}}"))
            .ends_with(" 2")
    );
    assert!(
        line(&format!("meshes_deliveries_total{{{},outcome=\"delivered\"}}", conn("ok")))
            .ends_with(" 2")
    );
    assert!(
        line(&format!(
            "meshes_deliveries_total{{{},outcome=\"rejected_server_error\"}}",
            conn("down")
        ))
        .ends_with(" 1")
    );
    // The failed delivery waits an hour: retry backlog, not due queue.
    assert!(line(&format!("meshes_retry_backlog{{{}}}", conn("down"))).ends_with(" 1"));
    assert!(line(&format!("meshes_queue_depth{{{}}}", conn("down"))).ends_with(" 0"));
    assert!(line(&format!("meshes_retry_backlog{{{}}}", conn("ok"))).ends_with(" 0"));
    assert!(line("meshes_pending_deliveries").ends_with(" 1"));
    // One 503 is far from the breaker's threshold: neither connection is paused.
    for name in ["ok", "down"] {
        assert!(line(&format!("meshes_circuit_open{{{}}}", conn(name))).ends_with(" 0"));
    }
    // Latencies are real histograms with buckets.
    for h in [
        "meshes_ingest_duration_seconds",
        "meshes_delivery_duration_seconds",
        "meshes_event_to_delivery_seconds",
    ] {
        assert!(text.contains(&format!("{h}_bucket{{")), "{h} has no buckets:\n{text}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_exits_and_leaves_the_rest_pending() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Hang);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(config_path(dir.path()), webhook_config(&[("hook", &rx.url)], "[0s, 100ms]"))
        .unwrap();
    let mut server =
        Server::spawn(dir.path(), &["--log-format", "json", "--shutdown-timeout", "1"]);
    let http = reqwest::Client::new();
    let sent = http
        .post(format!("{}/api/v1/events", server.base))
        .header("x-meshes-publishable-key", PK)
        .json(&json!({"event": "user.hook", "payload": {"email": "ada@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    let id = sent.json::<Value>().await.unwrap()["event"]["id"].as_str().unwrap().to_string();
    rx.wait_for(1).await; // the attempt is in flight and hangs
    let term = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = eventually("exit after SIGTERM", Duration::from_secs(15), || {
        std::future::ready(server.child.try_wait().unwrap())
    })
    .await;
    assert!(status.success(), "exit status {status:?}");
    // Every log line is one JSON object with a level and a message.
    let lines = server.lines.lock().unwrap().clone();
    assert!(lines.len() >= 2, "{lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
    }
    assert!(lines.iter().any(|l| l.contains("shutting down")), "{lines:?}");
    // The interrupted delivery is still on disk and goes out after a restart.
    rx.set_default(Reply::Status(200));
    let mut server = Server::spawn(dir.path(), &[]);
    let seen = rx.wait_for(2).await;
    let ids: std::collections::HashSet<_> =
        seen.iter().map(|s| s.headers["webhook-id"].to_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 1, "the redelivery keeps its delivery id");
    let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(body["uuid"], id.as_str());
    assert_eq!(body["payload"]["email"], "ada@example.com");
    server.kill();
}
