//! Refused contact requests: bad bodies, ids, tags and track calls are
//! 400s naming each field, and every route needs a machine key.

use super::contacts::{Api, params};
use super::support::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upserts_are_a_400_naming_each_field() {
    let api = Api::start().await;
    let many: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let twenty: serde_json::Map<String, Value> =
        (0..20).map(|i| (format!("k{i}"), json!("x".repeat(15_000)))).collect();
    let x = |extra: Value| {
        let mut o = json!({"external_id": "x"});
        o.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        o
    };
    let cases = [
        (json!({}), vec!["external_id"]),
        (json!({"name": "Ada"}), vec!["external_id"]),
        (json!([]), vec!["body"]),
        (json!({"email": 5}), vec!["email"]),
        (json!({"email": "not-an-email"}), vec!["email"]),
        (json!({"external_id": " "}), vec!["external_id"]),
        (x(json!({"foo": 1, "bar": 2})), vec!["foo", "bar"]),
        (x(json!({"first_name": "a".repeat(201)})), vec!["first_name"]),
        (x(json!({"phone": ["1"]})), vec!["phone"]),
        (x(json!({"custom_fields": [1]})), vec!["custom_fields"]),
        (x(json!({"custom_fields": many})), vec!["custom_fields"]),
        (x(json!({"custom_fields": {"": 1}})), vec!["custom_fields"]),
        (
            x(json!({"tag_names": ["", "ok", 3, "a\u{1}"]})),
            vec!["tag_names[0]", "tag_names[2]", "tag_names[3]"],
        ),
        (x(json!({"tag_names": vec!["t"; 51]})), vec!["tag_names"]),
        (x(json!({"tag_names": "vip"})), vec!["tag_names"]),
        // Values are capped by size, and keys may not pass for standard fields.
        (x(json!({"custom_fields": {"blob": "x".repeat(16 * 1024)}})), vec!["custom_fields.blob"]),
        (
            x(json!({"custom_fields": {"email": "a@b.c", "tags": [], "plan": "ok"}})),
            vec!["custom_fields.email", "custom_fields.tags"],
        ),
        // Each value fits, the contact would not.
        (x(json!({"custom_fields": twenty})), vec!["custom_fields"]),
    ];
    for (body, want) in cases {
        let (s, b) = api.upsert(body.clone()).await;
        assert_eq!(params(s, &b), want, "{body}");
    }
    let (_, b) = api.upsert(json!({"email": 5})).await;
    assert!(b["message"].as_str().unwrap().ends_with("found a number `5`"), "{b}");
    let (_, b) = api.upsert(x(json!({"custom_fields": {"blob": "x".repeat(16 * 1024)}}))).await;
    let msg = b["message"].as_str().unwrap();
    assert!(msg.ends_with("is 16386 bytes as JSON; at most 16384 are kept"), "{msg}");
    let (_, b) = api.upsert(x(json!({"foo": 1}))).await;
    assert!(b["message"].as_str().unwrap().contains("expected only: external_id, email"), "{b}");
    let (s, _) = api.find("external_id=x").await;
    assert_eq!(s, 404, "no refused upsert created a contact");

    // Too large (413) and not JSON (415) are refused before parsing.
    let (s, b) = api.upsert(x(json!({"custom_fields": {"blob": "x".repeat(1 << 20)}}))).await;
    assert_eq!((s, b["error"]["name"].as_str()), (413, Some("PayloadTooLargeError")));
    let url = format!("{}/api/v1/contacts/upsert", api.gw.base);
    let resp =
        api.gw.http.post(url).bearer_auth(api.gw.jwt()).body("external_id=x").send().await.unwrap();
    assert_eq!(resp.status(), 415);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_tags_and_track_bodies_are_400s() {
    let api = Api::start().await;
    let id = api.create(json!({"external_id": "x"})).await;
    for (body, want) in [
        (json!({"tag_names": []}), "tag_names"),
        (json!({}), "tag_names"),
        (json!({"tags": ["a"]}), "tags"),
    ] {
        let (s, b) = api.add_tags(&id, body).await;
        assert!(params(s, &b).contains(&want.to_string()), "{b}");
    }
    let (s, b) = api.add_tags("nope", json!({"tag_names": ["a"]})).await;
    assert_eq!(params(s, &b), ["id"]);
    let (s, b) = api.by_id("not-a-uuid").await;
    assert_eq!(params(s, &b), ["id"]);
    assert!(b["message"].as_str().unwrap().contains("`\"not-a-uuid\"`"), "{b}");
    let unknown = "0190c2b4-6c1e-7a2b-9c3d-4e5f60718293";
    assert_eq!(api.by_id(unknown).await.0, 404);
    assert_eq!(api.add_tags(unknown, json!({"tag_names": ["a"]})).await.0, 404);
    assert_eq!(api.unsubscribe(unknown, None).await.0, 404);
    let (s, b) = api.remove_tag(&id, "%20").await;
    assert_eq!(params(s, &b), ["name"]);
    let (s, b) = api.track(json!({"event_name": 1, "email": "x@y", "properties": []})).await;
    assert_eq!(params(s, &b), ["event_name", "properties"]);
    let (s, b) = api.track(json!({"event_name": "e"})).await;
    assert_eq!(params(s, &b), ["email"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_routes_need_a_machine_key() {
    let api = Api::start().await;
    let id = "0190c2b4-6c1e-7a2b-9c3d-4e5f60718293";
    let routes = [
        (Method::POST, "/api/v1/contacts/upsert".to_string()),
        (Method::GET, "/api/v1/contacts?email=a%40b.c".to_string()),
        (Method::GET, format!("/api/v1/contacts/{id}")),
        (Method::POST, format!("/api/v1/contacts/{id}/tags")),
        (Method::DELETE, format!("/api/v1/contacts/{id}/tags/vip")),
        (Method::POST, format!("/api/v1/contacts/{id}/unsubscribe")),
        (Method::GET, "/api/v1/contacts/unsubscribed".to_string()),
        (Method::GET, format!("/api/v1/contacts/{id}/activity")),
        (Method::POST, "/api/v1/events/track".to_string()),
    ];
    let body = json!({"external_id": "x", "event_name": "e", "tag_names": ["a"]});
    for (method, path) in routes {
        let req =
            || api.gw.http.request(method.clone(), format!("{}{path}", api.gw.base)).json(&body);
        let resp = req().header("x-meshes-publishable-key", PK).send().await.unwrap();
        let status = resp.status().as_u16();
        let b: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, b["error"]["name"].as_str()),
            (403, Some("PermissionError")),
            "{method} {path}"
        );
        assert_eq!(req().send().await.unwrap().status(), 401, "{method} {path}");
    }
    let (s, _) = api.find("external_id=x").await;
    assert_eq!(s, 404, "nothing was created by the refused requests");
}

/// A contact keeps at most 1,000 tags: adding past that is a 400 naming
/// `tag_names` and the limit, while tags it already has are still fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_past_the_per_contact_cap_are_a_400() {
    let api = Api::start().await;
    let id = api.create(json!({"external_id": "many"})).await;
    for batch in 0..20 {
        let names: Vec<String> = (0..50).map(|i| format!("t{batch:02}-{i:02}")).collect();
        let (s, b) = api.add_tags(&id, json!({"tag_names": names})).await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = api.add_tags(&id, json!({"tag_names": ["t00-00", "one-more"]})).await;
    assert_eq!(params(s, &b), ["tag_names"]);
    assert!(b["message"].as_str().unwrap().contains("1001 tags; at most 1000"), "{b}");
    let (s, b) = api.upsert(json!({"external_id": "many", "tag_names": ["one-more"]})).await;
    assert_eq!(params(s, &b), ["tag_names"]);
    let (s, b) =
        api.upsert(json!({"external_id": "many", "tag_names": ["t00-00"], "name": "Ada"})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["contact"]["tags"].as_array().unwrap().len(), 1000);
}

/// An integer beyond 64 bits would be kept and delivered as a float with
/// other digits (`1.2345678901234568e+29`): refused, named by its path. A
/// float written as one (`1e20`) and `u64::MAX` are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_64_bits_are_refused_by_path() {
    let api = Api::start().await;
    let send = |body: &'static str| {
        let url = format!("{}/api/v1/contacts/upsert", api.gw.base);
        let req = api.gw.http.post(url).bearer_auth(api.gw.jwt());
        req.header("content-type", "application/json").body(body).send()
    };
    let long = r#"{"external_id": "x", "custom_fields": {"ok": 1e20, "id": 123456789012345678901234567890}}"#;
    let resp = send(long).await.unwrap();
    let (status, body): (u16, Value) = (resp.status().as_u16(), resp.json().await.unwrap());
    assert_eq!(params(status, &body), ["custom_fields.id"], "{body}");
    assert_eq!(
        body["message"],
        "custom_fields.id: is an integer beyond 64 bits: its digits would not be kept (it would be read as a float); send it as a string"
    );
    let fits = r#"{"external_id": "x", "custom_fields": {"f": 1e20, "max": 18446744073709551615}}"#;
    let resp = send(fits).await.unwrap();
    let (status, body): (u16, Value) = (resp.status().as_u16(), resp.json().await.unwrap());
    assert_eq!(status, 201, "{body}");
    let fields = &body["contact"]["custom_fields"];
    assert_eq!((fields["max"].as_u64(), fields["f"].as_f64()), (Some(u64::MAX), Some(1e20)));
}
