//! Zoom: server-to-server OAuth, meeting and webinar registrants.

use crate::fake::*;
use meshes::adapters::adapter::{Adapter, AttemptResult, QuotaScope};
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

fn zoom(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!(
        "type: zoom\naccount_id: acc-9\nclient_id: zcid\nclient_secret: ${{ZOOM_SECRET}}\nbase_url: {}/v2\n",
        fake.uri()
    );
    adapter(&yaml, &[("ZOOM_SECRET", "zoom-client-secret")])
}

fn token_call() -> Expect {
    // base64("zcid:zoom-client-secret")
    Expect::new("POST", "/oauth/token")
        .header("authorization", "Basic emNpZDp6b29tLWNsaWVudC1zZWNyZXQ=")
        .form("grant_type=account_credentials&account_id=acc-9")
}

fn token(access: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"access_token": access, "token_type": "bearer", "expires_in": 3600, "scope": "meeting:write"}))
}

fn register(kind: &str, token: &str, body: Value) -> Expect {
    Expect::new("POST", &format!("/v2/{kind}/85746065432/registrants"))
        .header("authorization", &format!("Bearer {token}"))
        .json(body)
}

fn registrant() -> Value {
    json!({"last_name": "Lovelace", "phone": "+441234", "email": "Ada@Example.com", "first_name": "Ada"})
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(
        json!({"id": 85_746_065_432_i64, "registrant_id": "r1", "join_url": "https://zoom.us/w/1"}),
    )
}

fn rule(action: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": action, "id": 85_746_065_432_i64}), person())
}

#[tokio::test]
async fn registers_for_meetings_and_webinars_with_one_token() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("zt-1")).await;
    let mut meeting = registrant();
    meeting["auto_approve"] = json!(true);
    fake.expect(register("meetings", "zt-1", meeting), created()).await;
    fake.expect(register("webinars", "zt-1", registrant()), created()).await;
    let z = zoom(&fake);
    assert_delivered(&deliver(&z, &rule("add_meeting_registrant")).await);
    assert_delivered(&deliver(&z, &rule("add_webinar_registrant")).await);
}

#[tokio::test]
async fn an_expired_token_is_fetched_again_once() {
    let fake = Fake::start().await;
    wiremock::Mock::given(token_call())
        .respond_with(token("old"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&fake.server)
        .await;
    wiremock::Mock::given(token_call())
        .respond_with(token("new"))
        .expect(1)
        .mount(&fake.server)
        .await;
    let expired = json!({"code": 124, "message": "Invalid access token."});
    fake.expect(
        register("webinars", "old", registrant()),
        ResponseTemplate::new(401).set_body_json(expired),
    )
    .await;
    fake.expect(register("webinars", "new", registrant()), created()).await;
    assert_delivered(&deliver(&zoom(&fake), &rule("add_webinar_registrant")).await);
}

#[tokio::test]
async fn the_per_registrant_daily_limit_waits_until_midnight_utc() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("zt-1")).await;
    let daily = json!({"code": 429, "message": "You have exceeded the daily rate limit (3) of Add webinar registrant API requests permitted for (ada@example.com) this particular registrant. You may resume these requests at GMT 00:00:00."});
    fake.expect(
        register("webinars", "zt-1", registrant()),
        ResponseTemplate::new(429).set_body_json(daily),
    )
    .await;
    let before = meshes::clock::now_ms();
    let r = deliver(&zoom(&fake), &rule("add_webinar_registrant")).await;
    let after = meshes::clock::now_ms();
    let AttemptResult::Deferred { code, until, scope, message } = r.result else { panic!("{r:?}") };
    assert_eq!(scope, QuotaScope::Delivery, "one registrant's limit: the others go on");
    assert_eq!((code, r.http_status), (Outcome::RateLimited, Some(429)));
    // The next 00:00 UTC, a minute late for clock skew: not an hour from
    // now, whatever the connection's `max_retry_after`.
    let midnight = |now: u64| (now - 60_000) / 86_400_000 * 86_400_000 + 86_400_000 + 60_000;
    assert!(until == midnight(before) || until == midnight(after), "{until}");
    assert!(meshes::clock::rfc3339(until).ends_with("T00:01:00.000Z"), "{until}");
    assert!(message.contains("daily rate limit") && message.contains("00:00 UTC"), "{message}");
}

