//! SendGrid: list upsert, dynamic template and plain email.

use crate::fake::*;
use crate::spec;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const KEY: &str = "SG.secret-key-value";
const AUTH: &str = "Bearer SG.secret-key-value";
const LIST: &str = "ca7a3796-e8a8-4029-9ccb-df8937940562";

fn sendgrid(fake: &Fake, extra: &str) -> Arc<dyn Adapter> {
    let yaml = format!("type: sendgrid\napi_key: ${{SG_KEY}}\nbase_url: {}\n{extra}", fake.uri());
    adapter(&yaml, &[("SG_KEY", KEY)])
}

fn rule(meta: Value) -> meshes::adapters::adapter::Delivery {
    delivery(meta, person())
}

fn upsert() -> Expect {
    Expect::new("PUT", "/v3/marketing/contacts").header("authorization", AUTH).json(json!({
        "list_ids": [LIST],
        "contacts": [{"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com"}]
    }))
}

fn accepted() -> ResponseTemplate {
    ResponseTemplate::new(202)
        .set_body_json(json!({"job_id": "2387e363-4104-4225-8960-4a5758492351"}))
}

#[tokio::test]
async fn add_to_list_upserts_the_contact() {
    let fake = Fake::start().await;
    fake.expect(upsert(), accepted()).await;
    assert_delivered(
        &deliver(&sendgrid(&fake, ""), &rule(json!({"action": "add_to_list", "id": LIST}))).await,
    );
    let spec = spec::load("tsg_mc_contacts_v3.yaml");
    spec::check(
        &spec,
        "put",
        "/v3/marketing/contacts",
        &fake.bodies("/v3/marketing/contacts").await[0],
    );
}

fn mail(body: Value) -> Expect {
    Expect::new("POST", "/v3/mail/send").header("authorization", AUTH).json(body)
}

fn to() -> Value {
    json!([{"email": "Ada@Example.com", "name": "Ada Lovelace"}])
}

#[tokio::test]
async fn send_email_template_sends_the_dynamic_template() {
    let fake = Fake::start().await;
    let body = json!({
        "from": {"email": "billing@acme.dev", "name": "Acme Billing"},
        "template_id": "d-13b8f94fbcae4ec6b75270d6cb59f932",
        "personalizations": [{
            "to": to(),
            "custom_args": {"meshes_delivery_id": "dlv_0193a1b2c3d4e5f6"},
            "dynamic_template_data": {"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace", "phone": "+441234"},
            "subject": "Hi Ada"
        }]
    });
    fake.expect(mail(body), ResponseTemplate::new(202)).await;
    let d = rule(
        json!({"action": "send_email_template", "id": "d-13b8f94fbcae4ec6b75270d6cb59f932",
                        "from": "Acme Billing <billing@acme.dev>", "subject": "Hi {{payload.first_name}}"}),
    );
    assert_delivered(&deliver(&sendgrid(&fake, ""), &d).await);
    spec::check(
        &spec::load("tsg_mail_v3.yaml"),
        "post",
        "/v3/mail/send",
        &fake.bodies("/v3/mail/send").await[0],
    );
}

#[tokio::test]
async fn send_email_renders_subject_and_body_with_the_default_sender() {
    let fake = Fake::start().await;
    let body = json!({
        "from": {"email": "hello@acme.dev"},
        "subject": "Welcome Ada",
        "content": [{"type": "text/plain", "value": "Hi Ada, your plan: "}],
        "personalizations": [{"to": to(), "custom_args": {"meshes_delivery_id": "dlv_0193a1b2c3d4e5f6"}}]
    });
    fake.expect(mail(body), ResponseTemplate::new(202)).await;
    // A rule sender that renders blank (no `sender` in the payload) falls
    // back to the connection's, never an empty sender.
    let d = rule(json!({"action": "send_email", "subject": "Welcome {{payload.first_name}}",
                        "body": "Hi {{payload.first_name}}, your plan: {{payload.plan}}",
                        "from": "{{payload.sender}}"}));
    assert_delivered(&deliver(&sendgrid(&fake, "from: hello@acme.dev\n"), &d).await);
    spec::check(
        &spec::load("tsg_mail_v3.yaml"),
        "post",
        "/v3/mail/send",
        &fake.bodies("/v3/mail/send").await[0],
    );
}

#[tokio::test]
async fn no_sender_is_a_mapping_error_and_sends_nothing() {
    let fake = Fake::start().await;
    let d = rule(json!({"action": "send_email_template", "id": "d-1"}));
    assert_permanent(&deliver(&sendgrid(&fake, ""), &d).await, Outcome::MappingError, "no sender");
}

