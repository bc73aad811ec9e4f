//! HubSpot: find-or-create by email, list memberships, properties; private
//! app tokens and the OAuth refresh flow.

use crate::fake::*;
use crate::spec;
use meshes::adapters::adapter::{Adapter, AttemptResult, QuotaScope};
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

pub(crate) const PAT: &str = "pat-na1-secret-token";
const CONTACT: &str = "/crm/v3/objects/contacts/ada@example.com";

pub(crate) fn private_app(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!("type: hubspot\naccess_token: ${{HS_TOKEN}}\nbase_url: {}\n", fake.uri());
    adapter(&yaml, &[("HS_TOKEN", PAT)])
}

fn oauth(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!(
        "type: hubspot\nclient_id: cid-1\nclient_secret: ${{HS_SECRET}}\nrefresh_token: ${{HS_REFRESH}}\nbase_url: {}\n",
        fake.uri()
    );
    adapter(&yaml, &[("HS_SECRET", "client-secret-value"), ("HS_REFRESH", "refresh-token-value")])
}

pub(crate) fn bearer(e: Expect, token: &str) -> Expect {
    e.header("authorization", &format!("Bearer {token}"))
}

pub(crate) fn lookup(token: &str) -> Expect {
    bearer(
        Expect::new("GET", CONTACT).query("idProperty", "email").query("properties", "email"),
        token,
    )
}

fn found(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"id": id, "properties": {"email": "ada@example.com"}}))
}

pub(crate) fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(
        json!({"status": "error", "message": "Object not found.", "category": "OBJECT_NOT_FOUND"}),
    )
}

pub(crate) fn membership(op: &str, id: &str, token: &str) -> Expect {
    bearer(
        Expect::new("PUT", &format!("/crm/v3/lists/123/memberships/{op}")).json(json!([id])),
        token,
    )
}

pub(crate) fn list_ok() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"recordIdsMissing": [], "recordsIdsAdded": ["501"], "recordIdsRemoved": []}),
    )
}

pub(crate) fn create(extra: Value) -> Expect {
    let mut properties = json!({"firstname": "Ada", "lastname": "Lovelace", "phone": "+441234", "email": "ada@example.com"});
    properties.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    bearer(
        Expect::new("POST", "/crm/v3/objects/contacts")
            .json(json!({"properties": properties, "associations": []})),
        PAT,
    )
}

fn rule(meta: Value) -> meshes::adapters::adapter::Delivery {
    delivery(meta, person())
}

fn add() -> meshes::adapters::adapter::Delivery {
    rule(json!({"action": "add_to_list", "id": 123}))
}

#[tokio::test]
async fn add_to_list_finds_the_contact_by_email() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), found("501")).await;
    fake.expect(membership("add", "501", PAT), list_ok()).await;
    assert_delivered(&deliver(&private_app(&fake), &add()).await);
    let sent = fake.bodies("/crm/v3/lists/123/memberships/add").await;
    spec::check(
        &spec::load("lists.json"),
        "put",
        "/crm/v3/lists/{listId}/memberships/add",
        &sent[0],
    );
}

#[tokio::test]
async fn add_to_list_creates_an_unknown_contact_first() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    fake.expect(create(json!({})), ResponseTemplate::new(201).set_body_json(json!({"id": "777"})))
        .await;
    fake.expect(membership("add", "777", PAT), list_ok()).await;
    assert_delivered(&deliver(&private_app(&fake), &add()).await);
    let sent = fake.bodies("/crm/v3/objects/contacts").await;
    spec::check(&spec::load("contacts.json"), "post", "/crm/v3/objects/contacts", &sent[0]);
}

