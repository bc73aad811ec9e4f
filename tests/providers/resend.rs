//! Resend: segments (find-or-create by email) and template emails.

use crate::fake::*;
use crate::spec;
use meshes::adapters::adapter::{Adapter, AttemptResult, QuotaScope};
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const KEY: &str = "re_live_secret_key";
const AUTH: &str = "Bearer re_live_secret_key";
const SEGMENT: &str = "78261eea-8f8b-4381-83c6-79fa7120f1cf";

fn resend(fake: &Fake, extra: &str) -> Arc<dyn Adapter> {
    let yaml =
        format!("type: resend\napi_key: ${{RESEND_API_KEY}}\nbase_url: {}\n{extra}", fake.uri());
    adapter(&yaml, &[("RESEND_API_KEY", KEY)])
}

fn seg_path() -> String {
    format!("/contacts/ada@example.com/segments/{SEGMENT}")
}

fn error(status: u16, name: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"statusCode": status, "name": name, "message": message}))
}

fn segment_action(name: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": name, "id": SEGMENT}), person())
}

#[tokio::test]
async fn add_to_segment_adds_a_known_contact_in_one_call() {
    let fake = Fake::start().await;
    let ok = json!({"object": "contact_segment", "contact_id": "c1", "segment_id": SEGMENT});
    fake.expect(
        Expect::new("POST", &seg_path()).header("authorization", AUTH),
        ResponseTemplate::new(200).set_body_json(ok),
    )
    .await;
    assert_delivered(&deliver(&resend(&fake, ""), &segment_action("add_to_segment")).await);
}

#[tokio::test]
async fn add_to_segment_creates_an_unknown_contact_with_the_segment() {
    let fake = Fake::start().await;
    fake.expect(Expect::new("POST", &seg_path()), error(404, "not_found", "Contact not found"))
        .await;
    let create = Expect::new("POST", "/contacts").header("authorization", AUTH).json(json!({
        "email": "ada@example.com", "segments": [SEGMENT], "first_name": "Ada", "last_name": "Lovelace"
    }));
    fake.expect(
        create,
        ResponseTemplate::new(201).set_body_json(json!({"object": "contact", "id": "c1"})),
    )
    .await;
    assert_delivered(&deliver(&resend(&fake, ""), &segment_action("add_to_segment")).await);
    spec::check(
        &spec::load("resend.yaml"),
        "post",
        "/contacts",
        &fake.bodies("/contacts").await[0],
    );
}

#[tokio::test]
async fn remove_from_segment_treats_not_a_member_as_done() {
    for (status, reply) in [
        (200, json!({"object": "contact_segment"})),
        (404, json!({"name": "not_found", "message": "Contact not found"})),
    ] {
        let fake = Fake::start().await;
        let delete = Expect::new("DELETE", &seg_path()).header("authorization", AUTH);
        fake.expect(delete, ResponseTemplate::new(status).set_body_json(reply)).await;
        assert_delivered(
            &deliver(&resend(&fake, ""), &segment_action("remove_from_segment")).await,
        );
    }
}

fn email_rule(meta: Value) -> meshes::adapters::adapter::Delivery {
    let mut m =
        json!({"action": "send_email_template", "id": "welcome-email", "subject": "Welcome"});
    m.as_object_mut().unwrap().extend(meta.as_object().unwrap().clone());
    delivery(m, person())
}

fn send(body: Value) -> Expect {
    Expect::new("POST", "/emails")
        .header("authorization", AUTH)
        .header("idempotency-key", "dlv_0193a1b2c3d4e5f6")
        .json(body)
}

/// The connection's default sender.
const FROM: &str = "from: Acme <hello@acme.dev>\n";

/// The email of a rule with only its subject, from the connection's sender.
fn email() -> Value {
    json!({"from": "Acme <hello@acme.dev>", "to": ["Ada@Example.com"], "subject": "Welcome",
           "template": {"id": "welcome-email", "variables": variables()}})
}

fn variables() -> Value {
    json!({"EMAIL": "Ada@Example.com", "FIRST_NAME": "Ada", "LAST_NAME": "Lovelace", "NAME": "Ada Lovelace", "PHONE": "+441234"})
}

#[tokio::test]
async fn send_email_template_overrides_subject_and_sender_with_an_idempotency_key() {
    let fake = Fake::start().await;
    let body = json!({
        "to": ["Ada@Example.com"],
        "template": {"id": "welcome-email", "variables": variables()},
        "from": "Acme Billing <billing@acme.dev>",
        "subject": "Welcome, Ada"
    });
    fake.expect(send(body), ResponseTemplate::new(200).set_body_json(json!({"id": "em_1"}))).await;
    let d = email_rule(
        json!({"subject": "Welcome, {{payload.first_name}}", "from": "Acme Billing <billing@acme.dev>"}),
    );
    assert_delivered(&deliver(&resend(&fake, "from: Acme <hello@acme.dev>\n"), &d).await);
    spec::check(&spec::load("resend.yaml"), "post", "/emails", &fake.bodies("/emails").await[0]);
}

