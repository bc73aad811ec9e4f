//! MailerLite: upsert with the group; lookup by email then unassign.

use crate::fake::*;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const KEY: &str = "mlite-secret-token";
const AUTH: &str = "Bearer mlite-secret-token";

fn mailerlite(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!("type: mailerlite\napi_key: ${{ML_KEY}}\nbase_url: {}/api\n", fake.uri());
    adapter(&yaml, &[("ML_KEY", KEY)])
}

fn action(name: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": name, "id": 4_243_829_086_i64}), person())
}

fn upsert() -> Expect {
    Expect::new("POST", "/api/subscribers")
        .header("authorization", AUTH)
        .header("accept", "application/json")
        .json(json!({
            "email": "ada@example.com",
            "groups": ["4243829086"],
            "fields": {"name": "Ada", "last_name": "Lovelace", "phone": "+441234"}
        }))
}

fn lookup() -> Expect {
    Expect::new("GET", "/api/subscribers/ada@example.com")
        .header("authorization", AUTH)
        .header("accept", "application/json")
}

fn unassign() -> Expect {
    Expect::new("DELETE", "/api/subscribers/31897397363737859/groups/4243829086")
        .header("authorization", AUTH)
}

fn found() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"data": {"id": "31897397363737859", "email": "ada@example.com"}}))
}

#[tokio::test]
async fn add_to_group_upserts_the_subscriber_with_the_group() {
    let fake = Fake::start().await;
    fake.expect(
        upsert(),
        ResponseTemplate::new(201).set_body_json(json!({"data": {"id": "31897397363737859"}})),
    )
    .await;
    assert_delivered(&deliver(&mailerlite(&fake), &action("add_to_group")).await);
}

#[tokio::test]
async fn remove_from_group_finds_the_subscriber_then_unassigns() {
    let fake = Fake::start().await;
    fake.expect(lookup(), found()).await;
    fake.expect(unassign(), ResponseTemplate::new(204)).await;
    assert_delivered(&deliver(&mailerlite(&fake), &action("remove_from_group")).await);
}

#[tokio::test]
async fn removing_an_unknown_subscriber_or_a_non_member_is_done() {
    let fake = Fake::start().await;
    fake.expect(
        lookup(),
        ResponseTemplate::new(404).set_body_json(json!({"message": "Resource not found."})),
    )
    .await;
    assert_delivered(&deliver(&mailerlite(&fake), &action("remove_from_group")).await);

    let fake = Fake::start().await;
    fake.expect(lookup(), found()).await;
    fake.expect(
        unassign(),
        ResponseTemplate::new(404).set_body_json(json!({"message": "Resource not found."})),
    )
    .await;
    assert_delivered(&deliver(&mailerlite(&fake), &action("remove_from_group")).await);
}

#[tokio::test]
async fn validation_errors_are_permanent_with_mailerlites_message() {
    let fake = Fake::start().await;
    let invalid = json!({"message": "The email must be a valid email address.", "errors": {"email": ["The email must be a valid email address."]}});
    fake.expect(upsert(), ResponseTemplate::new(422).set_body_json(invalid)).await;
    let r = deliver(&mailerlite(&fake), &action("add_to_group")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "The email must be a valid email address.");
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let fake = Fake::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "45")
        .set_body_json(json!({"message": "Too Many Attempts."}));
    fake.expect(upsert(), limited).await;
    assert_retry(
        &deliver(&mailerlite(&fake), &action("add_to_group")).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(45)),
    );
}

#[tokio::test]
async fn a_revoked_token_is_an_auth_failure_without_the_token() {
    let fake = Fake::start().await;
    fake.expect(
        lookup(),
        ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthenticated."})),
    )
    .await;
    let r = deliver(&mailerlite(&fake), &action("remove_from_group")).await;
    assert_permanent(&r, Outcome::AuthFailed, "Unauthenticated.");
    assert_no_secret(&r, KEY);
}

#[tokio::test]
async fn an_upsert_timeout_is_retried() {
    let fake = Fake::start().await;
    fake.expect(upsert(), ResponseTemplate::new(200).set_delay(Duration::from_secs(10))).await;
    let r = mailerlite(&fake).deliver(&action("add_to_group"), Duration::from_millis(300)).await;
    assert_retry(&r, Outcome::Timeout, None);
}

fn groups_page(page: &str) -> Expect {
    Expect::new("GET", "/api/groups")
        .query("limit", "100")
        .query("page", page)
        .header("authorization", AUTH)
}

#[tokio::test]
async fn discover_walks_every_group_page() {
    let fake = Fake::start().await;
    let p1 = json!({"data": [{"id": "111", "name": "Buyers"}, {"id": "222", "name": "Leads"}],
        "meta": {"current_page": 1, "last_page": 2}});
    let p2 = json!({"data": [{"id": "333", "name": "VIP"}], "meta": {"current_page": 2, "last_page": 2}});
    fake.expect(groups_page("1"), ResponseTemplate::new(200).set_body_json(p1)).await;
    fake.expect(groups_page("2"), ResponseTemplate::new(200).set_body_json(p2)).await;
    let got = discover(&mailerlite(&fake)).await.unwrap();
    assert_eq!(
        got,
        rows(&[("group", "111", "Buyers"), ("group", "222", "Leads"), ("group", "333", "VIP")])
    );
}