/// HubSpot answers 200 but lists a just-created contact in
/// `recordIdsMissing` (not added): retried, not delivered. On a removal a
/// missing contact is already out of the list.
#[tokio::test]
async fn a_contact_reported_missing_from_an_add_is_retried() {
    let missing = || {
        ResponseTemplate::new(200).set_body_json(
            json!({"recordIdsMissing": ["777"], "recordsIdsAdded": [], "recordIdsRemoved": []}),
        )
    };
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    fake.expect(create(json!({})), ResponseTemplate::new(201).set_body_json(json!({"id": "777"})))
        .await;
    fake.expect(membership("add", "777", PAT), missing()).await;
    let r = deliver(&private_app(&fake), &add()).await;
    assert_retry(&r, Outcome::RejectedServerError, None);
    let AttemptResult::Retry { message, .. } = &r.result else { unreachable!() };
    assert_eq!(
        message,
        "HTTP 200: HubSpot did not add contact 777 to the list: it reported the contact missing (`recordIdsMissing`), as it can just after the contact is created"
    );

    let fake = Fake::start().await;
    fake.expect(lookup(PAT), found("777")).await;
    fake.expect(membership("remove", "777", PAT), missing()).await;
    let remove = rule(json!({"action": "remove_from_list", "id": "123"}));
    assert_delivered(&deliver(&private_app(&fake), &remove).await);
}

#[tokio::test]
async fn a_create_conflict_continues_with_the_existing_id() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    let conflict = json!({"status": "error", "message": "Contact already exists. Existing ID: 12345", "category": "CONFLICT"});
    fake.expect(create(json!({})), ResponseTemplate::new(409).set_body_json(conflict)).await;
    fake.expect(membership("add", "12345", PAT), list_ok()).await;
    assert_delivered(&deliver(&private_app(&fake), &add()).await);
}

#[tokio::test]
async fn removing_an_unknown_contact_is_done_without_creating_it() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    assert_delivered(
        &deliver(&private_app(&fake), &rule(json!({"action": "remove_from_list", "id": 123})))
            .await,
    );

    let fake = Fake::start().await;
    fake.expect(lookup(PAT), found("501")).await;
    fake.expect(membership("remove", "501", PAT), list_ok()).await;
    assert_delivered(
        &deliver(&private_app(&fake), &rule(json!({"action": "remove_from_list", "id": 123})))
            .await,
    );
}

#[tokio::test]
async fn update_property_patches_an_existing_contact() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), found("501")).await;
    let patch = bearer(
        Expect::new("PATCH", "/crm/v3/objects/contacts/501")
            .json(json!({"properties": {"plan": "42"}})),
        PAT,
    );
    fake.expect(patch, found("501")).await;
    let d = rule(json!({"action": "update_property", "id": "plan", "value": 42}));
    assert_delivered(&deliver(&private_app(&fake), &d).await);
    let sent = fake.bodies("/crm/v3/objects/contacts/501").await;
    spec::check(
        &spec::load("contacts.json"),
        "patch",
        "/crm/v3/objects/contacts/{contactId}",
        &sent[0],
    );
}

#[tokio::test]
async fn update_property_creates_a_new_contact_with_the_value() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    fake.expect(
        create(json!({"plan": "pro"})),
        ResponseTemplate::new(201).set_body_json(json!({"id": "777"})),
    )
    .await;
    let d = rule(json!({"action": "update_property", "id": "plan", "value": "pro"}));
    assert_delivered(&deliver(&private_app(&fake), &d).await);
}

#[tokio::test]
async fn validation_errors_are_permanent_with_hubspots_message() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), found("501")).await;
    let patch = bearer(
        Expect::new("PATCH", "/crm/v3/objects/contacts/501")
            .json(json!({"properties": {"nope": "x"}})),
        PAT,
    );
    let invalid = json!({"status": "error", "message": "Property values were not valid: nope does not exist", "category": "VALIDATION_ERROR"});
    fake.expect(patch, ResponseTemplate::new(400).set_body_json(invalid)).await;
    let r = deliver(
        &private_app(&fake),
        &rule(json!({"action": "update_property", "id": "nope", "value": "x"})),
    )
    .await;
    assert_permanent(&r, Outcome::RejectedClientError, "Property values were not valid");
}

