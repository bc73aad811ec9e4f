//! What a contact may hold and how its fields are told apart: the value and
//! record caps, reserved custom-field names, `set_field` values checked as
//! the API checks them, the stored email spelling, the triggers a new
//! contact fires, and the workspace on condition metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contact::{MAX_CONTACT_BYTES, MAX_CUSTOM_VALUE_BYTES, Upsert};
use super::service::Who;
use super::tests::{WS, custom, harness, invalid};
use crate::store::event_key;
use serde_json::{Value, json};

fn by_email(email: &str) -> Who {
    Who { external_id: None, email: Some(email.into()) }
}

#[tokio::test]
async fn custom_values_records_and_reserved_keys_are_refused_unstored() {
    let h = harness("");
    let c = h.upsert("v@example.com", custom(&[("plan", json!("free"))]), 1).await;
    let big = json!("x".repeat(MAX_CUSTOM_VALUE_BYTES));
    let (param, msg) =
        invalid(h.upsert_who(by_email("v@example.com"), custom(&[("blob", big)])).await);
    assert_eq!(param, "custom_fields.blob");
    assert!(msg.contains("16386 bytes") && msg.contains("at most 16384"), "{msg}");
    let (param, msg) = invalid(
        h.upsert_who(by_email("v@example.com"), custom(&[("email", json!("x@y.z"))])).await,
    );
    assert_eq!(param, "custom_fields.email");
    assert!(msg.contains("reserved"), "{msg}");
    // Each value under its cap, the record over its own.
    let pairs: Vec<(String, Value)> =
        (0..20).map(|i| (format!("k{i}"), json!("x".repeat(15_000)))).collect();
    let mut u = Upsert::default();
    u.custom_fields.extend(pairs);
    let (param, msg) = invalid(h.upsert_who(by_email("v@example.com"), u).await);
    assert_eq!(param, "custom_fields");
    assert!(msg.contains(&format!("at most {MAX_CONTACT_BYTES}")), "{msg}");
    let stored = h.store.contact(event_key(&c.id).unwrap()).unwrap().unwrap();
    assert_eq!(stored, c, "nothing refused was stored");
}

#[tokio::test]
async fn set_field_checks_values_as_the_api_does() {
    let h = harness(
        r#"
automations:
  - id: fill
    trigger: { contact_updated: [go] }
    actions:
      - { set_field: { field: first_name, value: "{{contact.long}}" } }
      - { set_field: { field: last_name, value: "{{contact.missing}}" } }
      - { set_field: { field: custom_fields.big, value: "{{contact.long}}{{contact.long}}{{contact.long}}{{contact.long}}" } }
      - { set_field: { field: name, value: "  {{contact.short}}" } }
"#,
    );
    let mut u = custom(&[("long", json!("s".repeat(5_000))), ("short", json!("Ada"))]);
    u.fields.insert("first_name", json!("Grace"));
    u.fields.insert("last_name", json!("Hopper"));
    h.upsert("f@example.com", u, 1).await;
    let c = h.upsert("f@example.com", custom(&[("go", json!(1))]), 2).await;
    assert_eq!(c.first_name.as_deref(), Some("Grace"), "a 5,000-character render is refused");
    assert_eq!(c.last_name, None, "an empty render clears the field");
    assert_eq!(c.name.as_deref(), Some("  Ada"));
    assert!(!c.custom_fields.contains_key("big"));
    let run = h.activity(&c).into_iter().find(|a| a["automation"] == "fill").unwrap();
    let outcome = |i: usize| {
        let a = &run["actions"][i];
        (a["outcome"].as_str().unwrap().to_string(), a["detail"].as_str().unwrap_or("").to_string())
    };
    let (o, detail) = outcome(0);
    assert_eq!(o, "failed");
    assert!(
        detail.starts_with(
            "the rendered value (5000 characters) was refused: expected a string of 1 to 200"
        ),
        "{detail}"
    );
    assert!(!detail.contains("sss"), "the value is not echoed: {detail}");
    assert_eq!(outcome(1).0, "done");
    // (Reserved names such as `custom_fields.email` are refused by
    // `validate`: the invalid-automation fixture.)
    let (o, detail) = outcome(2);
    assert!(o == "failed" && detail.contains("20002 bytes"), "{o} {detail}");
    assert_eq!(outcome(3).0, "done");
}

