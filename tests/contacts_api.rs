//! The contacts API end to end: upsert matching and merging, lookups, tags,
//! tracked events, suppression paging, the activity log, bad input and
//! credentials. Every answer is also checked against the OpenAPI document
//! (see `tests/contacts/mod.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod contacts;
mod support;

/// Bad input and missing credentials.
#[path = "contacts_api/refused.rs"]
mod refused;

use contacts::{Api, ids, params};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_creates_then_updates_matching_email_case_insensitively() {
    let api = Api::start().await;
    let (s, b) = api
        .upsert(json!({"external_id": "u1", "email": "Ada@Example.com", "first_name": "Ada",
            "custom_fields": {"plan": "free", "seats": 3}, "tag_names": ["beta"]}))
        .await;
    assert_eq!(s, 201, "{b}");
    let c = &b["contact"];
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(
        (c["email"].as_str(), c["first_name"].as_str()),
        (Some("Ada@Example.com"), Some("Ada"))
    );
    assert_eq!(
        (&c["tags"], &c["unsubscribed"], &c["unsubscribed_at"]),
        (&json!(["beta"]), &json!(false), &Value::Null)
    );

    // Matched by email, case-insensitively: an update; omitted fields and keys kept.
    let body = json!({"email": "ada@example.COM", "last_name": "Lovelace", "custom_fields": {"plan": "pro"}});
    let (s, b) = api.upsert(body.clone()).await;
    assert_eq!(s, 200, "{b}");
    let c = &b["contact"];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(
        (c["first_name"].as_str(), c["last_name"].as_str()),
        (Some("Ada"), Some("Lovelace"))
    );
    assert_eq!(c["custom_fields"], json!({"plan": "pro", "seats": 3}), "omitted keys are kept");
    assert_eq!(c["email"], "Ada@Example.com", "matching by email keeps the stored spelling");
    // The same upsert again changes nothing, and says 200.
    let (s, again) = api.upsert(body).await;
    assert_eq!((s, &again["contact"]["updated_at"]), (200, &c["updated_at"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_id_matches_first_and_null_clears() {
    let api = Api::start().await;
    let id = api
        .create(json!({"external_id": "u1", "email": "ada@example.com", "first_name": "Ada",
            "custom_fields": {"plan": "pro", "seats": 3}, "tag_names": ["beta"]}))
        .await;
    // external_id first: it matches although the email is new, and the email moves.
    let c = api
        .contact(json!({"external_id": "u1", "email": "new@example.com",
            "custom_fields": {"seats": null}, "first_name": null, "tag_names": ["vip2"]}))
        .await;
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["custom_fields"], json!({"plan": "pro"}), "null removes a custom field");
    assert_eq!(c["first_name"], Value::Null, "null clears a standard field");
    assert_eq!(c["tags"], json!(["beta", "vip2"]), "tag_names only add");

    let (s, b) = api.find("email=NEW%40example.com").await;
    assert_eq!((s, b["contact"]["id"].as_str()), (200, Some(id.as_str())));
    let (s, b) = api.find("email=ada%40example.com").await;
    assert_eq!((s, b["error"]["name"].as_str()), (404, Some("NotFoundError")), "old email: {b}");
    let (s, b) = api.find("external_id=u1").await;
    assert_eq!((s, b["contact"]["email"].as_str()), (200, Some("new@example.com")));
    let (s, b) = api.find("").await;
    assert_eq!(params(s, &b), ["email"]);
    let (s, b) = api.find("email=a%40b.c&external_id=u1").await;
    assert_eq!(params(s, &b), ["email"], "exactly one of the two");
    // The detail route takes an email address in place of the id.
    let (s, b) = api.by_id("New@Example.com").await;
    assert_eq!((s, b["contact"]["id"].as_str()), (200, Some(id.as_str())));
    assert_eq!(b["contact"]["enrollments"], json!([]));
    let (s, b) = api.by_id("nobody@example.com").await;
    assert_eq!((s, b["error"]["name"].as_str()), (404, Some("NotFoundError")));
    // So do the other contact routes.
    let (s, b) = api.add_tags("new@example.com", json!({"tag_names": ["by-email"]})).await;
    assert_eq!((s, b["contact"]["id"].as_str()), (200, Some(id.as_str())));
    let (s, b) = api.activity("NEW@example.com", "").await;
    assert_eq!(s, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_naming_two_contacts_are_a_409_that_changes_nothing() {
    let api = Api::start().await;
    let ada = api.create(json!({"external_id": "u1", "email": "ada@example.com"})).await;
    let bob = api.create(json!({"external_id": "u2", "email": "bob@example.com"})).await;
    let (s, b) =
        api.upsert(json!({"external_id": "u1", "email": "BOB@example.com", "name": "x"})).await;
    assert_eq!((s, b["error"]["name"].as_str()), (409, Some("ConflictError")), "{b}");
    assert!(b["message"].as_str().unwrap().contains(&bob), "{b}");
    // An email whose contact has another external_id is a conflict too.
    let (s, _) = api.upsert(json!({"external_id": "u3", "email": "bob@example.com"})).await;
    assert_eq!(s, 409);
    let (_, b) = api.by_id(&ada).await;
    assert_eq!(
        (b["contact"]["email"].as_str(), &b["contact"]["name"]),
        (Some("ada@example.com"), &Value::Null)
    );
    assert_eq!(b["contact"]["enrollments"], json!([]));
    let (s, _) = api.find("external_id=u3").await;
    assert_eq!(s, 404, "the refused upsert created nothing");
    // An email without an external_id gets linked to the new one instead.
    let cy = api.create(json!({"email": "cy@example.com"})).await;
    let c = api.contact(json!({"external_id": "u4", "email": "cy@example.com"})).await;
    assert_eq!((c["id"].as_str(), c["external_id"].as_str()), (Some(cy.as_str()), Some("u4")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_fire_automations_in_the_same_write() {
    let api = Api::start().await;
    let id = api.create(json!({"email": "cy@example.io"})).await;
    let (s, b) = api.add_tags(&id, json!({"tag_names": ["vip"]})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["contact"]["tags"], json!(["seen", "vip"]), "vip-seen ran before the answer");
    let (s, b) = api.remove_tag(&id, "vip").await;
    assert_eq!((s, &b["contact"]["tags"]), (200, &json!(["seen"])));
    let (s, b) = api.remove_tag(&id, "vip").await;
    assert_eq!((s, &b["contact"]["tags"]), (200, &json!(["seen"])), "an absent tag is fine");

    let (s, b) = api.activity(&id, "").await;
    assert_eq!(s, 200, "{b}");
    let runs: Vec<&Value> =
        b["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "automation").collect();
    assert_eq!(runs.len(), 1, "{b:#}");
    assert_eq!(runs[0]["automation"], "vip-seen");
    assert_eq!(runs[0]["trigger"], json!({"kind": "tag_added", "name": "vip"}));
    assert_eq!(
        runs[0]["actions"][0],
        json!({"action": "add_tag", "target": "seen",
        "outcome": "done", "detail": null, "event_id": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_runs_custom_event_automations_for_known_contacts_only() {
    let api = Api::start().await;
    let id = api.create(json!({"external_id": "u1", "email": "cy@example.io"})).await;
    let body = json!({"event_name": "activated", "email": "CY@example.io", "properties": {"feature": "export"}});
    let (s, b) = api.track(body).await;
    assert_eq!(
        (s, b["contact_id"].as_str(), b["event_name"].as_str()),
        (202, Some(id.as_str()), Some("activated"))
    );
    let (s, b) = api.track(json!({"event_name": "activated", "email": "nobody@example.io"})).await;
    assert_eq!((s, b["error"]["name"].as_str()), (404, Some("NotFoundError")), "{b}");
    let (s, b) = api.track(json!({"event_name": "activated", "external_id": "u2"})).await;
    assert_eq!(s, 404, "{b}");
    // The condition does not hold: a run is logged, nothing is done.
    let (s, _) = api.track(json!({"event_name": "activated", "external_id": "u1"})).await;
    assert_eq!(s, 202);

    let (_, b) = api.by_id(&id).await;
    let e = &b["contact"]["enrollments"];
    assert_eq!(
        (e[0]["sequence"].as_str(), e[0]["status"].as_str()),
        (Some("onboarding"), Some("active")),
        "{b}"
    );
    assert!(e[0]["next_step_at"].is_string() && e[0]["step"].is_u64(), "{b}");
    let (_, b) = api.activity(&id, "").await;
    let runs: Vec<(&Value, &Value)> = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["automation"] == "activated-onboarding")
        .map(|r| (&r["condition"], &r["actions"]))
        .collect();
    assert_eq!(runs.len(), 2, "{b:#}");
    assert_eq!(
        runs[0],
        (&json!(false), &json!([])),
        "newest first: the run whose condition failed"
    );
    assert_eq!((runs[1].0, &runs[1].1[0]["action"]), (&json!(true), &json!("enroll")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_pages_newest_first_without_repeats() {
    let api = Api::start().await;
    let id = api.create(json!({"email": "cy@example.io"})).await;
    for tag in ["vip", "x"] {
        api.remove_tag(&id, "vip").await;
        api.add_tags(&id, json!({"tag_names": [tag, "vip"]})).await;
    }
    let (_, all) = api.activity(&id, "").await;
    let all = ids(&all);
    assert!(all.len() >= 2, "{all:?}");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, p) = api.activity(&id, &format!("limit=1&cursor={cursor}")).await;
        assert_eq!((s, p["limit"].as_u64(), p["count"].as_u64()), (200, Some(1), Some(1)));
        seen.extend(ids(&p));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, all);
    let (s, b) = api.activity(&id, "cursor=oops").await;
    assert_eq!(params(s, &b), ["cursor"]);
    let (s, b) = api.activity(&id, "limit=201").await;
    assert_eq!(params(s, &b), ["limit"]);
    // `as_of` pins the suppression list, not activity pages: refused here.
    let (s, b) = api.activity(&id, "as_of=2026-01-01T00:00:00Z").await;
    assert_eq!(params(s, &b), ["query"], "{b}");
    let (s, _) = api.activity("0190c2b4-6c1e-7a2b-9c3d-4e5f60718293", "").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_is_idempotent_and_keeps_the_first_reason() {
    let api = Api::start().await;
    let id = api.create(json!({"external_id": "a"})).await;
    let (s, a) = api.unsubscribe(&id, None).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (&a["contact"]["unsubscribed"], &a["contact"]["suppression"]),
        (&json!(true), &json!("unsubscribed"))
    );
    assert!(a["contact"]["unsubscribed_at"].is_string());
    let (_, again) = api.unsubscribe(&id, Some(json!({"reason": "bounced"}))).await;
    assert_eq!(again["contact"]["unsubscribed_at"], a["contact"]["unsubscribed_at"]);
    assert_eq!(again["contact"]["suppression"], "unsubscribed");
    let other = api.create(json!({"external_id": "b"})).await;
    let (s, b) = api.unsubscribe(&other, Some(json!({"reason": "complained"}))).await;
    assert_eq!((s, b["contact"]["suppression"].as_str()), (200, Some("complained")));
    for body in [json!({"reason": "spam"}), json!({"reason": 1}), json!({"why": "x"}), json!([])] {
        let (s, b) = api.unsubscribe(&other, Some(body.clone())).await;
        assert_eq!(params(s, &b).len(), 1, "{body}");
    }
    // Opting back in lifts the suppression (twice is fine) and leaves the list.
    for _ in 0..2 {
        let (s, b) = api.resubscribe(&id).await;
        assert_eq!(s, 200, "{b}");
        let c = &b["contact"];
        assert_eq!(
            (&c["unsubscribed"], &c["suppression"], &c["unsubscribed_at"]),
            (&json!(false), &Value::Null, &Value::Null)
        );
    }
    let (_, list) = api.unsubscribed("").await;
    assert_eq!(ids(&list), vec![other]);
    let (s, _) = api.resubscribe("0190c2b4-6c1e-7a2b-9c3d-4e5f60718293").await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppression_list_pages_as_of_an_instant() {
    let api = Api::start().await;
    let mut all = Vec::new();
    for who in ["a", "b", "c"] {
        all.push(
            api.create(json!({"external_id": who, "email": format!("{who}@example.com")})).await,
        );
    }
    api.unsubscribe(&all[0], None).await;
    api.unsubscribe(&all[1], Some(json!({"reason": "bounced"}))).await;
    let (s, first) = api.unsubscribed("limit=1").await;
    assert_eq!(s, 200, "{first}");
    let as_of = first["as_of"].as_str().unwrap().to_string();
    assert_eq!(
        (ids(&first), &first["records"][0]["reason"]),
        (vec![all[0].clone()], &json!("unsubscribed"))
    );
    // Let the clock pass `as_of` (seen through the list's own echo), so c
    // is suppressed strictly after it.
    eventually("the clock to pass as_of", Duration::from_secs(5), || async {
        let (_, b) = api.unsubscribed("").await;
        (b["as_of"].as_str().unwrap() > as_of.as_str()).then_some(())
    })
    .await;
    api.unsubscribe(&all[2], None).await;

    let cursor = first["next_cursor"].as_str().unwrap();
    let (s, second) = api.unsubscribed(&format!("limit=1&as_of={as_of}&cursor={cursor}")).await;
    assert_eq!((s, &second["as_of"]), (200, &json!(as_of)), "as_of is echoed: {second}");
    assert_eq!(ids(&second), [all[1].clone()], "c came after as_of: {second}");
    assert_eq!(
        (&second["next_cursor"], &second["records"][0]["reason"]),
        (&Value::Null, &json!("bounced"))
    );
    let (_, now) = api.unsubscribed("").await;
    assert_eq!(ids(&now), all, "oldest first, all three now");

    for (query, param) in [
        ("cursor=12", "cursor"),
        ("as_of=yesterday", "as_of"),
        ("limit=0", "limit"),
        ("as_of=99999999999-01-01T00:00:00Z", "as_of"),
        ("asof=2026-01-01T00:00:00Z", "query"),
    ] {
        let (s, b) = api.unsubscribed(query).await;
        assert_eq!(params(s, &b), [param], "{query}");
    }
    let (_, b) = api.unsubscribed("asof=2026-01-01T00:00:00Z").await;
    let msg = b["message"].as_str().unwrap();
    assert!(
        msg.contains("unknown field `asof`, expected one of `limit`, `cursor`, `as_of`"),
        "{msg}"
    );
}
