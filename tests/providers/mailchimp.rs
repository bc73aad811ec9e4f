//! Mailchimp: PUT upsert on the subscriber hash, DELETE to archive.

use crate::fake::*;
use crate::spec;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::json;
use std::sync::Arc;
use wiremock::ResponseTemplate;

// md5("ada@example.com")
const HASH: &str = "3e3417d7ef77d5932a6734b916515ed5";
const BASIC: &str = "Basic bWVzaGVzOmtleXNlY3JldC11czY="; // meshes:keysecret-us6

fn member_path() -> String {
    member_path_on("8f2c1e9a4b")
}

fn member_path_on(list: &str) -> String {
    format!("/3.0/lists/{list}/members/{HASH}")
}

fn mailchimp(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!("type: mailchimp\napi_key: ${{MC_KEY}}\nbase_url: {}/3.0\n", fake.uri());
    adapter(&yaml, &[("MC_KEY", "keysecret-us6")])
}

fn action(name: &str) -> meshes::adapters::adapter::Delivery {
    delivery(json!({"action": name, "id": "8f2c1e9a4b"}), person())
}

fn upsert() -> Expect {
    upsert_on("8f2c1e9a4b")
}

fn upsert_on(list: &str) -> Expect {
    Expect::new("PUT", &member_path_on(list))
        .query("skip_merge_validation", "true")
        .header("authorization", BASIC)
        .json(json!({
            "email_address": "Ada@Example.com",
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Ada", "LNAME": "Lovelace", "PHONE": "+441234"}
        }))
}

#[tokio::test]
async fn add_to_list_upserts_on_the_lower_cased_email_hash() {
    let fake = Fake::start().await;
    fake.expect(
        upsert(),
        ResponseTemplate::new(200).set_body_json(json!({"id": HASH, "status": "subscribed"})),
    )
    .await;
    assert_delivered(&deliver(&mailchimp(&fake), &action("add_to_list")).await);
    let sent = fake.bodies(&member_path()).await;
    spec::check(
        &spec::load("mailchimp.lists-members.EXTRACT.json"),
        "put",
        "/3.0/lists/{list_id}/members/{subscriber_hash}",
        &sent[0],
    );
}

/// Merge fields take text, numbers or a whole address: a mapped boolean,
/// list or other object is sent as text, an address object as it is.
#[tokio::test]
async fn mapped_merge_fields_are_text_numbers_or_addresses() {
    let fake = Fake::start().await;
    let address = json!({"addr1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701", "country": "US"});
    let merge = json!({"FNAME": "Ada", "LNAME": "Lovelace", "PHONE": "+441234", "VIP": "true",
        "SEATS": 3, "TAGS": "[\"a\",\"b\"]", "PLAN": "{\"n\":\"pro\"}", "ADDRESS": address.clone()});
    let put = Expect::new("PUT", &member_path())
        .query("skip_merge_validation", "true")
        .header("authorization", BASIC)
        .json(json!({"email_address": "Ada@Example.com", "status_if_new": "subscribed", "merge_fields": merge}));
    fake.expect(put, ResponseTemplate::new(200).set_body_json(json!({"id": HASH}))).await;
    let mut d = action("add_to_list");
    d.payload = json!({"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace",
        "phone": "+441234", "vip": true, "seats": 3, "tags": ["a", "b"], "plan": {"n": "pro"},
        "address": address})
    .into();
    d.mapping = Arc::new(
        serde_saphyr::from_str(
            "VIP: { from: payload.vip }\nSEATS: { from: payload.seats }\nTAGS: { from: payload.tags }\n\
             PLAN: { from: payload.plan }\nADDRESS: { from: payload.address }\n",
        )
        .unwrap(),
    );
    assert_delivered(&deliver(&mailchimp(&fake), &d).await);
    spec::check(
        &spec::load("mailchimp.lists-members.EXTRACT.json"),
        "put",
        "/3.0/lists/{list_id}/members/{subscriber_hash}",
        &fake.bodies(&member_path()).await[0],
    );
}

fn delete() -> Expect {
    Expect::new("DELETE", &member_path()).header("authorization", BASIC)
}

/// The audience read that tells a missing member from a missing audience.
fn audience() -> Expect {
    Expect::new("GET", "/3.0/lists/8f2c1e9a4b").query("fields", "id").header("authorization", BASIC)
}

/// Mailchimp's 404 problem: the same for a missing member and a missing audience.
fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).insert_header("content-type", "application/problem+json").set_body_json(
        json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": "Resource Not Found", "status": 404, "detail": "The requested resource could not be found.", "instance": "f570b1d5"}),
    )
}

