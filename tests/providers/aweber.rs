//! AWeber: refresh-token OAuth, account lookup, find-then-add, unsubscribe.

use crate::fake::*;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const SUBSCRIBERS: &str = "/1.0/accounts/1756/lists/6051/subscribers";

fn aweber(fake: &Fake, account: bool) -> Arc<dyn Adapter> {
    let account = if account { "account_id: \"1756\"\n" } else { "" };
    let yaml = format!(
        "type: aweber\nclient_id: aw-client\nclient_secret: ${{AW_SECRET}}\nrefresh_token: ${{AW_REFRESH}}\nbase_url: {}/1.0\n{account}",
        fake.uri()
    );
    adapter(&yaml, &[("AW_SECRET", "aw-client-secret"), ("AW_REFRESH", "aw-refresh-token")])
}

fn token_call() -> Expect {
    // base64("aw-client:aw-client-secret")
    Expect::new("POST", "/oauth2/token")
        .header("authorization", "Basic YXctY2xpZW50OmF3LWNsaWVudC1zZWNyZXQ=")
        .form("grant_type=refresh_token&refresh_token=aw-refresh-token")
}

fn token() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"access_token": "aw-at", "refresh_token": "aw-refresh-token", "expires_in": 7200, "token_type": "bearer"}))
}

fn bearer(e: Expect) -> Expect {
    e.header("authorization", "Bearer aw-at")
}

fn find() -> Expect {
    bearer(Expect::new("GET", SUBSCRIBERS).query("ws.op", "find").query("email", "ada@example.com"))
}

fn entries(list: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"entries": list, "total_size": 1}))
}

fn add() -> Expect {
    bearer(
        Expect::new("POST", SUBSCRIBERS)
            .json(json!({"name": "Ada Lovelace", "email": "Ada@Example.com"})),
    )
}

fn rule(action: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": action, "id": 6051}), person())
}

#[tokio::test]
async fn add_to_list_looks_up_the_account_once_then_adds_a_new_subscriber() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(bearer(Expect::new("GET", "/1.0/accounts")), entries(json!([{"id": 1756}]))).await;
    fake.expect_n(find(), entries(json!([])), 2).await;
    fake.expect_n(
        add(),
        ResponseTemplate::new(201).insert_header(
            "location",
            "https://api.aweber.com/1.0/accounts/1756/lists/6051/subscribers/9",
        ),
        2,
    )
    .await;
    let a = aweber(&fake, false);
    assert_delivered(&deliver(&a, &rule("add_to_list")).await);
    assert_delivered(&deliver(&a, &rule("add_to_list")).await);
}

#[tokio::test]
async fn someone_already_on_the_list_is_left_alone() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(find(), entries(json!([{"id": 9, "status": "unsubscribed"}]))).await;
    assert_delivered(&deliver(&aweber(&fake, true), &rule("add_to_list")).await);
}

#[tokio::test]
async fn already_subscribed_races_count_as_success() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(find(), entries(json!([]))).await;
    let dup = json!({"error": {"status": 400, "type": "WebServiceError", "message": "email: Subscriber already subscribed and has not confirmed."}});
    fake.expect(add(), ResponseTemplate::new(400).set_body_json(dup)).await;
    assert_delivered(&deliver(&aweber(&fake, true), &rule("add_to_list")).await);
}

#[tokio::test]
async fn remove_from_list_unsubscribes_a_found_subscriber() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(find(), entries(json!([{"id": 9, "status": "subscribed"}]))).await;
    let patch = bearer(
        Expect::new("PATCH", &format!("{SUBSCRIBERS}/9")).json(json!({"status": "unsubscribed"})),
    );
    fake.expect(
        patch,
        ResponseTemplate::new(209).set_body_json(json!({"id": 9, "status": "unsubscribed"})),
    )
    .await;
    assert_delivered(&deliver(&aweber(&fake, true), &rule("remove_from_list")).await);

    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(find(), entries(json!([]))).await;
    assert_delivered(&deliver(&aweber(&fake, true), &rule("remove_from_list")).await);
}

