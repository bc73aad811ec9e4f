//! ActiveCampaign: contact sync, list status, tag rows.

use crate::fake::*;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const KEY: &str = "ac-secret-api-key";

fn ac(fake: &Fake) -> Arc<dyn Adapter> {
    // `api_url` is the account URL; the fake stands in for it (no base_url override).
    let yaml = "type: activecampaign\napi_url: ${AC_URL}\napi_key: ${AC_KEY}\n";
    adapter(yaml, &[("AC_URL", &fake.uri()), ("AC_KEY", KEY)])
}

fn api(e: Expect) -> Expect {
    e.header("api-token", KEY).header("accept", "application/json").absent("authorization")
}

fn sync() -> Expect {
    api(Expect::new("POST", "/api/3/contact/sync").json(json!({
        "contact": {"firstName": "Ada", "lastName": "Lovelace", "phone": "+441234", "email": "Ada@Example.com"}
    })))
}

fn synced() -> ResponseTemplate {
    ResponseTemplate::new(201)
        .set_body_json(json!({"contact": {"id": "113", "email": "ada@example.com"}}))
}

fn find() -> Expect {
    api(Expect::new("GET", "/api/3/contacts").query("email", "ada@example.com"))
}

fn contacts(ids: &[&str]) -> ResponseTemplate {
    let list: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"contacts": list, "meta": {"total": ids.len().to_string()}}))
}

fn rows(pairs: &[(&str, &str)]) -> ResponseTemplate {
    let list: Vec<Value> =
        pairs.iter().map(|(id, tag)| json!({"id": id, "tag": tag, "contact": "113"})).collect();
    ResponseTemplate::new(200).set_body_json(json!({"contactTags": list}))
}

fn rule(action: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": action, "id": 7}), person())
}

#[tokio::test]
async fn sync_contact_upserts_by_email() {
    let fake = Fake::start().await;
    fake.expect(sync(), synced()).await;
    assert_delivered(
        &deliver(&ac(&fake), &delivery(json!({"action": "sync_contact"}), person())).await,
    );
}

#[tokio::test]
async fn list_membership_sets_the_status() {
    for (action, status) in [("add_to_list", 1), ("remove_from_list", 2)] {
        let fake = Fake::start().await;
        if status == 1 {
            fake.expect(sync(), synced()).await;
        } else {
            fake.expect(find(), contacts(&["113"])).await;
        }
        let body = json!({"contactList": {"list": "7", "contact": "113", "status": status}});
        let set = ResponseTemplate::new(200).set_body_json(json!({"contactList": {"id": "9"}}));
        fake.expect(api(Expect::new("POST", "/api/3/contactLists").json(body)), set).await;
        assert_delivered(&deliver(&ac(&fake), &rule(action)).await);
    }
}

#[tokio::test]
async fn removing_an_unknown_contact_is_done_without_creating_it() {
    let fake = Fake::start().await;
    fake.expect(find(), contacts(&[])).await;
    assert_delivered(&deliver(&ac(&fake), &rule("remove_from_list")).await);
}

#[tokio::test]
async fn add_tag_skips_a_tag_already_applied() {
    let fake = Fake::start().await;
    fake.expect(sync(), synced()).await;
    fake.expect(api(Expect::new("GET", "/api/3/contacts/113/contactTags")), rows(&[("55", "7")]))
        .await;
    assert_delivered(&deliver(&ac(&fake), &rule("add_tag")).await);

    let fake = Fake::start().await;
    fake.expect(sync(), synced()).await;
    fake.expect(api(Expect::new("GET", "/api/3/contacts/113/contactTags")), rows(&[("54", "3")]))
        .await;
    let add = api(Expect::new("POST", "/api/3/contactTags")
        .json(json!({"contactTag": {"contact": "113", "tag": "7"}})));
    fake.expect(add, ResponseTemplate::new(201).set_body_json(json!({"contactTag": {"id": "56"}})))
        .await;
    assert_delivered(&deliver(&ac(&fake), &rule("add_tag")).await);
}

