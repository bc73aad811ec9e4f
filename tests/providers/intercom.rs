//! Intercom: find-or-create by email search, tag and untag.

use crate::fake::*;
use crate::spec;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const TOKEN: &str = "dG9rOmludGVyY29tLXNlY3JldA==";

fn intercom(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!(
        "type: intercom\naccess_token: ${{IC_TOKEN}}\nregion: eu\nbase_url: {}\n",
        fake.uri()
    );
    adapter(&yaml, &[("IC_TOKEN", TOKEN)])
}

fn api(e: Expect) -> Expect {
    e.header("authorization", &format!("Bearer {TOKEN}"))
        .header("accept", "application/json")
        .header("intercom-version", "2.14")
}

fn search() -> Expect {
    api(Expect::new("POST", "/contacts/search")
        .json(json!({"query": {"field": "email", "operator": "=", "value": "ada@example.com"}})))
}

fn results(ids: &[&str]) -> ResponseTemplate {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type": "contact", "id": id, "email": "ada@example.com"}))
        .collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"type": "list", "data": data, "total_count": ids.len()}))
}

fn tag_it(contact: &str) -> Expect {
    api(Expect::new("POST", &format!("/contacts/{contact}/tags")).json(json!({"id": "7522907"})))
}

fn tag() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"type": "tag", "id": "7522907", "name": "signed-up"}))
}

fn create() -> Expect {
    api(Expect::new("POST", "/contacts").json(json!({"name": "Ada Lovelace", "phone": "+441234", "role": "user", "email": "ada@example.com"})))
}

fn action(name: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": name, "id": "7522907"}), person())
}

#[tokio::test]
async fn add_tag_tags_the_contact_found_by_email() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&["6329bd"])).await;
    fake.expect(tag_it("6329bd"), tag()).await;
    assert_delivered(&deliver(&intercom(&fake), &action("add_tag")).await);
    let ic = spec::load("intercom.EXTRACT.json");
    spec::check(&ic, "post", "/contacts/search", &fake.bodies("/contacts/search").await[0]);
    spec::check(
        &ic,
        "post",
        "/contacts/{contact_id}/tags",
        &fake.bodies("/contacts/6329bd/tags").await[0],
    );
}

#[tokio::test]
async fn add_tag_creates_an_unknown_contact() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&[])).await;
    fake.expect(
        create(),
        ResponseTemplate::new(200).set_body_json(json!({"type": "contact", "id": "new1"})),
    )
    .await;
    fake.expect(tag_it("new1"), tag()).await;
    assert_delivered(&deliver(&intercom(&fake), &action("add_tag")).await);
    spec::check(
        &spec::load("intercom.EXTRACT.json"),
        "post",
        "/contacts",
        &fake.bodies("/contacts").await[0],
    );
}

#[tokio::test]
async fn a_create_conflict_continues_with_the_existing_contact() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&[])).await;
    let conflict = json!({"type": "error.list", "errors": [{"code": "conflict", "message": "A contact matching those details already exists with id=5f1a2b"}]});
    fake.expect(create(), ResponseTemplate::new(409).set_body_json(conflict)).await;
    fake.expect(tag_it("5f1a2b"), tag()).await;
    assert_delivered(&deliver(&intercom(&fake), &action("add_tag")).await);
}

fn applied(ids: &[&str]) -> ResponseTemplate {
    let data: Vec<Value> = ids.iter().map(|id| json!({"type": "tag", "id": id})).collect();
    ResponseTemplate::new(200).set_body_json(json!({"type": "list", "data": data}))
}

#[tokio::test]
async fn remove_tag_untags_only_when_applied() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&["6329bd"])).await;
    fake.expect(api(Expect::new("GET", "/contacts/6329bd/tags")), applied(&["1", "7522907"])).await;
    fake.expect(api(Expect::new("DELETE", "/contacts/6329bd/tags/7522907")), tag()).await;
    assert_delivered(&deliver(&intercom(&fake), &action("remove_tag")).await);

    let fake = Fake::start().await;
    fake.expect(search(), results(&["6329bd"])).await;
    fake.expect(api(Expect::new("GET", "/contacts/6329bd/tags")), applied(&["1"])).await;
    assert_delivered(&deliver(&intercom(&fake), &action("remove_tag")).await);
}

