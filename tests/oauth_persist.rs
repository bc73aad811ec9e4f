//! Rotated OAuth refresh tokens survive a restart (`<data-dir>/oauth-tokens.json`)
//! unless the operator configured a new token. A fake HubSpot on loopback
//! rotates the refresh token on every grant; discovery
//! (`GET /api/v1/connections/crm/actions`) is what needs the access token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use std::time::Duration;
use support::*;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(fake: &str, refresh_token: &str) -> String {
    let crm = format!(
        "connections:\n  crm:\n    type: hubspot\n    client_id: cid\n    client_secret: csecret\n    refresh_token: {refresh_token}\n    base_url: {fake}\n"
    );
    let rule = "  - id: crm-list\n    event: user.signup\n    connection: crm\n    metadata: {action: add_to_list, id: \"12\"}\n";
    let base = webhook_config(&[("hook", "http://127.0.0.1:9/h")], "[0s]");
    base.replace("connections:\n", &crm).replace("rules:\n", &format!("rules:\n{rule}"))
}

/// HubSpot whose token endpoint trades exactly `from` (`times` times) for `to`.
async fn rotates(server: &MockServer, from: &str, to: &str, times: u64) {
    rotates_for(server, from, to, times, 1800).await;
}

/// [`rotates`], with access tokens good for `expires_in` seconds.
async fn rotates_for(server: &MockServer, from: &str, to: &str, times: u64, expires_in: u64) {
    let reply =
        json!({"access_token": format!("at-{to}"), "refresh_token": to, "expires_in": expires_in});
    Mock::given(method("POST"))
        .and(path("/oauth/v3/token"))
        .and(body_string_contains(format!("refresh_token={from}&")))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply))
        .expect(times)
        .named(format!("refresh with {from}"))
        .mount(server)
        .await;
}