#[tokio::test]
async fn matching_by_email_keeps_the_stored_spelling() {
    let h = harness("");
    h.upsert("kate@example.com", Upsert::default(), 1).await;
    // U+212A (Kelvin sign) lowercases to `k`: the same key, not a new address.
    let c = h.upsert_who(by_email("\u{212A}ate@example.com"), Upsert::default()).await.unwrap();
    assert_eq!(c.email.as_deref(), Some("kate@example.com"));
    let c = h.upsert_who(by_email("KATE@example.com"), Upsert::default()).await.unwrap();
    assert_eq!(c.email.as_deref(), Some("kate@example.com"));
    // Through the external id, a new address is an explicit change.
    let who = Who { external_id: Some("u1".into()), email: Some("Kate@Example.com".into()) };
    let c = h.upsert_who(who, Upsert::default()).await.unwrap();
    assert_eq!(
        (c.email.as_deref(), c.external_id.as_deref()),
        (Some("kate@example.com"), Some("u1"))
    );
    let who = Who { external_id: Some("u1".into()), email: Some("k2@example.com".into()) };
    assert_eq!(
        h.upsert_who(who, Upsert::default()).await.unwrap().email.as_deref(),
        Some("k2@example.com")
    );
}

#[tokio::test]
async fn a_new_contact_fires_created_and_tag_added_but_not_updated() {
    let h = harness(
        r#"
connections:
  crm: { type: log }
automations:
  - { id: updated, trigger: contact_updated, actions: [ { add_tag: updated } ] }
  - id: tagged
    trigger: { tag_added: vip }
    actions: [ { notify: { connection: crm, metadata: { action: log } } } ]
"#,
    );
    let mut u = Upsert { tag_names: vec!["vip".into()], ..Upsert::default() };
    u.fields.insert("first_name", json!("Ada"));
    let c = h.upsert("new@example.com", u, 1).await;
    assert_eq!(c.tags, ["vip"], "no contact_updated for a creation");
    let kinds: Vec<Value> = h.activity(&c).iter().map(|a| a["trigger"]["kind"].clone()).collect();
    assert_eq!(kinds, [json!("tag_added")]);
    assert_eq!(h.deliveries().len(), 1);
}

/// A custom field stored under a reserved name before those were refused
/// does not fire triggers narrowed to the standard field.
#[tokio::test]
async fn narrowed_triggers_ignore_custom_fields_named_like_standard_ones() {
    let h = harness(
        r#"
automations:
  - { id: unsub, trigger: { contact_updated: [unsubscribed] }, actions: [ { add_tag: unsub } ] }
  - { id: mail, trigger: { contact_updated: [email] }, actions: [ { add_tag: mail } ] }
  - { id: plan, trigger: { contact_updated: [plan] }, actions: [ { add_tag: plan } ] }
"#,
    );
    let c = h.upsert("n@example.com", Upsert::default(), 1).await;
    let (rt, id) = (h.rt.clone(), c.id.clone());
    let c = h
        .store
        .writer()
        .run(move |t| {
            let stored = t.contact(event_key(&id).unwrap())?;
            let mut edited = stored.clone().unwrap();
            let mut ch = super::contact::Changes::new();
            for (k, v) in
                [("unsubscribed", json!(true)), ("email", json!("x@y.z")), ("plan", json!("pro"))]
            {
                super::contact::set_custom(&mut edited, k, v, &mut ch);
            }
            let mut run =
                super::engine::Run::new(t, rt.workspace(WS).unwrap(), 2, Some(edited), stored);
            run.fire_changes(ch, 0);
            Ok(run.finish()?.0.unwrap())
        })
        .await
        .unwrap();
    assert_eq!(c.tags, ["plan"]);
}

#[test]
fn condition_metrics_carry_the_workspace() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let h = harness(
        "automations:\n  - { id: bad, trigger: contact_created, when: 'contact.email', actions: [ { add_tag: x } ] }\n",
    );
    let firing = super::compiled::Firing {
        kind: crate::config::automation::TriggerKind::ContactCreated,
        name: None,
        fields: Vec::new(),
    };
    let ws = h.rt.workspace(WS).unwrap();
    let a = ws.automations.matching(&firing).next().unwrap().clone();
    metrics::with_local_recorder(&recorder, || super::engine::condition_failed(WS, &a, "x"));
    let text = handle.render();
    let want = format!(
        "meshes_automation_condition_errors_total{{workspace=\"{WS}\",automation=\"bad\"}} 1"
    );
    assert!(text.contains(&want), "{text}");
}
