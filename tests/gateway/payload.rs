//! What a receiver gets from a payload stored as sent: the compact text a
//! `Value` round trip gave, byte for byte, though attempts hold the payload
//! as text rather than parsed.

use super::support::*;
use super::verify_signature;
use serde_json::Value;

/// Sent with spacing, a trailing zero, an exponent and escapes.
const SENT: &str = "{ \"email\" : \"ada@example.com\",\n  \"a\": 1.0, \"b\" : [1, 2], \
                    \"e\": 1e2, \"s\": \"\\u00e9\\/\", \"o\": { \"k\" : null } }";
/// What every release has delivered for it.
const DELIVERED: &str =
    r#"{"email":"ada@example.com","a":1.0,"b":[1,2],"e":100.0,"s":"é/","o":{"k":null}}"#;

#[test]
fn the_expected_text_is_what_a_value_round_trip_gives() {
    assert_eq!(serde_json::from_str::<Value>(SENT).unwrap().to_string(), DELIVERED);
}

async fn post_raw_text(gw: &TestGateway, event: &str) -> String {
    let resp = gw
        .http
        .post(format!("{}/api/v1/events", gw.base))
        .header("x-meshes-publishable-key", PK)
        .header("content-type", "application/json")
        .body(format!(r#"{{"event": "{event}", "payload": {SENT}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["event"]["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_and_wrapped_webhooks_send_the_compact_payload() {
    let (raw, wrapped) = (Receiver::start().await, Receiver::start().await);
    let config = webhook_config(&[("raw", &raw.url), ("wrapped", &wrapped.url)], "[0s]").replace(
        "  raw:\n    type: webhook\n",
        "  raw:\n    type: webhook\n    payload_format: raw\n",
    );
    let gw = TestGateway::start(&config).await;

    post_raw_text(&gw, "user.raw").await;
    let seen = raw.wait_for(1).await;
    assert_eq!(std::str::from_utf8(&seen[0].body).unwrap(), DELIVERED);
    assert!(verify_signature(&seen[0]), "signature does not verify");

    let id = post_raw_text(&gw, "user.wrapped").await;
    let seen = wrapped.wait_for(1).await;
    let body = std::str::from_utf8(&seen[0].body).unwrap();
    let sent: Value = serde_json::from_str(body).unwrap();
    let expected = format!(
        r#"{{"uuid":"{id}","event":"user.wrapped","resource":"global","resource_id":null,"payload":{DELIVERED},"time_created":{},"time_sent":{}}}"#,
        sent["time_created"], sent["time_sent"]
    );
    assert_eq!(body, expected);
    assert!(verify_signature(&seen[0]), "signature does not verify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_route_shows_the_text_receivers_get() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("raw", &rx.url)], "[0s]")).await;
    let id = post_raw_text(&gw, "user.raw").await;
    let resp = gw
        .http
        .get(format!("{}/api/v1/events/{id}/payload", gw.base))
        .bearer_auth(gw.jwt())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), format!(r#"{{"payload":{DELIVERED}}}"#));
}