async fn hubspot() -> MockServer {
    let server = MockServer::start().await;
    let lists = json!({"lists": [{"listId": "12", "name": "Customers", "objectTypeId": "0-1"}], "hasMore": false});
    Mock::given(method("POST"))
        .and(path("/crm/v3/lists/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(lists))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"results": []})))
        .mount(&server)
        .await;
    server
}

/// Lists the connection's actions: one token refresh on a fresh gateway.
async fn discover(gw: &TestGateway) {
    let (status, body) = gw.get("/api/v1/connections/crm/actions").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["records"][0]["id"], "12", "{body}");
}

/// The refresh tokens the token endpoint received, in order.
async fn sent(server: &MockServer) -> Vec<String> {
    let received = server.received_requests().await.unwrap();
    received
        .iter()
        .filter(|r| r.url.path() == "/oauth/v3/token")
        .map(|r| {
            // The test's tokens need no percent-decoding.
            let form = std::str::from_utf8(&r.body).unwrap();
            form.split('&').find_map(|kv| kv.strip_prefix("refresh_token=")).unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_restart_refreshes_with_the_rotated_token() {
    let server = hubspot().await;
    rotates(&server, "configured-1", "rotated-1", 1).await;
    rotates(&server, "rotated-1", "rotated-2", 1).await;
    let mut gw = TestGateway::start(&config(&server.uri(), "configured-1")).await;
    discover(&gw).await;
    gw.stop().await;

    let file = gw.dir.path().join("data").join("oauth-tokens.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    // One chain is written in the shape an earlier meshes reads.
    let entry = &saved["tokens"][format!("{WS}/crm")];
    assert_eq!(entry["refresh_token"], "rotated-1", "{saved}");
    // Only a fingerprint of the configured token is kept.
    assert!(!saved.to_string().contains("configured-1"), "{saved}");

    gw.boot().await;
    discover(&gw).await;
    gw.stop().await;
    // The configured token was revoked by the first rotation: never sent again.
    assert_eq!(sent(&server).await, ["configured-1", "rotated-1"]);
    server.verify().await;
}

#[tokio::test]
async fn a_new_configured_token_wins_over_the_persisted_one() {
    let server = hubspot().await;
    rotates(&server, "configured-1", "rotated-1", 1).await;
    rotates(&server, "configured-2", "rotated-3", 1).await;
    rotates(&server, "rotated-1", "never", 0).await;
    let mut gw = TestGateway::start(&config(&server.uri(), "configured-1")).await;
    discover(&gw).await;
    gw.stop().await;

    // The operator puts a freshly authorized token in the config.
    gw.write_config(&config(&server.uri(), "configured-2"));
    gw.boot().await;
    discover(&gw).await;
    gw.stop().await;
    assert_eq!(sent(&server).await, ["configured-1", "configured-2"]);
    server.verify().await;
}

#[tokio::test]
async fn a_reload_keeps_the_rotated_token() {
    let server = hubspot().await;
    rotates(&server, "configured-1", "rotated-1", 1).await;
    // The new config's adapter shares the old one's cache (same
    // credentials): its access token is still good, nothing is refreshed.
    rotates(&server, "rotated-1", "rotated-2", 0).await;
    let mut gw = TestGateway::start(&config(&server.uri(), "configured-1")).await;
    discover(&gw).await;
    // Any edit rebuilds every adapter (and empties the discovery cache).
    edit_config(&gw, &server.uri()).await;
    discover(&gw).await;
    gw.stop().await;
    assert_eq!(sent(&server).await, ["configured-1"]);
    server.verify().await;
}

/// Runs the `meshes` binary in `cwd` with `args` (off the async workers: the
/// fakes answer on this test's runtime); its exit code, stdout and stderr.
async fn meshes(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let (cwd, args) = (cwd.to_path_buf(), args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    tokio::task::spawn_blocking(move || {
        let out = assert_cmd::Command::cargo_bin("meshes")
            .unwrap()
            .current_dir(cwd)
            .args(args)
            .env_remove("MESHES_DATA_DIR")
            .env_remove("MESHES_CONFIG")
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap(), text(out.stdout), text(out.stderr))
    })
    .await
    .unwrap()
}

const REFUSED: &str = "it uses an OAuth refresh token, and refreshing it here would rotate the refresh token the gateway holds";

#[tokio::test]
async fn the_cli_never_spends_a_refresh_token_it_cannot_keep() {
    let server = hubspot().await;
    Mock::given(method("POST"))
        .and(path("/oauth/v3/token"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("meshes.yaml"), config(&server.uri(), "configured-1")).unwrap();
    // No `./.meshes` here (the default), and a directory that is no gateway's.
    for extra in [&[][..], &["--data-dir", "."][..]] {
        let why = if extra.is_empty() {
            "but the data directory `./.meshes` does not exist"
        } else {
            "but `.` is not a gateway's data directory (it has no meshes.redb)"
        };
        let mut args = vec!["actions", "crm", "--config", "meshes.yaml"];
        args.extend(extra);
        let (code, stdout, stderr) = meshes(dir.path(), &args).await;
        assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
        assert!(
            stderr.starts_with(&format!("error: connection `crm` (type `hubspot`): {REFUSED}")),
            "{stderr}"
        );
        assert!(stderr.contains(why) && stderr.contains("`--data-dir`"), "{stderr}");
        let mut args = vec!["validate", "--check-remote", "meshes.yaml"];
        args.extend(extra);
        let (code, _, stderr) = meshes(dir.path(), &args).await;
        assert_eq!(code, 0, "skipped, not failed: {stderr}");
        let note = format!("note: connection `crm` (hubspot) not checked: {REFUSED}");
        assert!(stderr.contains(&note) && stderr.contains(why), "{stderr}");
    }
    server.verify().await;
}

#[tokio::test]
async fn the_cli_refreshes_through_the_gateway_token_store() {
    let server = hubspot().await;
    // 30 s left is inside the early-refresh margin: every request refreshes
    // (a listing sends two), each token of the chain exactly once.
    let mut chain = vec!["configured-1".to_string()];
    chain.extend((1..=8).map(|i| format!("rotated-{i}")));
    for pair in chain.windows(2) {
        rotates_for(&server, &pair[0], &pair[1], 1, 30).await;
    }
    let mut gw = TestGateway::start(&config(&server.uri(), "configured-1")).await;
    discover(&gw).await;
    // While it runs, `meshes actions` and `validate --check-remote` on its data directory.
    let data = gw.dir.path().join("data").display().to_string();
    let conf = gw.dir.path().join("conf");
    let args = ["actions", "crm", "--config", "meshes.yaml", "--data-dir", &data];
    let (code, stdout, stderr) = meshes(&conf, &args).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("list  12  Customers"), "{stdout}");
    let args = ["validate", "--check-remote", "meshes.yaml", "--data-dir", &data];
    let (code, stdout, stderr) = meshes(&conf, &args).await;
    assert!(code == 0 && !stderr.contains("not checked"), "{stdout}{stderr}");
    // The gateway's next refresh (a reload empties the listing cache) sends what the CLI kept.
    edit_config(&gw, &server.uri()).await;
    discover(&gw).await;
    gw.stop().await;
    assert_eq!(sent(&server).await, chain[..8]);
    server.verify().await;
}

/// A refresh whose caller went away (an API client disconnecting) still
/// runs when the gateway is told to stop: the stop waits for it, so the
/// rotated token is kept (the provider has revoked the configured one).
#[tokio::test]
async fn a_refresh_in_flight_at_shutdown_is_kept() {
    let server = hubspot().await;
    let reply =
        json!({"access_token": "at-rotated-1", "refresh_token": "rotated-1", "expires_in": 1800});
    let slow =
        ResponseTemplate::new(200).set_body_json(reply).set_delay(Duration::from_millis(1500));
    Mock::given(method("POST"))
        .and(path("/oauth/v3/token"))
        .respond_with(slow)
        .expect(1)
        .mount(&server)
        .await;
    let mut gw = TestGateway::start(&config(&server.uri(), "configured-1")).await;
    let asking = tokio::spawn({
        let request = gw.http.get(format!("{}/api/v1/connections/crm/actions", gw.base));
        request.bearer_auth(gw.jwt()).send()
    });
    eventually("the token request", Duration::from_secs(10), || async {
        (!sent(&server).await.is_empty()).then_some(())
    })
    .await;
    asking.abort();
    gw.stop().await;
    let file = gw.dir.path().join("data").join("oauth-tokens.json");
    let saved = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(saved.contains("\"rotated-1\""), "the rotated token was not kept: {saved:?}");
}

/// Rewrites the config with a comment added (any edit rebuilds every adapter
/// and empties the discovery cache) and waits until it serves as version 2.
async fn edit_config(gw: &TestGateway, uri: &str) {
    gw.write_config(&format!("{}# edited\n", config(uri, "configured-1")));
    eventually("the edited config is applied", std::time::Duration::from_secs(10), || async {
        let (status, body) = gw.get("/readyz").await;
        (status == 200 && body["config"]["version"] == 2).then_some(())
    })
    .await;
}