#[tokio::test]
async fn a_mail_timeout_is_not_retried() {
    let fake = Fake::start().await;
    let body = json!({
        "from": {"email": "hello@acme.dev"}, "subject": "s", "content": [{"type": "text/plain", "value": "b"}],
        "personalizations": [{"to": to(), "custom_args": {"meshes_delivery_id": "dlv_0193a1b2c3d4e5f6"}}]
    });
    fake.expect(mail(body), ResponseTemplate::new(202).set_delay(Duration::from_secs(10))).await;
    let d = rule(
        json!({"action": "send_email", "subject": "s", "body": "b", "from": "hello@acme.dev"}),
    );
    let r = sendgrid(&fake, "").deliver(&d, Duration::from_millis(300)).await;
    assert_permanent(&r, Outcome::Timeout, "not retried automatically");
}

#[tokio::test]
async fn throttling_waits_until_the_reset_time() {
    let fake = Fake::start().await;
    let reset =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 30;
    let limited = ResponseTemplate::new(429)
        .insert_header("x-ratelimit-reset", reset.to_string().as_str())
        .set_body_json(json!({"errors": [{"field": null, "message": "too many requests"}]}));
    fake.expect(upsert(), limited).await;
    let r =
        deliver(&sendgrid(&fake, ""), &rule(json!({"action": "add_to_list", "id": LIST}))).await;
    let meshes::adapters::adapter::AttemptResult::Retry { code, after: Some(after), message } =
        r.result
    else {
        panic!("{r:?}")
    };
    assert_eq!(code, Outcome::RateLimited);
    assert!(after > Duration::from_secs(25) && after <= Duration::from_secs(30), "{after:?}");
    assert!(message.contains("too many requests"), "{message}");
}

#[tokio::test]
async fn errors_are_classified_with_sendgrids_message() {
    let fake = Fake::start().await;
    let bad = json!({"errors": [{"field": "list_ids[0]", "message": "invalid list id"}]});
    fake.expect(upsert(), ResponseTemplate::new(400).set_body_json(bad)).await;
    let r =
        deliver(&sendgrid(&fake, ""), &rule(json!({"action": "add_to_list", "id": LIST}))).await;
    assert_permanent(&r, Outcome::RejectedClientError, "invalid list id");

    let fake = Fake::start().await;
    let refused = json!({"errors": [{"field": null, "message": "The provided authorization grant is invalid, expired, or revoked"}]});
    fake.expect(upsert(), ResponseTemplate::new(401).set_body_json(refused)).await;
    let r =
        deliver(&sendgrid(&fake, ""), &rule(json!({"action": "add_to_list", "id": LIST}))).await;
    assert_permanent(&r, Outcome::AuthFailed, "authorization grant is invalid");
    assert_no_secret(&r, KEY);
}

#[test]
fn the_eu_region_builds() {
    assert!(try_adapter("type: sendgrid\napi_key: ${K}\nregion: eu\n", &[("K", "SG.x")]).is_ok());
}

#[test]
fn the_spec_check_rejects_bad_bodies() {
    let spec = spec::load("tsg_mail_v3.yaml");
    assert!(
        !spec::violations(&spec, "post", "/v3/mail/send", &json!({"from": {"email": "a@b.co"}}))
            .is_empty()
    );
}

fn page(path: &str, query: &[(&str, &str)], token: Option<&str>) -> Expect {
    let mut e = Expect::new("GET", path).header("authorization", AUTH);
    for (k, v) in query {
        e = e.query(k, v);
    }
    match token {
        Some(t) => e.query("page_token", t),
        None => e,
    }
}

#[tokio::test]
async fn discover_follows_page_tokens_for_lists_and_dynamic_templates() {
    let fake = Fake::start().await;
    let lists = "/v3/marketing/lists";
    let lq = [("page_size", "1000")];
    let next = format!("{}{lists}?page_size=1000&page_token=tok2", fake.uri());
    let p1 = json!({"result": [{"id": "l1", "name": "All", "contact_count": 3}], "_metadata": {"next": next}});
    let p2 = json!({"result": [{"id": "l2", "name": "Paid", "contact_count": 1}], "_metadata": {}});
    fake.expect(page(lists, &lq, None), ResponseTemplate::new(200).set_body_json(p1)).await;
    fake.expect(page(lists, &lq, Some("tok2")), ResponseTemplate::new(200).set_body_json(p2)).await;
    let tq = [("generations", "dynamic"), ("page_size", "200")];
    let t = json!({"result": [{"id": "d-1", "name": "Welcome", "generation": "dynamic"}], "_metadata": {}});
    fake.expect(page("/v3/templates", &tq, None), ResponseTemplate::new(200).set_body_json(t))
        .await;
    let got = discover(&sendgrid(&fake, "")).await.unwrap();
    assert_eq!(
        got,
        rows(&[("list", "l1", "All"), ("list", "l2", "Paid"), ("template", "d-1", "Welcome")])
    );
}

