//! HubSpot property values: whatever the mapping produced is sent as the
//! string HubSpot's contacts spec requires.

use crate::fake::*;
use crate::hubspot::{PAT, bearer, create, list_ok, lookup, membership, not_found, private_app};
use crate::spec;
use meshes::config::model::Outcome;
use serde_json::json;
use wiremock::ResponseTemplate;

#[tokio::test]
async fn mapped_numbers_booleans_and_lists_are_sent_as_strings() {
    let rule_mapping: meshes::config::mapping::Mapping = serde_saphyr::from_str(
        "seats: { from: payload.seats, transforms: [to_number] }\n\
         ratio: { from: payload.ratio, transforms: [to_number] }\n\
         big: { from: payload.big, transforms: [to_number] }\n\
         trial: { from: payload.trial, transforms: [to_boolean] }\n\
         beta: { from: payload.beta }\n\
         flavours: { from: payload.flavours }\n",
    )
    .unwrap();
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    let extra = json!({"seats": "12", "ratio": "0.25", "big": "1000000000000000000000",
        "trial": "true", "beta": "false", "flavours": "chocolate;strawberry;3"});
    fake.expect(create(extra), ResponseTemplate::new(201).set_body_json(json!({"id": "777"})))
        .await;
    fake.expect(membership("add", "777", PAT), list_ok()).await;
    let mut payload = person();
    payload["seats"] = json!(" 12 ");
    payload["ratio"] = json!(0.25);
    payload["big"] = json!("1e21");
    payload["trial"] = json!("yes");
    payload["beta"] = json!(false);
    payload["flavours"] = json!(["chocolate", "strawberry", 3]);
    let mut d = delivery(json!({"action": "add_to_list", "id": 123}), payload);
    d.mapping = meshes::adapters::mapping::effective(None, Some(&rule_mapping));
    assert_delivered(&deliver(&private_app(&fake), &d).await);
    let sent = fake.bodies("/crm/v3/objects/contacts").await;
    spec::check(&spec::load("contacts.json"), "post", "/crm/v3/objects/contacts", &sent[0]);
}

#[tokio::test]
async fn a_mapped_object_is_a_mapping_error_and_creates_nothing() {
    let rule_mapping: meshes::config::mapping::Mapping = serde_saphyr::from_str(
        "address: { from: payload.address }
",
    )
    .unwrap();
    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    let mut payload = person();
    payload["address"] = json!({"city": "London"});
    let mut d = delivery(json!({"action": "add_to_list", "id": 123}), payload);
    d.mapping = meshes::adapters::mapping::effective(None, Some(&rule_mapping));
    let r = deliver(&private_app(&fake), &d).await;
    assert_permanent(&r, Outcome::MappingError, "HubSpot property `address`");
}

#[test]
fn the_spec_types_property_values_as_strings() {
    let contacts = spec::load("contacts.json");
    let numeric = json!({"properties": {"seats": 12}, "associations": []});
    assert!(!spec::violations(&contacts, "post", "/crm/v3/objects/contacts", &numeric).is_empty());
}

#[tokio::test]
async fn mapped_fields_reach_the_created_contact() {
    // The connection maps two fields; the rule overrides `plan` and adds more.
    let conn: meshes::adapters::ConnectionConfig = serde_saphyr::from_str(
        "type: hubspot\naccess_token: ${HS_TOKEN}\nmapping:\n  company: { value: Acme }\n  plan: { value: connection-plan }\n",
    )
    .unwrap();
    let rule_mapping: meshes::config::mapping::Mapping = serde_saphyr::from_str(
        "first_name: { from: payload.profile.given, transforms: [trim, upper] }\n\
         plan: { from: payload.plan, transforms: [upper], default: FREE }\n\
         signup_date: { from: payload.created, transforms: [to_date] }\n\
         seats: { from: payload.seats, transforms: [to_number], on_error: warn_action }\n",
    )
    .unwrap();

    let fake = Fake::start().await;
    fake.expect(lookup(PAT), not_found()).await;
    let properties = json!({
        "firstname": "GRACE", "lastname": "Lovelace", "phone": "+441234",
        "company": "Acme", "plan": "FREE", "signup_date": "2023-11-14",
        "email": "ada@example.com"
    });
    let body = json!({"properties": properties, "associations": []});
    fake.expect(
        bearer(Expect::new("POST", "/crm/v3/objects/contacts").json(body.clone()), PAT),
        ResponseTemplate::new(201).set_body_json(json!({"id": "777"})),
    )
    .await;
    fake.expect(membership("add", "777", PAT), list_ok()).await;

    let mut payload = person();
    payload["profile"] = json!({"given": "  grace "});
    payload["created"] = json!(1_700_000_000);
    payload["seats"] = json!("a few");
    let mut d = delivery(json!({"action": "add_to_list", "id": 123}), payload);
    d.mapping = meshes::adapters::mapping::effective(conn.mapping(), Some(&rule_mapping));
    assert_delivered(&deliver(&private_app(&fake), &d).await);

    let sent = fake.bodies("/crm/v3/objects/contacts").await;
    assert_eq!(sent, vec![body]);
    spec::check(&spec::load("contacts.json"), "post", "/crm/v3/objects/contacts", &sent[0]);
    assert!(
        d.warnings
            .joined()
            .unwrap()
            .contains("mapping field `seats`: `payload.seats` is \"a few\"")
    );
}
