//! Restarts and config reloads while deliveries are pending: nothing is
//! lost, removed rules are canceled (once their config has been in force
//! for the cancellation grace, so a file cut short by a slow write loses
//! nothing) and rotated secrets apply.

use super::support::*;
use super::{signed_with, verify_signature};
use meshes::clock::parse_rfc3339;
use meshes::delivery::route::CANCEL_GRACE;
use serde_json::json;
use std::time::Duration;

/// Like `wait_status`, for a change that waits out the cancellation grace.
async fn wait_status_past_grace(gw: &TestGateway, id: &str, want: &str) -> serde_json::Value {
    let path = format!("/api/v1/events/{id}");
    let limit = CANCEL_GRACE + Duration::from_secs(10);
    eventually(&format!("event {id} reaching `{want}`"), limit, || async {
        let (_, body) = gw.get(&path).await;
        (body["event"]["status"] == want).then(|| body["event"].clone())
    })
    .await
}

/// Waits until config `version` serves; its load time (Unix ms).
async fn serving(gw: &TestGateway, version: u64) -> u64 {
    eventually(&format!("config version {version}"), Duration::from_secs(10), || async {
        let (_, r) = gw.get("/readyz").await;
        let loaded = r["config"]["loaded_at"].as_str().and_then(parse_rfc3339);
        (r["config"]["version"] == version).then_some(loaded).flatten()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_deliveries_survive_a_restart() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(503));
    let mut gw = TestGateway::start(&webhook_config(
        &[("signup", &rx.url)],
        "[0s, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms, 300ms]",
    ))
    .await;
    let (_, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "retrying").await;
    gw.stop().await;
    rx.set_default(Reply::Status(200));
    gw.boot().await;
    gw.wait_status(&id, "completed").await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_good_configs_and_rejects_bad_ones() {
    let rx = Receiver::start().await;
    let cfg = webhook_config(&[("signup", &rx.url)], "[0s]");
    let gw = TestGateway::start(&cfg).await;
    let (_, ready) = gw.get("/readyz").await;
    assert_eq!(ready["config"]["version"], 1);
    gw.write_config("version: 1\nworkspace: [this is not valid\n");
    let ready = eventually("the bad config reported", Duration::from_secs(10), || async {
        let (_, r) = gw.get("/readyz").await;
        (!r["last_reload_error"].is_null()).then_some(r)
    })
    .await;
    assert_eq!(ready["config"]["version"], 1, "the old config keeps serving");
    assert!(
        ready["last_reload_error"]["errors"][0].as_str().unwrap().contains("meshes.yaml:"),
        "{ready}"
    );
    let (code, _) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    assert_eq!(code, 201);
    rx.wait_for(1).await;
    // A good change (a second rule) applies and clears the error.
    let two = cfg.replace("rules:\n", "rules:\n  - id: second\n    event: user.other\n    connection: signup\n    metadata: { action: send_webhook }\n");
    gw.write_config(&two);
    let r = eventually("the good config applied", Duration::from_secs(10), || async {
        let (_, r) = gw.get("/readyz").await;
        (r["config"]["version"] == 2).then_some(r)
    })
    .await;
    assert!(r["last_reload_error"].is_null(), "{r}");
    gw.post_event(json!({"event": "user.other", "payload": {"n": 2}})).await;
    rx.wait_for(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_cancels_removed_rules_and_rotates_credentials() {
    let (rx_a, rx_b) = (Receiver::start().await, Receiver::start().await);
    rx_a.set_default(Reply::Status(503));
    rx_b.set_default(Reply::Status(503));
    let cfg = webhook_config(
        &[("a", &rx_a.url), ("b", &rx_b.url)],
        "[0s, 200ms, 200ms, 200ms, 200ms, 200ms, 200ms, 200ms, 200ms, 200ms, 200ms, 200ms]",
    );
    let gw = TestGateway::start(&cfg).await;
    let (_, a) = gw.post_event(json!({"event": "user.a", "payload": {"n": 1}})).await;
    let (_, b) = gw.post_event(json!({"event": "user.b", "payload": {"n": 2}})).await;
    let (a, b) = (a["event"]["id"].as_str().unwrap(), b["event"]["id"].as_str().unwrap());
    gw.wait_status(a, "retrying").await;
    gw.wait_status(b, "retrying").await;
    assert!(rx_a.seen().iter().all(verify_signature));
    // Drop rule b; give connection a a new signing secret; a recovers.
    const NEW: &str = "whsec_YW5vdGhlci1zZWNyZXQtZm9yLXRlc3Rz";
    let start = cfg.find("  - id: b-rule").unwrap();
    let end = start + cfg[start..].find("delivery:\n  retry").unwrap();
    let next = format!("{}{}", &cfg[..start], &cfg[end..]).replacen(WHSEC, NEW, 1);
    gw.write_config(&next);
    let loaded_at = serving(&gw, 2).await;
    rx_a.set_default(Reply::Status(200));
    let b_view = wait_status_past_grace(&gw, b, "canceled").await;
    let rule = &b_view["rule_events"][0];
    assert!(rule["last_error"].as_str().unwrap().contains("b-rule"), "{b_view}");
    let canceled_at = rule["completed_at"].as_str().and_then(parse_rfc3339).unwrap();
    let grace = CANCEL_GRACE.as_millis() as u64;
    assert!(canceled_at >= loaded_at + grace, "canceled within the grace: {b_view}");
    // Queued again, it would sit pending under a queue nothing reads.
    let (code, resp) = gw.post(&format!("/api/v1/events/{b}/rules/b-rule/retry")).await;
    assert_eq!(code, 409, "{resp}");
    assert!(resp["message"].as_str().unwrap().contains("was removed from the config"), "{resp}");
    gw.wait_status(a, "completed").await;
    let last = rx_a.seen().last().cloned().unwrap();
    assert!(signed_with(&last, NEW), "the attempt after the reload used the new secret");
    assert!(!signed_with(&last, WHSEC));
}

/// The audit: the config file written in two steps further apart than the
/// debounce. The first part is a valid config without `b-rule` and is
/// applied; the whole file follows. The pending delivery of `b-rule` used to
/// be canceled by the first reload, for good; it is now delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_cut_short_by_a_slow_write_cancels_nothing() {
    let (rx_a, rx_b) = (Receiver::start().await, Receiver::start().await);
    rx_b.set_default(Reply::Status(503));
    let cfg = webhook_config(&[("a", &rx_a.url), ("b", &rx_b.url)], "[0s, 200ms, 200ms, 200ms]");
    let gw = TestGateway::start(&cfg).await;
    let (_, b) = gw.post_event(json!({"event": "user.b", "payload": {"n": 1}})).await;
    let b = b["event"]["id"].as_str().unwrap();
    gw.wait_status(b, "retrying").await;
    // Cut on the line boundary before `b-rule` (the delivery settings went too).
    gw.write_config(&cfg[..cfg.find("  - id: b-rule").unwrap()]);
    serving(&gw, 2).await;
    gw.write_config(&cfg);
    serving(&gw, 3).await;
    rx_b.set_default(Reply::Status(200));
    let view = wait_status_past_grace(&gw, b, "completed").await;
    let rule = &view["rule_events"][0];
    assert_eq!((&rule["status"], &rule["last_http_status"]), (&json!("completed"), &json!(200)));
}

/// A rule moved to another connection, the old one deleted: its pending
/// delivery follows it (it used to be canceled as "connection removed"),
/// and a manual retry queues it under the new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_moved_to_another_connection_takes_its_deliveries_along() {
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    old.set_default(Reply::Status(503));
    let cfg = webhook_config(&[("a", &old.url)], "[0s, 1h]");
    let gw = TestGateway::start(&cfg).await;
    let (_, body) = gw.post_event(json!({"event": "user.a", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "retrying").await;

    let next = cfg
        .replace(
            &format!("  a:\n    type: webhook\n    url: {}", old.url),
            &format!("  b:\n    type: webhook\n    url: {}", new.url),
        )
        .replace("connection: a\n", "connection: b\n");
    assert!(next.contains("connection: b\n") && !next.contains("  a:\n"), "{next}");
    gw.write_config(&next);
    let path = format!("/api/v1/events/{id}");
    let moved = eventually("the delivery on connection b", Duration::from_secs(10), || async {
        let (_, body) = gw.get(&path).await;
        let rule = body["event"]["rule_events"][0].clone();
        (rule["connection"] == "b").then_some(rule)
    })
    .await;
    assert_eq!(moved["status"], "retrying", "{moved}");
    assert!(moved["last_error"].as_str().unwrap().contains("503"), "{moved}");

    let (code, resp) = gw.post(&format!("/api/v1/events/{id}/rules/a-rule/retry")).await;
    assert_eq!(code, 202, "{resp}");
    gw.wait_status(&id, "completed").await;
    assert_eq!((old.seen().len(), new.seen().len()), (1, 1));
}

/// A gateway serving a directory: `conf/meshes.yaml` (workspace `other`) and
/// `conf/b.yaml` (the test workspace, whose one rule posts to `url`), which
/// is a link to `tgt/b.yaml` when `linked`.
async fn two_workspace_directory(url: &str, linked: bool) -> (TestGateway, std::path::PathBuf) {
    let other = webhook_config(&[("other", url)], "[0s]")
        .replace(WS, "6c1a0b1e-7f0d-4a51-9d43-2b8f5e0c9a10")
        .replace(PK, "mesh_pub_other_key_0002")
        .replace(AK, "mk_other_0002");
    let mut gw = TestGateway::prepare(&other);
    let conf = gw.dir.path().join("conf");
    std::fs::write(conf.join("b.yaml"), webhook_config(&[("b", url)], "[0s, 1h]")).unwrap();
    if linked {
        let tgt = gw.dir.path().join("tgt");
        std::fs::create_dir(&tgt).unwrap();
        std::fs::rename(conf.join("b.yaml"), tgt.join("b.yaml")).unwrap();
        std::os::unix::fs::symlink("../tgt/b.yaml", conf.join("b.yaml")).unwrap();
    }
    let dir = conf.clone();
    gw.tune = Some(std::sync::Arc::new(move |o: &mut meshes::gateway::GatewayOptions| {
        o.config = vec![dir.clone()];
    }));
    gw.boot().await;
    assert_eq!(gw.get("/readyz").await.1["config"]["workspaces"], 2);
    (gw, conf.join("b.yaml"))
}

/// Waits for a rejected reload whose first error contains `needle`.
async fn rejected_with(gw: &TestGateway, needle: &str) -> serde_json::Value {
    eventually(&format!("a reload rejected with `{needle}`"), Duration::from_secs(10), || async {
        let (_, r) = gw.get("/readyz").await;
        let first = r["last_reload_error"]["errors"][0].as_str().unwrap_or_default();
        first.contains(needle).then_some(r)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_config_in_a_directory_is_rejected_and_its_deliveries_kept() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(503));
    let (gw, b) = two_workspace_directory(&rx.url, false).await;
    let (_, body) = gw.post_event(json!({"event": "user.b", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "retrying").await;

    std::fs::write(&b, "").unwrap();
    let r = rejected_with(&gw, &format!("{}:1:1: error[empty-file]", b.display())).await;
    assert_eq!(
        (r["config"]["version"].as_u64(), r["config"]["workspaces"].as_u64()),
        (Some(1), Some(2))
    );
    // YAML that is not a meshes config, in a file that served a workspace:
    // a broken edit too, not a removal.
    std::fs::write(&b, "on: push\njobs: {}\n").unwrap();
    let r = rejected_with(&gw, &format!("{}: no longer a meshes config", b.display())).await;
    assert_eq!(r["config"]["workspaces"], 2, "{r}");
    let (_, view) = gw.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(view["event"]["status"], "retrying", "the delivery is still pending: {view}");

    // Deleting the file is how a workspace is removed (its events are then
    // out of reach of its machine key, so the test stops at /readyz).
    std::fs::remove_file(&b).unwrap();
    eventually("the workspace removed", Duration::from_secs(10), || async {
        let (_, r) = gw.get("/readyz").await;
        (r["config"]["workspaces"] == 1 && r["last_reload_error"].is_null()).then_some(())
    })
    .await;
}

/// A config edited while the store opens, before the watcher starts, is
/// applied once the watcher runs (it used to wait for the next edit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_edited_during_startup_is_applied() {
    let rx = Receiver::start().await;
    let cfg = webhook_config(&[("a", &rx.url)], "[0s]");
    let mut gw = TestGateway::prepare(&cfg);
    let (path, next) = (config_path(gw.dir.path()), with_second_rule(&cfg, "a"));
    gw.tune = Some(std::sync::Arc::new(move |o: &mut meshes::gateway::GatewayOptions| {
        let (path, next) = (path.clone(), next.clone());
        o.store_opener = Some(opening_after(move || std::fs::write(&path, &next).unwrap()));
    }));
    gw.boot().await;
    config_version(&gw, 2).await;
    gw.post_event(json!({"event": "user.other", "payload": {"n": 1}})).await;
    rx.wait_for(1).await;
}

/// `conf/b.yaml -> ../tgt/b.yaml`, then `tgt` moved away: the link still
/// names a file that serves a workspace, so the reload is rejected and the
/// workspace and its pending delivery stay (it used to count as deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_link_in_a_config_directory_is_rejected_and_its_deliveries_kept() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(503));
    let (gw, b) = two_workspace_directory(&rx.url, true).await;
    let (_, body) = gw.post_event(json!({"event": "user.b", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "retrying").await;

    std::fs::rename(gw.dir.path().join("tgt"), gw.dir.path().join("tgt.moving")).unwrap();
    // Rewritten as is, so that a reload reads the directory whether or not
    // the move itself was seen.
    let main = b.with_file_name("meshes.yaml");
    std::fs::write(&main, std::fs::read(&main).unwrap()).unwrap();
    let r = rejected_with(&gw, &format!("{}:1:1: error[unreadable-file]", b.display())).await;
    assert_eq!(r["config"]["workspaces"], 2, "{r}");
    let (_, view) = gw.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(view["event"]["status"], "retrying", "the delivery is still pending: {view}");
}