#[tokio::test]
async fn remove_from_list_archives_and_absent_members_count_as_removed() {
    let fake = Fake::start().await;
    fake.expect(delete(), ResponseTemplate::new(204)).await;
    assert_delivered(&deliver(&mailchimp(&fake), &action("remove_from_list")).await);

    let fake = Fake::start().await;
    fake.expect(delete(), not_found()).await;
    let found = json!({"id": "8f2c1e9a4b"});
    fake.expect(audience(), ResponseTemplate::new(200).set_body_json(found)).await;
    assert_delivered(&deliver(&mailchimp(&fake), &action("remove_from_list")).await);
}

#[tokio::test]
async fn removing_from_a_missing_audience_is_permanent() {
    let fake = Fake::start().await;
    fake.expect(delete(), not_found()).await;
    fake.expect(audience(), not_found()).await;
    let r = deliver(&mailchimp(&fake), &action("remove_from_list")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "audience `8f2c1e9a4b` does not exist");
    assert_eq!(r.http_status, Some(404));
}

#[tokio::test]
async fn a_failed_audience_read_is_classified_like_any_answer() {
    let fake = Fake::start().await;
    fake.expect(delete(), not_found()).await;
    fake.expect(audience(), ResponseTemplate::new(503)).await;
    let r = deliver(&mailchimp(&fake), &action("remove_from_list")).await;
    assert_retry(&r, Outcome::RejectedServerError, None);
}

#[tokio::test]
async fn compliance_state_is_permanent_with_mailchimps_title() {
    let fake = Fake::start().await;
    let problem = json!({"title": "Member In Compliance State", "status": 400, "detail": "ada@example.com is already a list member in compliance state due to unsubscribe, bounce, or compliance review."});
    fake.expect(
        upsert(),
        ResponseTemplate::new(400)
            .insert_header("content-type", "application/problem+json")
            .set_body_json(problem),
    )
    .await;
    let r = deliver(&mailchimp(&fake), &action("add_to_list")).await;
    assert_permanent(&r, Outcome::RejectedClientError, "Member In Compliance State");
}

#[tokio::test]
async fn a_403_without_a_problem_body_is_a_throttle() {
    let html = "<html><head><title>403 Forbidden</title></head><body>Access denied</body></html>";
    let throttles = [
        ResponseTemplate::new(403),
        ResponseTemplate::new(403).set_body_raw(html, "text/html"),
        ResponseTemplate::new(403).set_body_raw("Forbidden", "text/plain"),
        // JSON, but not a problem: no `title` or `detail`.
        ResponseTemplate::new(403).set_body_json(json!({"error": "blocked"})),
    ];
    for answer in throttles {
        let fake = Fake::start().await;
        fake.expect(upsert(), answer).await;
        let r = deliver(&mailchimp(&fake), &action("add_to_list")).await;
        assert_retry(&r, Outcome::RateLimited, None);
        assert_eq!(r.http_status, Some(403));
    }
}

#[tokio::test]
async fn a_403_problem_is_a_permanent_auth_failure() {
    let forbidden = json!({"title": "Forbidden", "status": 403, "detail": "You don't have permission to access this resource."});
    // The media type tells, even for a problem with neither `title` nor `detail`.
    let bare =
        json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/", "status": 403});
    let problems = [
        (
            ResponseTemplate::new(403)
                .set_body_raw(bare.to_string(), "application/problem+json; charset=utf-8"),
            "mailchimp.com/developer",
        ),
        // Served as plain JSON: the problem fields tell.
        (ResponseTemplate::new(403).set_body_json(forbidden), "Forbidden"),
    ];
    for (answer, text) in problems {
        let fake = Fake::start().await;
        fake.expect(upsert(), answer).await;
        let r = deliver(&mailchimp(&fake), &action("add_to_list")).await;
        assert_permanent(&r, Outcome::AuthFailed, text);
    }
}

#[tokio::test]
async fn throttling_and_outages_are_retried() {
    let fake = Fake::start().await;
    fake.expect(
        upsert(),
        ResponseTemplate::new(429).set_body_json(json!({"title": "Too Many Requests"})),
    )
    .await;
    assert_retry(
        &deliver(&mailchimp(&fake), &action("add_to_list")).await,
        Outcome::RateLimited,
        None,
    );
    let fake = Fake::start().await;
    fake.expect(upsert(), ResponseTemplate::new(503)).await;
    assert_retry(
        &deliver(&mailchimp(&fake), &action("add_to_list")).await,
        Outcome::RejectedServerError,
        None,
    );
}

#[tokio::test]
async fn bad_keys_are_auth_failures_without_the_key() {
    let fake = Fake::start().await;
    let invalid = json!({"title": "API Key Invalid", "status": 401, "detail": "Your API key may be invalid: keysecret-us6"});
    fake.expect(upsert(), ResponseTemplate::new(401).set_body_json(invalid)).await;
    let r = deliver(&mailchimp(&fake), &action("add_to_list")).await;
    assert_permanent(&r, Outcome::AuthFailed, "API Key Invalid");
    assert_no_secret(&r, "keysecret-us6");
}