fn limited(policy: &str) -> ResponseTemplate {
    ResponseTemplate::new(429).set_body_json(
        json!({"status": "error", "message": "You have reached your limit.", "policyName": policy}),
    )
}

#[tokio::test]
async fn the_ten_second_window_waits_ten_seconds() {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), limited("TEN_SECONDLY_ROLLING")).await;
    let r = deliver(&private_app(&fake), &add()).await;
    assert_retry(&r, Outcome::RateLimited, Some(Duration::from_secs(10)));
}

/// The next try of a daily 429 is due `wait` after the answer: the
/// delivery waits for the quota instead of retrying into it every hour.
async fn assert_daily(answer: ResponseTemplate, wait: Duration) {
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), answer).await;
    let before = meshes::clock::now_ms();
    let r = deliver(&private_app(&fake), &add()).await;
    let after = meshes::clock::now_ms();
    let AttemptResult::Deferred { code, until, scope, message } = r.result else { panic!("{r:?}") };
    assert_eq!(code, Outcome::RateLimited);
    assert_eq!(scope, QuotaScope::Connection, "the portal's quota: every delivery waits");
    let wait = wait.as_millis() as u64;
    assert!((before + wait..=after + wait).contains(&until), "{until} not {wait} ms on");
    assert!(message.contains("You have reached your limit") && message.contains("midnight"));
}

#[tokio::test]
async fn the_daily_limit_waits_a_day_at_most() {
    let day = Duration::from_secs(86_400);
    // The portal's time zone is unknown: its next midnight is within a day.
    assert_daily(limited("DAILY"), day).await;
    // A hint from HubSpot is taken when it is sooner, not past the day.
    assert_daily(limited("DAILY").insert_header("retry-after", "7200"), Duration::from_secs(7_200))
        .await;
    assert_daily(limited("DAILY").insert_header("retry-after", "900000"), day).await;
}

#[tokio::test]
async fn a_lookup_answer_without_an_id_is_not_a_success() {
    let fake = Fake::start().await;
    let odd = json!({"properties": {"email": "ada@example.com"}});
    fake.expect(lookup(PAT), ResponseTemplate::new(200).set_body_json(odd)).await;
    let r = deliver(&private_app(&fake), &add()).await;
    assert_retry(&r, Outcome::RejectedServerError, None);
    let AttemptResult::Retry { message, .. } = &r.result else { unreachable!() };
    assert!(message.contains("contact lookup without the contact's `id`"), "{message}");

    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    fake.expect(create(json!({})), ResponseTemplate::new(201).set_body_string("")).await;
    let r = deliver(&private_app(&fake), &add()).await;
    assert_retry(&r, Outcome::RejectedServerError, None);
}

fn token_call() -> Expect {
    Expect::new("POST", "/oauth/v3/token")
        .form("grant_type=refresh_token&refresh_token=refresh-token-value&client_id=cid-1&client_secret=client-secret-value")
}

fn token(access: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"token_type": "bearer", "access_token": access, "expires_in": 1800, "refresh_token": "refresh-token-value"}))
}

#[tokio::test]
async fn oauth_fetches_one_token_for_every_call() {
    let fake = Fake::start().await;
    fake.expect(token_call(), token("at-1")).await;
    fake.expect_n(lookup("at-1"), found("501"), 2).await;
    fake.expect_n(membership("add", "501", "at-1"), list_ok(), 2).await;
    let a = oauth(&fake);
    assert_delivered(&deliver(&a, &add()).await);
    assert_delivered(&deliver(&a, &add()).await);
}

