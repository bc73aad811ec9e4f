//! `GET /api/v1/connections/{id}/actions`: live action data through the
//! gateway (a fake Mailchimp on loopback), its auth, errors and TTL cache.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::config::duration::Duration as Window;
use meshes::config::model::RateLimit;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MC_KEY: &str = "keysecret-us6";

fn config(fake: &str) -> String {
    let mc = format!(
        "connections:\n  mc:\n    type: mailchimp\n    api_key: {MC_KEY}\n    base_url: {fake}/3.0\n  broken:\n    type: mailchimp\n    api_key: {MC_KEY}\n    base_url: {fake}/down/3.0\n"
    );
    webhook_config(&[("hook", "http://127.0.0.1:9/h")], "[0s]").replace("connections:\n", &mc)
}

async fn fake() -> MockServer {
    let server = MockServer::start().await;
    let lists = json!({"lists": [{"id": "a1", "name": "Newsletter"}], "total_items": 1});
    Mock::given(method("GET"))
        .and(path("/3.0/lists"))
        .respond_with(ResponseTemplate::new(200).set_body_json(lists))
        .mount(&server)
        .await;
    let failure = json!({"title": "Internal Server Error", "status": 500, "detail": format!("key {MC_KEY} broke")});
    Mock::given(method("GET"))
        .and(path("/down/3.0/lists"))
        .respond_with(ResponseTemplate::new(500).set_body_json(failure))
        .mount(&server)
        .await;
    server
}

async fn hits(server: &MockServer, p: &str) -> usize {
    server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn lists_options_and_serves_repeats_from_the_cache() {
    let server = fake().await;
    let mut gw = TestGateway::start(&config(&server.uri())).await;
    let (status, body) = gw.get("/api/v1/connections/mc/actions").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"connection": "mc", "type": "mailchimp", "count": 1, "records": [
            {"kind": "list", "id": "a1", "name": "Newsletter", "extra": null}]})
    );
    // Within the TTL (5 min) the second answer comes from memory.
    let (again, same) = gw.get("/api/v1/connections/mc/actions").await;
    assert_eq!((again, &same), (200, &body));
    assert_eq!(hits(&server, "/3.0/lists").await, 1);
    gw.stop().await;
}

#[tokio::test]
async fn errors_are_clear_and_never_leak_the_key() {
    let server = fake().await;
    let mut gw = TestGateway::start(&config(&server.uri())).await;
    let resp = gw
        .http
        .get(format!("{}/api/v1/connections/mc/actions", gw.base))
        .header("x-meshes-publishable-key", PK)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    let (status, body) = gw.get("/api/v1/connections/nope/actions").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"].as_str().unwrap().contains("`nope`"), "{body}");

    let (status, body) = gw.get("/api/v1/connections/hook/actions").await;
    assert_eq!(status, 501, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("`hook`") && message.contains("webhook"), "{body}");

    for _ in 0..2 {
        let (status, body) = gw.get("/api/v1/connections/broken/actions").await;
        assert_eq!(status, 502, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("HTTP 500") && message.contains("broke"), "{body}");
        assert!(!body.to_string().contains(MC_KEY), "{body}");
        assert_eq!(body["error"]["name"], Value::from("BadGatewayError"));
    }
    // Failures are not cached: each call asked the provider again.
    assert_eq!(hits(&server, "/down/3.0/lists").await, 2);
    gw.stop().await;
}

/// A cold cache under 30 concurrent requests costs the provider one listing,
/// and that listing's request is a turn of the connection's budget (the
/// one its deliveries spend), not a request on top of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_listing_paid_from_the_budget() {
    let server = MockServer::start().await;
    let lists = json!({"lists": [{"id": "a1", "name": "Newsletter"}], "total_items": 1});
    // Slow enough that every request arrives while the listing runs.
    let slow =
        ResponseTemplate::new(200).set_body_json(lists).set_delay(Duration::from_millis(500));
    Mock::given(method("GET")).and(path("/3.0/lists")).respond_with(slow).mount(&server).await;
    let limited = "    delivery: { rate_limit: { requests: 1, per: 1h } }\n    base_url: ";
    let mut gw =
        TestGateway::start(&config(&server.uri()).replacen("    base_url: ", limited, 1)).await;
    let calls = (0..30).map(|_| gw.get("/api/v1/connections/mc/actions"));
    let answers = futures::future::join_all(calls).await;
    for (status, body) in &answers {
        assert_eq!((*status, &body["count"]), (200, &json!(1)), "{body}");
    }
    assert_eq!(hits(&server, "/3.0/lists").await, 1);
    let limit = RateLimit { requests: 1, per: Window::from_millis(3_600_000) };
    let shared = &gw.gateway.as_ref().unwrap().shared;
    let budget = shared.budgets.get(&format!("{WS}/mc"), Some(&limit)).unwrap();
    let wait = budget.wait_now();
    let hour = Duration::from_secs(3_600);
    assert!(wait > hour - Duration::from_secs(60) && wait <= hour, "the turn was spent: {wait:?}");
    gw.stop().await;
}

