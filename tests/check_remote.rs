//! `meshes validate --check-remote`: the real binary against a fake HubSpot
//! on loopback (base URL overridden in the config).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::Command;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "pat-na1-secret-0001";

/// A config whose rules, automation and sequence name `list`, `plan` = `value`.
fn config(fake: &str, list: &str, value: &str) -> String {
    format!(
        r#"version: 1
workspace:
  id: 3f216741-15dd-4e46-b5ac-0077a2640e89
  name: test
  publishable_key: mesh_pub_test_key_0001
connections:
  crm:
    type: hubspot
    access_token: ${{HS_TOKEN}}
    base_url: {fake}
  chat:
    type: slack
    webhook_url: ${{SLACK_URL}}
rules:
  - id: join
    event: user.signup
    connection: crm
    metadata: {{action: add_to_list, id: "{list}"}}
  - id: plan
    event: user.upgraded
    connection: crm
    metadata: {{action: update_property, id: plan, value: {value}}}
  - id: say
    event: user.signup
    connection: chat
    metadata: {{action: send_message, id: C123}}
automations:
  - id: vip
    trigger: contact_created
    actions:
      - notify: {{connection: crm, metadata: {{action: add_to_list, id: 13}}}}
      - enroll: onboarding
sequences:
  onboarding:
    steps:
      - wait: 1d
      - connection: crm
        metadata: {{action: add_to_list, id: {list}}}
"#
    )
}

/// HubSpot with lists 12 and 13 and an enumeration property `plan` (free, pro);
/// every listing must carry the token and is expected exactly once.
async fn hubspot(status: u16) -> MockServer {
    let server = MockServer::start().await;
    let lists = json!({"lists": [
        {"listId": "12", "name": "Customers", "objectTypeId": "0-1", "processingType": "MANUAL"},
        {"listId": "13", "name": "Trial", "objectTypeId": "0-1", "processingType": "MANUAL"}],
        "hasMore": false, "offset": 2});
    let props = json!({"results": [{"name": "plan", "label": "Plan", "type": "enumeration",
        "fieldType": "select", "options": [{"label": "Free", "value": "free"},
        {"label": "Pro", "value": "pro"}]}]});
    let bearer = format!("Bearer {TOKEN}");
    let reply = |body| match status {
        200 => ResponseTemplate::new(200).set_body_json(body),
        _ => ResponseTemplate::new(status)
            .set_body_json(json!({"status": "error", "category": "INVALID_AUTHENTICATION",
                "message": format!("Authentication credentials not found ({TOKEN})")})),
    };
    Mock::given(method("POST"))
        .and(path("/crm/v3/lists/search"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(reply(lists))
        .expect(1)
        .mount(&server)
        .await;
    let props_calls = u64::from(status == 200);
    Mock::given(method("GET"))
        .and(path("/crm/v3/properties/contacts"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(reply(props))
        .expect(props_calls)
        .mount(&server)
        .await;
    server
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `meshes validate --check-remote` on `text` (off the async workers:
/// the fake answers on this test's runtime).
async fn validate(text: String) -> Run {
    validate_with(text, Some(TOKEN)).await
}

async fn validate_with(text: String, hs_token: Option<&'static str>) -> Run {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meshes.yaml"), text).unwrap();
        let mut cmd = Command::cargo_bin("meshes").unwrap();
        cmd.current_dir(dir.path())
            .args(["validate", "--check-remote", "meshes.yaml"])
            .env_remove("HS_TOKEN")
            .env("SLACK_URL", "https://hooks.slack.com/services/T0/B0/x");
        if let Some(token) = hs_token {
            cmd.env("HS_TOKEN", token);
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_id_exists_exits_zero_with_one_listing_per_connection() {
    let fake = hubspot(200).await;
    let run = validate(config(&fake.uri(), "12", "pro")).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");
    // The Slack webhook has no channels to list: a note, not an error.
    assert!(
        run.stderr.contains(
            "note: connection `chat` (slack) not checked: a Slack incoming webhook posts to one fixed channel"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ok: meshes.yaml"), "{}", run.stderr);
    // `expect(1)` on each listing: four references, one discovery.
    fake.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_list_and_property_option_are_located_errors() {
    let fake = hubspot(200).await;
    let run = validate(config(&fake.uri(), "99", "enterprise")).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        "meshes.yaml:18:41: error[remote-missing]: rules[0].metadata.id: list `99` does not exist in the account of connection `crm` (hubspot); it has: `12` (Customers), `13` (Trial)\n\
         meshes.yaml:22:58: error[remote-missing]: rules[1].metadata.value: property `plan` has no option `enterprise` in the account of connection `crm` (hubspot); it has: `free`, `pro`\n\
         meshes.yaml:38:45: error[remote-missing]: sequences.onboarding.steps[1].metadata.id: list `99` does not exist in the account of connection `crm` (hubspot); it has: `12` (Customers), `13` (Trial)\n"
    );
    assert!(run.stderr.contains("invalid: 3 error(s)"), "{}", run.stderr);
    fake.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_listing_names_the_connection_and_never_the_token() {
    let fake = hubspot(401).await;
    let run = validate(config(&fake.uri(), "12", "pro")).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    // The provider echoed the token in its error: redacted.
    assert_eq!(
        run.stdout,
        "meshes.yaml:7:3: error[remote-unavailable]: connections.crm: connection `crm` (hubspot): cannot list the account's data: the provider refused: HTTP 401: Authentication credentials not found ([redacted])\n"
    );
    assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN), "{}", run.stdout);
    fake.verify().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unset_credential_fails_before_any_request() {
    let fake = MockServer::start().await;
    let run = validate_with(config(&fake.uri(), "12", "pro"), None).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("meshes.yaml:9:19: error[unset-env]: connections.crm.access_token:"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("note: --check-remote skipped: the config has errors"));
    assert!(fake.received_requests().await.unwrap().is_empty());
}
