//! Customer.io: identify, tracked events with a stable id, manual segments.

use crate::fake::*;
use meshes::adapters::adapter::Adapter;
use meshes::adapters::customer_io::ulid;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;

use wiremock::ResponseTemplate;

// base64("site-42:cio-secret-key")
const BASIC: &str = "Basic c2l0ZS00MjpjaW8tc2VjcmV0LWtleQ==";

fn cio(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!(
        "type: customer_io\nsite_id: site-42\napi_key: ${{CIO_KEY}}\nbase_url: {}\n",
        fake.uri()
    );
    adapter(&yaml, &[("CIO_KEY", "cio-secret-key")])
}

fn api(e: Expect) -> Expect {
    e.header("authorization", BASIC)
}

fn identify(who: &str, body: Value) -> Expect {
    api(Expect::new("PUT", &format!("/api/v1/customers/{who}")).json(body))
}

fn attributes() -> Value {
    json!({"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace", "phone": "+441234"})
}

fn ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({}))
}

#[tokio::test]
async fn track_event_identifies_then_tracks_with_a_stable_id() {
    let fake = Fake::start().await;
    fake.expect(identify("ada@example.com", attributes()), ok()).await;
    let event = json!({
        "name": "signed_up", "data": person(), "timestamp": 1_700_000_000,
        "id": ulid(1_700_000_000_000, "dlv_0193a1b2c3d4e5f6")
    });
    fake.expect(
        api(Expect::new("POST", "/api/v1/customers/ada@example.com/events").json(event)),
        ok(),
    )
    .await;
    let d =
        delivery(json!({"action": "track_event", "event_name_override": "signed_up"}), person());
    assert_delivered(&deliver(&cio(&fake), &d).await);
}

#[tokio::test]
async fn the_payload_id_is_the_identifier_when_present() {
    let fake = Fake::start().await;
    let mut payload = person();
    payload["id"] = json!(42);
    let mut attrs = attributes();
    attrs.as_object_mut().unwrap().remove("id");
    fake.expect(identify("42", attrs), ok()).await;
    let add = api(Expect::new("POST", "/api/v1/segments/7/add_customers")
        .query("id_type", "id")
        .json(json!({"ids": ["42"]})));
    fake.expect(add, ok()).await;
    assert_delivered(
        &deliver(&cio(&fake), &delivery(json!({"action": "add_to_segment", "id": 7}), payload))
            .await,
    );
}

#[tokio::test]
async fn segments_by_email() {
    let fake = Fake::start().await;
    fake.expect(identify("ada@example.com", attributes()), ok()).await;
    let body = json!({"ids": ["ada@example.com"]});
    fake.expect(
        api(Expect::new("POST", "/api/v1/segments/7/add_customers")
            .query("id_type", "email")
            .json(body.clone())),
        ok(),
    )
    .await;
    assert_delivered(
        &deliver(&cio(&fake), &delivery(json!({"action": "add_to_segment", "id": 7}), person()))
            .await,
    );

    let fake = Fake::start().await;
    fake.expect(
        api(Expect::new("POST", "/api/v1/segments/7/remove_customers")
            .query("id_type", "email")
            .json(body)),
        ok(),
    )
    .await;
    assert_delivered(
        &deliver(
            &cio(&fake),
            &delivery(json!({"action": "remove_from_segment", "id": 7}), person()),
        )
        .await,
    );
}

#[tokio::test]
async fn a_failed_identify_stops_the_action() {
    let fake = Fake::start().await;
    let bad = json!({"meta": {"errors": ["invalid attribute: email"]}});
    fake.expect(
        identify("ada@example.com", attributes()),
        ResponseTemplate::new(400).set_body_json(bad),
    )
    .await;
    let r = deliver(&cio(&fake), &delivery(json!({"action": "track_event"}), person())).await;
    assert_permanent(&r, Outcome::RejectedClientError, "invalid attribute");
}

#[tokio::test]
async fn throttling_and_bad_credentials() {
    let fake = Fake::start().await;
    fake.expect(identify("ada@example.com", attributes()), ResponseTemplate::new(429)).await;
    let r = deliver(&cio(&fake), &delivery(json!({"action": "track_event"}), person())).await;
    assert_retry(&r, Outcome::RateLimited, None);

    let fake = Fake::start().await;
    fake.expect(
        identify("ada@example.com", attributes()),
        ResponseTemplate::new(401).set_body_string("Unauthorized"),
    )
    .await;
    let r = deliver(&cio(&fake), &delivery(json!({"action": "track_event"}), person())).await;
    assert_permanent(&r, Outcome::AuthFailed, "Unauthorized");
    assert_no_secret(&r, "cio-secret-key");
}

#[tokio::test]
async fn no_identifier_is_a_mapping_error() {
    let fake = Fake::start().await;
    let r =
        deliver(&cio(&fake), &delivery(json!({"action": "track_event"}), json!({"name": "Ada"})))
            .await;
    assert_permanent(&r, Outcome::MappingError, "neither `id` nor `email`");
}

#[tokio::test]
async fn discover_lists_manual_segments_with_the_app_api_key() {
    let fake = Fake::start().await;
    let yaml = format!(
        "type: customer_io\nsite_id: site-42\napi_key: ${{CIO_KEY}}\napp_api_key: ${{CIO_APP}}\nbase_url: {}\n",
        fake.uri()
    );
    let with_app = adapter(&yaml, &[("CIO_KEY", "cio-secret-key"), ("CIO_APP", "cio-app-key-1")]);
    let body = json!({"segments": [
        {"id": 7, "name": "Beta testers", "type": "manual", "state": "finished"},
        {"id": 8, "name": "Active", "type": "dynamic", "state": "finished"}]});
    let get = Expect::new("GET", "/v1/segments").header("authorization", "Bearer cio-app-key-1");
    fake.expect(get, ResponseTemplate::new(200).set_body_json(body)).await;
    assert_eq!(discover(&with_app).await.unwrap(), rows(&[("segment", "7", "Beta testers")]));
}

#[tokio::test]
async fn discover_without_an_app_key_is_unsupported_and_deliveries_still_build() {
    let fake = Fake::start().await;
    let err = discover(&cio(&fake)).await.unwrap_err();
    assert!(err.contains("app_api_key"), "{err}");
    // An unset App API variable does not stop the connection from building.
    let yaml = format!(
        "type: customer_io\nsite_id: site-42\napi_key: ${{CIO_KEY}}\napp_api_key: ${{CIO_APP}}\nbase_url: {}\n",
        fake.uri()
    );
    let unset = adapter(&yaml, &[("CIO_KEY", "cio-secret-key")]);
    assert!(discover(&unset).await.unwrap_err().contains("CIO_APP"));
}