#[tokio::test]
async fn remove_tag_deletes_the_row_not_the_tag() {
    let fake = Fake::start().await;
    fake.expect(find(), contacts(&["113"])).await;
    fake.expect(
        api(Expect::new("GET", "/api/3/contacts/113/contactTags")),
        rows(&[("54", "3"), ("55", "7")]),
    )
    .await;
    fake.expect(
        api(Expect::new("DELETE", "/api/3/contactTags/55")),
        ResponseTemplate::new(200).set_body_json(json!({})),
    )
    .await;
    assert_delivered(&deliver(&ac(&fake), &rule("remove_tag")).await);

    let fake = Fake::start().await;
    fake.expect(find(), contacts(&["113"])).await;
    fake.expect(api(Expect::new("GET", "/api/3/contacts/113/contactTags")), rows(&[])).await;
    assert_delivered(&deliver(&ac(&fake), &rule("remove_tag")).await);
}

#[tokio::test]
async fn validation_errors_are_permanent_with_the_detail() {
    let fake = Fake::start().await;
    let invalid = json!({"errors": [{"title": "Email address is not valid.", "detail": "", "code": "email_invalid", "source": {"pointer": "/data/attributes/email"}}]});
    fake.expect(sync(), ResponseTemplate::new(422).set_body_json(invalid)).await;
    let r = deliver(&ac(&fake), &rule("add_to_list")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "Email address is not valid.");
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let fake = Fake::start().await;
    fake.expect(sync(), ResponseTemplate::new(429).insert_header("retry-after", "1")).await;
    assert_retry(
        &deliver(&ac(&fake), &rule("add_tag")).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(1)),
    );
}

#[tokio::test]
async fn a_bad_key_is_an_auth_failure_without_the_key() {
    let fake = Fake::start().await;
    let refused = json!({"message": "No Result found for key ac-secret-api-key"});
    fake.expect(find(), ResponseTemplate::new(403).set_body_json(refused)).await;
    let r = deliver(&ac(&fake), &rule("remove_tag")).await;
    assert_permanent(&r, Outcome::AuthFailed, "No Result found");
    assert_no_secret(&r, KEY);
}

fn page(path: &str, offset: &str) -> Expect {
    api(Expect::new("GET", path)).query("limit", "100").query("offset", offset)
}

fn reply(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

#[tokio::test]
async fn discover_pages_lists_and_tags_by_offset() {
    let fake = Fake::start().await;
    let l1 = json!({"lists": [{"id": "1", "name": "Main"}, {"id": "2", "name": "Beta"}], "meta": {"total": "3"}});
    let l2 = json!({"lists": [{"id": "3", "name": "VIP"}], "meta": {"total": "3"}});
    fake.expect(page("/api/3/lists", "0"), reply(l1)).await;
    fake.expect(page("/api/3/lists", "2"), reply(l2)).await;
    let tags = json!({"tags": [{"id": "7", "tag": "customer", "tagType": "contact"}], "meta": {"total": "1"}});
    fake.expect(page("/api/3/tags", "0"), reply(tags)).await;
    let got = discover(&ac(&fake)).await.unwrap();
    assert_eq!(
        got,
        crate::fake::rows(&[
            ("list", "1", "Main"),
            ("list", "2", "Beta"),
            ("list", "3", "VIP"),
            ("tag", "7", "customer")
        ])
    );
}

#[tokio::test]
async fn mapped_custom_fields_are_field_values_by_id_as_text() {
    let fake = Fake::start().await;
    let contact = json!({
        "firstName": "Augusta", "lastName": "Lovelace", "phone": "+441234", "email": "Ada@Example.com",
        "fieldValues": [
            {"field": "12", "value": "pro"}, {"field": "13", "value": "3"}, {"field": "14", "value": "true"}
        ]
    });
    let sync = api(Expect::new("POST", "/api/3/contact/sync").json(json!({"contact": contact})));
    fake.expect(sync, synced()).await;
    let mut payload = person();
    payload["seats"] = json!(3);
    let mut d = delivery(json!({"action": "sync_contact"}), payload);
    d.mapping = Arc::new(
        serde_saphyr::from_str(
            "first_name: { value: Augusta }\n\"12\": { value: pro }\n\"13\": { from: payload.seats }\n\"14\": { value: true }\n",
        )
        .unwrap(),
    );
    assert_delivered(&deliver(&ac(&fake), &d).await);
}