#[tokio::test]
async fn no_email_is_a_mapping_error_and_sends_nothing() {
    let fake = Fake::start().await;
    let d = delivery(json!({"action": "add_to_list", "id": "8f2c1e9a4b"}), json!({"name": "Ada"}));
    assert_permanent(&deliver(&mailchimp(&fake), &d).await, Outcome::MappingError, "email");
}

#[test]
fn the_data_center_comes_from_the_key_or_the_config() {
    assert!(try_adapter("type: mailchimp\napi_key: ${K}\n", &[("K", "abc-us19")]).is_ok());
    assert!(
        try_adapter("type: mailchimp\napi_key: ${K}\ndata_center: eu1\n", &[("K", "abc")]).is_ok()
    );
    let err =
        try_adapter("type: mailchimp\napi_key: ${K}\n", &[("K", "nodatacenter")]).unwrap_err();
    assert!(
        err.contains("api_key") && err.contains("data center") && !err.contains("nodatacenter"),
        "{err}"
    );
    let err =
        try_adapter("type: mailchimp\napi_key: ${K}\n", &[("K", "abc-evil.com/x")]).unwrap_err();
    assert!(err.contains("data center"), "{err}");
}

fn lists_page(offset: &str) -> Expect {
    Expect::new("GET", "/3.0/lists")
        .query("count", "1000")
        .query("offset", offset)
        .query("fields", "lists.id,lists.name,total_items")
        .header("authorization", BASIC)
}

#[tokio::test]
async fn discover_lists_every_audience_page() {
    let fake = Fake::start().await;
    let first = json!({"lists": [{"id": "a1", "name": "Newsletter"}, {"id": "b2", "name": "Beta"}], "total_items": 3});
    let second = json!({"lists": [{"id": "c3", "name": "Customers"}], "total_items": 3});
    fake.expect(lists_page("0"), ResponseTemplate::new(200).set_body_json(first)).await;
    fake.expect(lists_page("2"), ResponseTemplate::new(200).set_body_json(second)).await;
    let got = discover(&mailchimp(&fake)).await.unwrap();
    assert_eq!(
        got,
        rows(&[("list", "a1", "Newsletter"), ("list", "b2", "Beta"), ("list", "c3", "Customers")])
    );
}

#[tokio::test]
async fn discover_failure_carries_the_providers_message_without_the_key() {
    let fake = Fake::start().await;
    let body = json!({"title": "API Key Invalid", "status": 401, "detail": "Your API key keysecret-us6 may be invalid"});
    fake.expect(lists_page("0"), ResponseTemplate::new(401).set_body_json(body)).await;
    let err = discover(&mailchimp(&fake)).await.unwrap_err();
    assert!(err.contains("API Key Invalid") || err.contains("may be invalid"), "{err}");
    assert!(!err.contains("keysecret"), "{err}");
}

#[tokio::test]
async fn discover_reads_pages_larger_than_the_delivery_read_limit() {
    let fake = Fake::start().await;
    // ~600 KiB: over the 256 KiB kept from delivery answers.
    let lists: Vec<_> = (0..1000)
        .map(|i| json!({"id": format!("id{i}"), "name": format!("{i} {}", "x".repeat(600))}))
        .collect();
    let page = json!({"lists": lists, "total_items": 1000});
    fake.expect(lists_page("0"), ResponseTemplate::new(200).set_body_json(page)).await;
    let got = discover(&mailchimp(&fake)).await.unwrap();
    assert_eq!((got.len(), got[999].1.as_str()), (1000, "id999"));
}

/// A config whose one rule adds to the list written as `id`.
fn config_with_list_id(id: &str) -> String {
    format!(
        "version: 1\nworkspace: {{ id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: w, publishable_key: pk }}\n\
         connections:\n  crm: {{ type: mailchimp, api_key: \"${{MC_KEY}}\" }}\n\
         rules:\n  - {{ id: r, event: e, connection: crm, metadata: {{ action: add_to_list, id: {id} }} }}\n"
    )
}

/// An unquoted list id is sent as written in the file, never as the number
/// YAML reads from it (`0123` was sent as `123`, a 20-digit id rounded).
#[tokio::test]
async fn an_unquoted_list_id_is_sent_as_written() {
    for id in ["0123", "12345678901234567890", "1_000", "0x1F", "1.0"] {
        let source =
            meshes::config::Source { name: "w.yaml".into(), text: config_with_list_id(id) };
        let report = meshes::config::check_sources(&[source], Default::default());
        assert_eq!(report.diagnostics, vec![], "{id}");
        let fake = Fake::start().await;
        let answer = ResponseTemplate::new(200).set_body_json(json!({"id": HASH}));
        fake.expect(upsert_on(id), answer).await;
        let mut d = action("add_to_list");
        d.metadata = report.configs[0].1.rules[0].metadata.clone();
        assert_delivered(&deliver(&mailchimp(&fake), &d).await);
    }
}