#[tokio::test]
async fn remove_tag_for_an_unknown_contact_is_done() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&[])).await;
    assert_delivered(&deliver(&intercom(&fake), &action("remove_tag")).await);
}

#[tokio::test]
async fn a_missing_tag_is_permanent_with_intercoms_message() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&["6329bd"])).await;
    let missing = json!({"type": "error.list", "errors": [{"code": "not_found", "message": "Resource Not Found"}]});
    fake.expect(tag_it("6329bd"), ResponseTemplate::new(404).set_body_json(missing)).await;
    let r = deliver(&intercom(&fake), &action("add_tag")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "Resource Not Found");
}

#[tokio::test]
async fn throttling_waits_until_the_reset_time() {
    let fake = Fake::start().await;
    let reset =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 8;
    let limited = ResponseTemplate::new(429)
        .insert_header("x-ratelimit-reset", reset.to_string().as_str())
        .set_body_json(json!({"type": "error.list", "errors": [{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}]}));
    fake.expect(search(), limited).await;
    let r = deliver(&intercom(&fake), &action("add_tag")).await;
    let meshes::adapters::adapter::AttemptResult::Retry { code, after: Some(after), .. } = r.result
    else {
        panic!("{r:?}")
    };
    assert_eq!(code, Outcome::RateLimited);
    assert!(after > Duration::from_secs(5) && after <= Duration::from_secs(8), "{after:?}");
}

#[tokio::test]
async fn an_invalid_token_is_an_auth_failure_without_the_token() {
    let fake = Fake::start().await;
    let invalid = json!({"type": "error.list", "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]});
    fake.expect(search(), ResponseTemplate::new(401).set_body_json(invalid)).await;
    let r = deliver(&intercom(&fake), &action("add_tag")).await;
    assert_permanent(&r, Outcome::AuthFailed, "Access Token Invalid");
    assert_no_secret(&r, TOKEN);
}

#[tokio::test]
async fn discover_lists_tags_in_one_call_as_intercom_does_not_paginate_them() {
    let fake = Fake::start().await;
    let body = json!({"type": "list", "data": [
        {"type": "tag", "id": "17", "name": "VIP"}, {"type": "tag", "id": "18", "name": "Trial"}]});
    fake.expect(api(Expect::new("GET", "/tags")), ResponseTemplate::new(200).set_body_json(body))
        .await;
    let got = discover(&intercom(&fake)).await.unwrap();
    assert_eq!(got, rows(&[("tag", "17", "VIP"), ("tag", "18", "Trial")]));
}

#[tokio::test]
async fn mapped_custom_fields_are_custom_attributes_keeping_their_type() {
    let fake = Fake::start().await;
    fake.expect(search(), results(&[])).await;
    let body = json!({
        "name": "Ada Lovelace", "phone": "+441234", "role": "user", "email": "ada@example.com",
        "custom_attributes": {"monthly_spend": 155.5, "paid_subscriber": true, "plan": "pro"}
    });
    fake.expect(
        api(Expect::new("POST", "/contacts").json(body)),
        ResponseTemplate::new(200).set_body_json(json!({"type": "contact", "id": "new1"})),
    )
    .await;
    fake.expect(tag_it("new1"), tag()).await;
    let mut payload = person();
    payload["spend"] = json!(155.5);
    let mut d = delivery(json!({"action": "add_tag", "id": "7522907"}), payload);
    d.mapping = Arc::new(
        serde_saphyr::from_str(
            "monthly_spend: { from: payload.spend }\npaid_subscriber: { value: true }\nplan: { value: pro }\n",
        )
        .unwrap(),
    );
    assert_delivered(&deliver(&intercom(&fake), &d).await);
    let sent = &fake.bodies("/contacts").await[0];
    spec::check(&spec::load("intercom.EXTRACT.json"), "post", "/contacts", sent);
}