/// `meshes actions`: the same listing from the command line, the key read
/// from the environment, as a table or JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_a_table_or_json_with_env_secrets() {
    let server = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("meshes.yaml");
    let text = config(&server.uri()).replacen(MC_KEY, "${MC_API_KEY}", 1);
    std::fs::write(&file, text).unwrap();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            assert_cmd::Command::cargo_bin("meshes")
                .unwrap()
                .args(args)
                .env("MC_API_KEY", MC_KEY)
                .env_remove("MESHES_CONFIG")
                .output()
                .unwrap()
        })
    };
    let path = file.display().to_string();
    let table =
        run(vec!["actions".into(), "mc".into(), "--config".into(), path.clone()]).await.unwrap();
    assert_eq!(table.status.code(), Some(0), "{}", String::from_utf8_lossy(&table.stderr));
    assert_eq!(String::from_utf8_lossy(&table.stdout), "KIND  ID  NAME\nlist  a1  Newsletter\n");
    let args = vec!["actions", "mc", "--config", &path, "--format", "json"];
    let json = run(args.into_iter().map(String::from).collect()).await.unwrap();
    let body: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!((body["type"].as_str(), body["count"].as_u64()), (Some("mailchimp"), Some(1)));
    let broken =
        run(vec!["actions".into(), "broken".into(), "--config".into(), path]).await.unwrap();
    let err = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(2), "{err}");
    assert!(err.contains("HTTP 500") && !err.contains(MC_KEY), "{err}");
}

/// Two workspaces with a connection `mc`: the name alone is ambiguous (an
/// error naming both), `--workspace` picks one by id or by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_asks_which_workspace_when_a_name_is_ambiguous() {
    const OTHER: &str = "0b5e1f4c-7d1a-4c3e-9a51-2f6d8e9b7c10";
    let server = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.yaml");
    std::fs::write(&first, config(&server.uri())).unwrap();
    let second = format!(
        "version: 1\nworkspace: {{ id: {OTHER}, name: other, publishable_key: mesh_pub_other }}\n\
         connections:\n  mc: {{ type: mailchimp, api_key: {MC_KEY}, base_url: {}/down/3.0 }}\n\
         rules:\n  - {{ id: r, event: user.signup, connection: mc, metadata: {{ action: add_to_list, id: a1 }} }}\n",
        server.uri()
    );
    std::fs::write(dir.path().join("b.yaml"), second).unwrap();
    let config_dir = dir.path().display().to_string();
    let run = |extra: &[&str]| {
        let mut args =
            vec!["actions".to_string(), "mc".into(), "--config".into(), config_dir.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        tokio::task::spawn_blocking(move || {
            assert_cmd::Command::cargo_bin("meshes")
                .unwrap()
                .args(args)
                .env_remove("MESHES_CONFIG")
                .output()
                .unwrap()
        })
    };
    let ambiguous = run(&[]).await.unwrap();
    let err = String::from_utf8_lossy(&ambiguous.stderr);
    assert_eq!(ambiguous.status.code(), Some(2), "{err}");
    assert!(err.contains("`mc` exists in 2 workspaces"), "{err}");
    assert!(
        err.contains(&format!("`{WS}` (test)")) && err.contains(&format!("`{OTHER}` (other)")),
        "{err}"
    );
    assert!(err.contains("--workspace"), "{err}");
    assert!(ambiguous.stdout.is_empty());
    let by_name = run(&["--workspace", "test"]).await.unwrap();
    let err = String::from_utf8_lossy(&by_name.stderr);
    assert_eq!(by_name.status.code(), Some(0), "{err}");
    assert_eq!(String::from_utf8_lossy(&by_name.stdout), "KIND  ID  NAME\nlist  a1  Newsletter\n");
    // The other workspace's `mc` is the one whose provider fails.
    let by_id = run(&["--workspace", OTHER]).await.unwrap();
    let err = String::from_utf8_lossy(&by_id.stderr);
    assert_eq!(by_id.status.code(), Some(2), "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert_eq!(hits(&server, "/3.0/lists").await, 1);
    let unknown = run(&["--workspace", "nope"]).await.unwrap();
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{err}");
    assert!(err.contains("no workspace `nope`") && err.contains("(other)"), "{err}");
}