#[tokio::test]
async fn the_rate_limit_403_is_retried_after_a_minute_but_other_403s_are_not() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    let limited =
        json!({"error": {"status": 403, "message": "Rate Limit Error", "type": "ForbiddenError"}});
    fake.expect(find(), ResponseTemplate::new(403).set_body_json(limited)).await;
    assert_retry(
        &deliver(&aweber(&fake, true), &rule("add_to_list")).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(60)),
    );

    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(find(), entries(json!([]))).await;
    let refused = json!({"error": {"status": 403, "message": "Email address cannot be accepted at this time.", "type": "ForbiddenError"}});
    fake.expect(add(), ResponseTemplate::new(403).set_body_json(refused)).await;
    let r = deliver(&aweber(&fake, true), &rule("add_to_list")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "cannot be accepted");
}

#[tokio::test]
async fn a_revoked_refresh_token_is_a_permanent_auth_failure() {
    let fake = Fake::start().await;
    let refused = json!({"error": "invalid_grant", "error_description": "Invalid refresh token aw-refresh-token"});
    fake.expect(token_call(), ResponseTemplate::new(400).set_body_json(refused)).await;
    let r = deliver(&aweber(&fake, true), &rule("add_to_list")).await;
    assert_permanent(&r, Outcome::AuthFailed, "invalid_grant");
    assert_no_secret(&r, "aw-refresh-token");
    assert_no_secret(&r, "aw-client-secret");
}

#[tokio::test]
async fn discover_follows_next_collection_links_on_the_configured_host() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    let lists = "/1.0/accounts/1756/lists";
    // The next link names another host: only its query is reused.
    let p1 = json!({"entries": [{"id": 111, "name": "Newsletter"}], "total_size": 2,
        "next_collection_link": "https://api.aweber.com/1.0/accounts/1756/lists?ws.start=1&ws.size=1"});
    let p2 = json!({"entries": [{"id": 222, "name": "Customers"}], "total_size": 2});
    fake.expect(bearer(Expect::new("GET", lists)), ResponseTemplate::new(200).set_body_json(p1))
        .await;
    let second = bearer(Expect::new("GET", lists)).query("ws.start", "1").query("ws.size", "1");
    fake.expect(second, ResponseTemplate::new(200).set_body_json(p2)).await;
    let got = discover(&aweber(&fake, true)).await.unwrap();
    assert_eq!(got, rows(&[("list", "111", "Newsletter"), ("list", "222", "Customers")]));
}

#[tokio::test]
async fn mapped_custom_fields_go_in_custom_fields_by_name_as_text() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token()).await;
    fake.expect(find(), entries(json!([]))).await;
    let body = json!({
        "name": "Ada Lovelace", "email": "Ada@Example.com",
        "custom_fields": {"Plan": "pro", "Seats": "3"}
    });
    fake.expect(bearer(Expect::new("POST", SUBSCRIBERS).json(body)), ResponseTemplate::new(201))
        .await;
    let mut payload = person();
    payload["seats"] = json!(3);
    let mut d = delivery(json!({"action": "add_to_list", "id": 6051}), payload);
    d.mapping = Arc::new(
        serde_saphyr::from_str("Plan: { value: pro }\nSeats: { from: payload.seats }\n").unwrap(),
    );
    assert_delivered(&deliver(&aweber(&fake, true), &d).await);
}

#[tokio::test]
async fn a_token_said_to_last_forever_is_used_and_reused() {
    // `expires_in` near u64::MAX seconds used to overflow the clock and
    // panic the attempt, pinning the delivery in flight.
    let fake = Fake::start().await;
    let forever = json!({"access_token": "aw-at", "refresh_token": "aw-refresh-token",
        "expires_in": u64::MAX, "token_type": "bearer"});
    fake.expect(token_call(), ResponseTemplate::new(200).set_body_json(forever)).await;
    fake.expect_n(find(), entries(json!([{"id": 9, "status": "subscribed"}])), 2).await;
    let a = aweber(&fake, true);
    assert_delivered(&deliver(&a, &rule("add_to_list")).await);
    assert_delivered(&deliver(&a, &rule("add_to_list")).await);
}