#[tokio::test]
async fn oauth_refreshes_once_on_401() {
    let fake = Fake::start().await;
    wiremock::Mock::given(token_call())
        .respond_with(token("at-1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&fake.server)
        .await;
    wiremock::Mock::given(token_call())
        .respond_with(token("at-2"))
        .expect(1)
        .mount(&fake.server)
        .await;
    let expired = json!({"status": "error", "message": "The OAuth token used to make this call expired", "category": "EXPIRED_AUTHENTICATION"});
    fake.expect(lookup("at-1"), ResponseTemplate::new(401).set_body_json(expired)).await;
    fake.expect(lookup("at-2"), found("501")).await;
    fake.expect(membership("add", "501", "at-2"), list_ok()).await;
    assert_delivered(&deliver(&oauth(&fake), &add()).await);
}

#[tokio::test]
async fn a_refused_refresh_is_a_permanent_auth_failure() {
    let fake = Fake::start().await;
    let refused = json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token", "error": "invalid_grant", "error_description": "missing or unknown refresh token"});
    fake.expect(token_call(), ResponseTemplate::new(400).set_body_json(refused)).await;
    let r = deliver(&oauth(&fake), &add()).await;
    assert_permanent(&r, Outcome::AuthFailed, "the OAuth token refresh failed: invalid_grant");
    assert_no_secret(&r, "client-secret-value");
    assert_no_secret(&r, "refresh-token-value");
}

fn search(offset: u64) -> Expect {
    bearer(Expect::new("POST", "/crm/v3/lists/search"), PAT).json(json!({
        "query": "", "count": 500, "offset": offset, "processingTypes": ["MANUAL", "SNAPSHOT"],
        "additionalProperties": []}))
}

#[tokio::test]
async fn discover_pages_lists_by_offset_and_offers_writable_properties() {
    let fake = Fake::start().await;
    let list = |id: &str, name: &str, object: &str| json!({"listId": id, "name": name, "processingType": "MANUAL", "objectTypeId": object});
    let p1 = json!({"lists": [list("11", "Signups", "0-1"), list("12", "Deals", "0-3")], "offset": 2, "hasMore": true, "total": 3});
    let p2 = json!({"lists": [list("13", "Customers", "0-1")], "offset": 3, "hasMore": false, "total": 3});
    fake.expect(search(0), ResponseTemplate::new(200).set_body_json(p1)).await;
    fake.expect(search(2), ResponseTemplate::new(200).set_body_json(p2)).await;
    let props = json!({"results": [
        {"name": "lifecyclestage", "label": "Lifecycle stage", "type": "enumeration", "fieldType": "radio",
         "options": [{"label": "Lead", "value": "lead", "displayOrder": 0, "hidden": false}]},
        {"name": "hs_object_id", "label": "Record ID", "type": "number", "fieldType": "number",
         "modificationMetadata": {"readOnlyValue": true}}]});
    let get = bearer(Expect::new("GET", "/crm/v3/properties/contacts"), PAT);
    fake.expect(get, ResponseTemplate::new(200).set_body_json(props)).await;
    let adapter = private_app(&fake);
    let all = adapter.discover().await.unwrap();
    let got: Vec<_> =
        all.iter().map(|o| (o.kind.as_str(), o.id.as_str(), o.name.as_str())).collect();
    assert_eq!(
        got,
        [
            ("list", "11", "Signups"),
            ("list", "13", "Customers"),
            ("property", "lifecyclestage", "Lifecycle stage")
        ]
    );
    assert_eq!(all[2].extra["options"][0]["value"], "lead");
    let lists = spec::load("lists.json");
    for body in fake.bodies("/crm/v3/lists/search").await {
        spec::check(&lists, "post", "/crm/v3/lists/search", &body);
    }
}

#[test]
fn the_spec_requires_what_the_list_search_sends() {
    let lists = spec::load("lists.json");
    let without = json!({"query": "", "count": 500, "offset": 0});
    let errors = spec::violations(&lists, "post", "/crm/v3/lists/search", &without);
    assert!(errors.iter().any(|e| e.contains("additionalProperties")), "{errors:?}");
}