#[tokio::test]
async fn the_connection_sender_is_the_default() {
    let fake = Fake::start().await;
    fake.expect(send(email()), ResponseTemplate::new(200).set_body_json(json!({"id": "em_1"})))
        .await;
    // A rule sender that renders blank falls back to the connection's.
    let d = email_rule(json!({"from": "{{payload.sender}}"}));
    assert_delivered(&deliver(&resend(&fake, FROM), &d).await);
    spec::check(&spec::load("resend.yaml"), "post", "/emails", &fake.bodies("/emails").await[0]);
}

/// A published template has its own subject and sender: with neither on
/// the rule nor the connection, neither is sent (and one that renders blank
/// is left out rather than sent empty), so the template's apply.
#[tokio::test]
async fn without_a_sender_or_subject_the_template_own_apply() {
    let fake = Fake::start().await;
    let body = json!({"to": ["Ada@Example.com"],
        "template": {"id": "welcome-email", "variables": variables()}});
    fake.expect(send(body), ResponseTemplate::new(200).set_body_json(json!({"id": "em_1"}))).await;
    let d = email_rule(json!({"subject": "{{payload.nothing}}"}));
    assert_delivered(&deliver(&resend(&fake, ""), &d).await);
}

/// Booleans, lists and objects are not template variables (string or
/// number only): they are sent as text, numbers stay numbers.
#[tokio::test]
async fn mapped_variables_are_strings_or_numbers() {
    let fake = Fake::start().await;
    let mut vars = variables();
    vars.as_object_mut().unwrap().extend(
        json!({"PAID": "true", "SEATS": 3, "TAGS": "[\"a\",\"b\"]", "PLAN": "{\"n\":\"pro\"}"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let mut body = email();
    body["template"]["variables"] = vars;
    fake.expect(send(body), ResponseTemplate::new(200).set_body_json(json!({"id": "em_1"}))).await;
    let mut d = email_rule(json!({}));
    d.payload = json!({"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace",
        "phone": "+441234", "paid": true, "seats": 3, "tags": ["a", "b"], "plan": {"n": "pro"}})
    .into();
    d.mapping = Arc::new(
        serde_saphyr::from_str(
            "PAID: { from: payload.paid }\nSEATS: { from: payload.seats }\n\
             TAGS: { from: payload.tags }\nPLAN: { from: payload.plan }\n",
        )
        .unwrap(),
    );
    assert_delivered(&deliver(&resend(&fake, FROM), &d).await);
    spec::check(&spec::load("resend.yaml"), "post", "/emails", &fake.bodies("/emails").await[0]);
}

#[tokio::test]
async fn an_email_timeout_is_retried_because_the_key_deduplicates() {
    let fake = Fake::start().await;
    let slow = ResponseTemplate::new(200)
        .set_body_json(json!({"id": "em_1"}))
        .set_delay(Duration::from_secs(10));
    fake.expect(send(email()), slow).await;
    let r = resend(&fake, FROM).deliver(&email_rule(json!({})), Duration::from_millis(300)).await;
    assert_retry(&r, Outcome::Timeout, None);
}

#[tokio::test]
async fn idempotency_conflicts_retry_only_while_in_flight() {
    let body = email;
    let fake = Fake::start().await;
    fake.expect(send(body()), error(409, "concurrent_idempotent_requests", "still in progress"))
        .await;
    assert_retry(
        &deliver(&resend(&fake, FROM), &email_rule(json!({}))).await,
        Outcome::RateLimited,
        None,
    );

    let fake = Fake::start().await;
    fake.expect(send(body()), error(409, "invalid_idempotent_request", "same key, different body"))
        .await;
    let r = deliver(&resend(&fake, FROM), &email_rule(json!({}))).await;
    assert_permanent(&r, Outcome::RejectedClientError, "invalid_idempotent_request");
}

#[tokio::test]
async fn rate_limits_use_retry_after_or_the_reset_header() {
    let fake = Fake::start().await;
    let limited =
        error(429, "rate_limit_exceeded", "Too many requests").insert_header("retry-after", "2");
    fake.expect(Expect::new("POST", &seg_path()), limited).await;
    assert_retry(
        &deliver(&resend(&fake, ""), &segment_action("add_to_segment")).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(2)),
    );

    let fake = Fake::start().await;
    let limited = error(429, "rate_limit_exceeded", "Too many requests")
        .insert_header("ratelimit-reset", "1");
    fake.expect(Expect::new("POST", &seg_path()), limited).await;
    assert_retry(
        &deliver(&resend(&fake, ""), &segment_action("add_to_segment")).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(1)),
    );
}

/// The team's daily quota pauses the whole connection until it resets:
/// `retry-after` when Resend sends it, else a day ("wait until 24 hours
/// have passed").
#[tokio::test]
async fn the_daily_quota_defers_the_connection() {
    let day = 86_400_000;
    for (answer, wait) in [
        (
            error(429, "daily_quota_exceeded", "You have reached your daily email sending quota."),
            day,
        ),
        (
            error(429, "daily_quota_exceeded", "quota").insert_header("retry-after", "5400"),
            5_400_000,
        ),
    ] {
        let fake = Fake::start().await;
        fake.expect(Expect::new("POST", &seg_path()), answer).await;
        let before = meshes::clock::now_ms();
        let r = deliver(&resend(&fake, ""), &segment_action("add_to_segment")).await;
        let after = meshes::clock::now_ms();
        let AttemptResult::Deferred { code, until, scope, message } = r.result else {
            panic!("{r:?}")
        };
        assert_eq!((code, scope), (Outcome::RateLimited, QuotaScope::Connection));
        assert!((before + wait..=after + wait).contains(&until), "{until}: not {wait} ms on");
        assert!(message.contains("daily_quota_exceeded") && message.contains("next try at"));
    }
}

#[tokio::test]
async fn validation_errors_are_permanent_with_resends_message() {
    let fake = Fake::start().await;
    let mut body = email();
    body["from"] = json!("nobody");
    fake.expect(send(body), error(422, "invalid_from_address", "Invalid `from` field.")).await;
    let r = deliver(&resend(&fake, ""), &email_rule(json!({"from": "nobody"}))).await;
    assert_permanent(
        &r,
        Outcome::RejectedClientError,
        "invalid_from_address: Invalid `from` field.",
    );

    let fake = Fake::start().await;
    fake.expect(
        send(email()),
        error(403, "validation_error", "The acme.dev domain is not verified."),
    )
    .await;
    let r = deliver(&resend(&fake, FROM), &email_rule(json!({}))).await;
    assert_permanent(&r, Outcome::RejectedClientError, "domain is not verified");
}

#[tokio::test]
async fn restricted_keys_are_auth_failures_without_the_key() {
    let fake = Fake::start().await;
    let refused = error(
        401,
        "restricted_api_key",
        "This API key is restricted to only send emails: re_live_secret_key",
    );
    fake.expect(Expect::new("POST", &seg_path()), refused).await;
    let r = deliver(&resend(&fake, ""), &segment_action("add_to_segment")).await;
    assert_permanent(&r, Outcome::AuthFailed, "restricted_api_key");
    assert_no_secret(&r, KEY);
}

#[test]
fn the_spec_check_rejects_bad_bodies() {
    let spec = spec::load("resend.yaml");
    assert!(!spec::violations(&spec, "post", "/emails", &json!({"to": ["a@b.co"]})).is_empty());
    assert!(!spec::violations(&spec, "post", "/contacts", &json!({"segments": "x"})).is_empty());
}

fn listing(path: &str, after: Option<&str>) -> Expect {
    let e = Expect::new("GET", path).query("limit", "100").header("authorization", AUTH);
    match after {
        Some(id) => e.query("after", id),
        None => e,
    }
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

#[tokio::test]
async fn discover_pages_segments_and_offers_published_templates() {
    let fake = Fake::start().await;
    let seg = |id: &str, name: &str| json!({"id": id, "name": name, "created_at": "2026-01-01"});
    let page1 = json!({"object": "list", "has_more": true, "data": [seg("s1", "Customers"), seg("s2", "Trial")]});
    let page2 = json!({"object": "list", "has_more": false, "data": [seg("s3", "Churned")]});
    fake.expect(listing("/segments", None), ok(page1)).await;
    fake.expect(listing("/segments", Some("s2")), ok(page2)).await;
    let t1 = json!({"object": "list", "has_more": true, "data": [
        {"id": "t1", "name": "Welcome", "alias": "welcome", "status": "published"},
        {"id": "t2", "name": "Draft", "status": "draft"}]});
    let t2 = json!({"object": "list", "has_more": false, "data": [
        {"id": "t3", "name": "Receipt", "status": "published"}]});
    fake.expect(listing("/templates", None), ok(t1)).await;
    fake.expect(listing("/templates", Some("t2")), ok(t2)).await;
    let got = discover(&resend(&fake, "")).await.unwrap();
    assert_eq!(
        got,
        rows(&[
            ("segment", "s1", "Customers"),
            ("segment", "s2", "Trial"),
            ("segment", "s3", "Churned"),
            ("template", "t1", "Welcome"),
            ("template", "t3", "Receipt"),
        ])
    );
}

#[tokio::test]
async fn discover_reports_a_restricted_key_without_the_key() {
    let fake = Fake::start().await;
    let body = json!({"statusCode": 401, "name": "restricted_api_key", "message": "This API key is restricted to only send emails"});
    fake.expect(listing("/segments", None), ResponseTemplate::new(401).set_body_json(body)).await;
    let err = discover(&resend(&fake, "")).await.unwrap_err();
    assert!(err.contains("restricted to only send emails") && err.contains("401"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}