#[tokio::test]
async fn other_429s_follow_the_retry_after_header() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("zt-1")).await;
    let busy = json!({"code": 429, "message": "You have reached the maximum per-second rate limit for this API. Try again later."});
    fake.expect(
        register("webinars", "zt-1", registrant()),
        ResponseTemplate::new(429).insert_header("retry-after", "7200").set_body_json(busy),
    )
    .await;
    let r = deliver(&zoom(&fake), &rule("add_webinar_registrant")).await;
    // Capped later, by the engine (`max_retry_after`), like any provider's hint.
    assert_retry(&r, Outcome::RateLimited, Some(Duration::from_secs(7_200)));
}

#[tokio::test]
async fn registration_disabled_is_permanent_with_zooms_message() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("zt-1")).await;
    let mut meeting = registrant();
    meeting["auto_approve"] = json!(true);
    let off =
        json!({"code": 3000, "message": "Registration has not been enabled for this meeting"});
    fake.expect(
        register("meetings", "zt-1", meeting),
        ResponseTemplate::new(400).set_body_json(off),
    )
    .await;
    let r = deliver(&zoom(&fake), &rule("add_meeting_registrant")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "Registration has not been enabled");
}

#[tokio::test]
async fn bad_app_credentials_are_a_permanent_auth_failure() {
    let fake = Fake::start().await;
    let refused =
        json!({"reason": "Invalid client_id or client_secret", "error": "invalid_client"});
    fake.expect(token_call(), ResponseTemplate::new(401).set_body_json(refused)).await;
    let r = deliver(&zoom(&fake), &rule("add_meeting_registrant")).await;
    assert_permanent(&r, Outcome::AuthFailed, "the OAuth token refresh failed");
    assert_no_secret(&r, "zoom-client-secret");
}

#[tokio::test]
async fn no_first_name_is_a_mapping_error() {
    let fake = Fake::start().await;
    let d =
        delivery(json!({"action": "add_meeting_registrant", "id": 1}), json!({"email": "a@b.co"}));
    assert_permanent(&deliver(&zoom(&fake), &d).await, Outcome::MappingError, "first name");
}

fn listing(what: &str, token: Option<&str>) -> Expect {
    let mut e = Expect::new("GET", &format!("/v2/users/me/{what}"))
        .header("authorization", "Bearer zoom-token-1")
        .query("page_size", "300");
    if what == "meetings" {
        e = e.query("type", "upcoming");
    }
    match token {
        Some(t) => e.query("next_page_token", t),
        None => e,
    }
}

#[tokio::test]
async fn discover_pages_meetings_by_token_and_skips_webinars_without_the_plan() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("zoom-token-1")).await;
    let p1 = json!({"meetings": [{"id": 85_746_065_432_i64, "topic": "Onboarding", "start_time": "2026-12-01T10:00:00Z"}],
        "next_page_token": "np2", "page_size": 300, "total_records": 2});
    let p2 = json!({"meetings": [{"id": 85_746_065_433_i64, "topic": "Office hours"}], "next_page_token": ""});
    fake.expect(listing("meetings", None), ResponseTemplate::new(200).set_body_json(p1)).await;
    fake.expect(listing("meetings", Some("np2")), ResponseTemplate::new(200).set_body_json(p2))
        .await;
    let no_plan = json!({"code": 200, "message": "Webinar plan is missing. You must subscribe to the webinar plan and enable webinar for this user."});
    fake.expect(listing("webinars", None), ResponseTemplate::new(400).set_body_json(no_plan)).await;
    let got = discover(&zoom(&fake)).await.unwrap();
    assert_eq!(
        got,
        rows(&[
            ("meeting", "85746065432", "Onboarding"),
            ("meeting", "85746065433", "Office hours")
        ])
    );
}

#[tokio::test]
async fn mapped_custom_fields_answer_custom_questions_by_title_as_text() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("zt-1")).await;
    let mut body = registrant();
    body["first_name"] = json!("Augusta");
    body["custom_questions"] = json!([
        {"title": "Company size", "value": "250"}, {"title": "Role", "value": "CTO"}
    ]);
    fake.expect(register("webinars", "zt-1", body), created()).await;
    let mut payload = person();
    payload["employees"] = json!(250);
    let mut d =
        delivery(json!({"action": "add_webinar_registrant", "id": 85_746_065_432_i64}), payload);
    d.mapping = Arc::new(
        serde_saphyr::from_str(
            "first_name: { value: Augusta }\nCompany size: { from: payload.employees }\nRole: { value: CTO }\n",
        )
        .unwrap(),
    );
    assert_delivered(&deliver(&zoom(&fake), &d).await);
}