#[tokio::test]
async fn mapped_custom_fields_go_in_custom_fields_by_id() {
    let fake = Fake::start().await;
    let contact = json!({
        "first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com",
        "custom_fields": {"e1_T": "pro", "e2_N": 3, "e3_T": "true"}
    });
    let body = json!({"list_ids": [LIST], "contacts": [contact]});
    let upsert = Expect::new("PUT", "/v3/marketing/contacts").header("authorization", AUTH);
    fake.expect(upsert.json(body), accepted()).await;
    let mut payload = person();
    payload["seats"] = json!(3);
    let mut d = rule(json!({"action": "add_to_list", "id": LIST}));
    d.payload = payload.into();
    d.mapping = Arc::new(
        serde_saphyr::from_str(
            "e1_T: { value: pro }\ne2_N: { from: payload.seats }\ne3_T: { value: true }\n",
        )
        .unwrap(),
    );
    assert_delivered(&deliver(&sendgrid(&fake, ""), &d).await);
    let sent = &fake.bodies("/v3/marketing/contacts").await[0];
    spec::check(&spec::load("tsg_mc_contacts_v3.yaml"), "put", "/v3/marketing/contacts", sent);
}

/// ContactRequest caps names at 50 characters: longer ones are cut (by
/// characters, so a multi-byte name is not split) instead of failing the
/// whole upsert; an email over 254 characters is refused, naming it.
#[tokio::test]
async fn long_names_are_cut_to_fifty_characters() {
    let fake = Fake::start().await;
    let first = "É".repeat(60);
    let last = format!("{}xyz", "L".repeat(50));
    let body = json!({"list_ids": [LIST], "contacts": [{
        "first_name": "É".repeat(50), "last_name": "L".repeat(50), "email": "Ada@Example.com"}]});
    let upsert = Expect::new("PUT", "/v3/marketing/contacts").header("authorization", AUTH);
    fake.expect(upsert.json(body), accepted()).await;
    let payload = json!({"email": "Ada@Example.com", "first_name": first, "last_name": last});
    let d = delivery(json!({"action": "add_to_list", "id": LIST}), payload);
    assert_delivered(&deliver(&sendgrid(&fake, ""), &d).await);
    let sent = &fake.bodies("/v3/marketing/contacts").await[0];
    spec::check(&spec::load("tsg_mc_contacts_v3.yaml"), "put", "/v3/marketing/contacts", sent);

    let fake = Fake::start().await;
    let email = format!("{}@example.com", "a".repeat(250));
    let d = delivery(json!({"action": "add_to_list", "id": LIST}), json!({"email": email}));
    let r = deliver(&sendgrid(&fake, ""), &d).await;
    assert_permanent(
        &r,
        Outcome::MappingError,
        "the payload's `email` is 262 characters long; SendGrid accepts at most 254",
    );
}

/// A template's subject override that renders empty is left out, so the
/// template's own subject applies (the spec wants at least one character).
#[tokio::test]
async fn an_empty_subject_override_is_left_out() {
    let fake = Fake::start().await;
    let body = json!({
        "from": {"email": "hello@acme.dev"},
        "template_id": "d-1",
        "personalizations": [{
            "to": to(),
            "custom_args": {"meshes_delivery_id": "dlv_0193a1b2c3d4e5f6"},
            "dynamic_template_data": {"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace", "phone": "+441234"}
        }]
    });
    fake.expect(mail(body), ResponseTemplate::new(202)).await;
    let d = rule(
        json!({"action": "send_email_template", "id": "d-1", "subject": "{{payload.missing}}"}),
    );
    assert_delivered(&deliver(&sendgrid(&fake, "from: hello@acme.dev\n"), &d).await);
    let sent = &fake.bodies("/v3/mail/send").await[0];
    spec::check(&spec::load("tsg_mail_v3.yaml"), "post", "/v3/mail/send", sent);
}

/// A plain email whose subject or body renders empty is a mapping error
/// naming the field, and nothing is sent (SendGrid would answer 400).
#[tokio::test]
async fn an_empty_subject_or_body_fails_the_mail_naming_the_field() {
    for (subject, body, field) in
        [("{{payload.missing}}", "Hi", "subject"), ("Welcome", " {{payload.missing}}", "body")]
    {
        let fake = Fake::start().await;
        let d = rule(json!({"action": "send_email", "subject": subject, "body": body}));
        let r = deliver(&sendgrid(&fake, "from: hello@acme.dev\n"), &d).await;
        let want = format!(
            "`metadata.{field}` rendered empty for this event; SendGrid needs at least one character"
        );
        assert_permanent(&r, Outcome::MappingError, &want);
    }
}
