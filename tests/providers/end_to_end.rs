//! A provider connection through the whole gateway: config → build →
//! lane → adapter → fake provider → event status.

use crate::fake::{Expect, Fake};
use crate::support::{AK, PK, SECRET, TestGateway, WS, eventually};
use serde_json::json;
use std::time::Duration;
use wiremock::ResponseTemplate;

fn config(base_url: &str) -> String {
    format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: test\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: {SECRET}\n\
         connections:\n  email:\n    type: resend\n    api_key: re_e2e_key_123\n    base_url: {base_url}\n    delivery: {{ timeout: 2s }}\n\
         rules:\n  - id: signup-segment\n    event: user.signup\n    connection: email\n    metadata: {{ action: add_to_segment, id: seg-1 }}\n\
         delivery:\n  retry: {{ schedule: [0s, 1s], jitter: 0 }}\n"
    )
}

#[tokio::test]
async fn a_resend_rule_delivers_through_the_gateway() {
    let fake = Fake::start().await;
    let add = Expect::new("POST", "/contacts/ada@example.com/segments/seg-1")
        .header("authorization", "Bearer re_e2e_key_123");
    fake.expect(
        add,
        ResponseTemplate::new(200).set_body_json(json!({"object": "contact_segment"})),
    )
    .await;
    let mut gw = TestGateway::start(&config(&fake.uri())).await;
    let (status, body) = gw
        .post_event(json!({"event": "user.signup", "payload": {"email": "Ada@Example.com"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "completed").await;
    gw.stop().await;
}

/// Resend's daily quota pauses the whole connection: the delivery waits for
/// the reset Resend gives (an hour here, past `max_retry_after` if need
/// be), the try is logged as `rate_limited`, and the connection's circuit
/// reads open in `/metrics` until then.
#[tokio::test]
async fn a_spent_daily_quota_pauses_the_connection_until_it_resets() {
    // The only test of this binary that installs the process-wide recorder.
    let handle = meshes::api::ops::prometheus_builder().install_recorder().unwrap();
    let fake = Fake::start().await;
    let spent = ResponseTemplate::new(429).insert_header("retry-after", "3600").set_body_json(
        json!({"statusCode": 429, "name": "daily_quota_exceeded", "message": "daily quota"}),
    );
    fake.expect(Expect::new("POST", "/contacts/ada@example.com/segments/seg-1"), spent).await;
    // Its own connection name: the gauge is process-wide, and the test above
    // runs an `email` connection of the same workspace at the same time.
    let mut gw = TestGateway::prepare(&config(&fake.uri()).replace("email", "quota"));
    gw.metrics = Some(handle);
    gw.boot().await;
    let before = meshes::clock::now_ms();
    let (status, body) = gw
        .post_event(json!({"event": "user.signup", "payload": {"email": "ada@example.com"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["event"]["id"].as_str().unwrap().to_string();
    let event = gw.wait_status(&id, "retrying").await;
    let rule = &event["rule_events"][0];
    assert_eq!(
        (rule["attempts"].as_u64(), rule["last_outcome"].as_str()),
        (Some(1), Some("rate_limited"))
    );
    let next = meshes::clock::parse_rfc3339(rule["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(next >= before + 3_600_000 && next < before + 3_660_000, "next try {next}: an hour on");
    let open = format!("meshes_circuit_open{{connection=\"{WS}/quota\"}} 1");
    eventually("the circuit to read open", Duration::from_secs(10), || async {
        let text = gw.http.get(format!("{}/metrics", gw.base)).send().await.unwrap();
        let text = text.text().await.unwrap();
        text.contains(&open).then_some(())
    })
    .await;
    gw.stop().await;
}
