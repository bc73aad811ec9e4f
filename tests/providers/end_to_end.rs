//! A provider connection through the whole gateway: config → build →
//! lane → adapter → fake provider → event status.

use crate::fake::{Expect, Fake};
use crate::support::{AK, PK, SECRET, TestGateway, WS};
use serde_json::json;
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
