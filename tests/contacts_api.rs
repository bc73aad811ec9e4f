//! The contacts API end to end: upsert matching and merging, lookups, tags,
//! tracked events, suppression paging, the activity log, bad input and
//! credentials. Every response is also checked against the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::api::openapi::document;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

fn config() -> String {
    format!(
        r#"version: 1
workspace:
  id: {WS}
  name: test
  publishable_key: {PK}
machine_keys:
  - access_key: {AK}
    secret: {SECRET}
connections:
  audit:
    type: log
automations:
  - id: vip-seen
    trigger: {{ tag_added: vip }}
    actions:
      - {{ add_tag: seen }}
  - id: activated-onboarding
    trigger: {{ custom_event: activated }}
    when: 'event.properties.feature == "export"'
    actions:
      - {{ enroll: onboarding }}
sequences:
  onboarding:
    steps:
      - {{ wait: 1h }}
      - {{ connection: audit, metadata: {{ action: log }} }}
"#
    )
}

/// A gateway plus the OpenAPI document every answer is checked against.
struct Api {
    gw: TestGateway,
    doc: Value,
}

impl Api {
    async fn start() -> Api {
        Api { gw: TestGateway::start(&config()).await, doc: document() }
    }

    /// `method path` with a machine JWT and an optional JSON body; the
    /// answer must match what the document says for `template` and its status.
    async fn call(
        &self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.gw.http.request(method.clone(), format!("{}{path}", self.gw.base));
        req = req.bearer_auth(self.gw.jwt());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        self.conforms(method.as_str(), template, status, &body);
        (status, body)
    }

    async fn post(&self, template: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, template, path, Some(body)).await
    }

    async fn get(&self, template: &str, path: &str) -> (u16, Value) {
        self.call(Method::GET, template, path, None).await
    }

    async fn upsert(&self, body: Value) -> (u16, Value) {
        self.post("/api/v1/contacts/upsert", "/api/v1/contacts/upsert", body).await
    }

    /// Upserts and returns the contact (asserting 200 or 201).
    async fn contact(&self, body: Value) -> Value {
        let (s, b) = self.upsert(body).await;
        assert!(s == 200 || s == 201, "{s} {b}");
        b["contact"].clone()
    }

    fn conforms(&self, method: &str, template: &str, status: u16, body: &Value) {
        let method = method.to_lowercase();
        let op = &self.doc["paths"][template][&method];
        assert!(op.is_object(), "{method} {template} is not documented");
        let mut resp = &op["responses"][status.to_string()];
        assert!(resp.is_object(), "{method} {template} answered {status}, not documented: {body}");
        if let Some(r) = resp["$ref"].as_str() {
            resp = &self.doc["components"]["responses"][r.rsplit('/').next().unwrap()];
        }
        let schema = &resp["content"]["application/json"]["schema"];
        let root = json!({ "allOf": [schema], "components": self.doc["components"] });
        let v = jsonschema::draft202012::new(&root).unwrap();
        let errors: Vec<String> =
            v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{method} {template} {status}: {errors:#?}\n{body:#}");
    }
}

/// The params a 400 names, after checking its shape.
fn params(status: u16, body: &Value) -> Vec<String> {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["name"], "ValidationError");
    let data = body["error"]["data"].as_array().unwrap();
    for d in data {
        let (param, msg) = (d["param"].as_str().unwrap(), d["msg"].as_str().unwrap());
        assert!(body["message"].as_str().unwrap().contains(&format!("{param}: {msg}")));
    }
    data.iter().map(|d| d["param"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_matches_external_id_then_email_and_merges() {
    let api = Api::start().await;
    let (s, created) = api
        .upsert(json!({"external_id": "u1", "email": "Ada@Example.com", "first_name": "Ada",
            "custom_fields": {"plan": "free", "seats": 3}, "tag_names": ["beta"]}))
        .await;
    assert_eq!(s, 201, "{created}");
    let c = &created["contact"];
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(
        (c["email"].as_str(), c["first_name"].as_str()),
        (Some("Ada@Example.com"), Some("Ada"))
    );
    assert_eq!((&c["tags"], c["unsubscribed"].as_bool()), (&json!(["beta"]), Some(false)));
    assert_eq!(c["unsubscribed_at"], Value::Null);

    // Matched by email, case-insensitively: an update, omitted fields kept.
    let (s, b) = api
        .upsert(json!({"email": "ada@example.COM", "last_name": "Lovelace",
        "custom_fields": {"plan": "pro"}}))
        .await;
    assert_eq!(s, 200, "{b}");
    let c = &b["contact"];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(
        (c["first_name"].as_str(), c["last_name"].as_str()),
        (Some("Ada"), Some("Lovelace"))
    );
    assert_eq!(c["custom_fields"], json!({"plan": "pro", "seats": 3}), "omitted keys are kept");
    assert_eq!(c["email"], "ada@example.COM", "the email is stored as last given");

    // external_id first: it matches even though the email is new, and the email moves.
    let c = api
        .contact(json!({"external_id": "u1", "email": "new@example.com",
        "custom_fields": {"seats": null}, "first_name": null, "tag_names": ["vip2"]}))
        .await;
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["custom_fields"], json!({"plan": "pro"}), "null removes a custom field");
    assert_eq!(c["first_name"], Value::Null, "null clears a standard field");
    assert_eq!(c["tags"], json!(["beta", "vip2"]), "tag_names only add");

    let (s, b) = api.get("/api/v1/contacts", "/api/v1/contacts?email=NEW%40example.com").await;
    assert_eq!((s, b["contact"]["id"].as_str()), (200, Some(id.as_str())));
    let (s, b) = api.get("/api/v1/contacts", "/api/v1/contacts?email=ada%40example.com").await;
    assert_eq!(s, 404, "the old email no longer finds it: {b}");
    let (s, b) = api.get("/api/v1/contacts", "/api/v1/contacts?external_id=u1").await;
    assert_eq!((s, b["contact"]["email"].as_str()), (200, Some("new@example.com")));
    let (s, b) = api.get("/api/v1/contacts", "/api/v1/contacts").await;
    assert_eq!(params(s, &b), ["email"]);

    // Identifiers naming two different contacts: 409, nothing changes.
    let bob = api.contact(json!({"external_id": "u2", "email": "bob@example.com"})).await;
    let (s, b) =
        api.upsert(json!({"external_id": "u1", "email": "BOB@example.com", "name": "x"})).await;
    assert_eq!((s, b["error"]["name"].as_str()), (409, Some("ConflictError")), "{b}");
    assert!(b["message"].as_str().unwrap().contains(bob["id"].as_str().unwrap()), "{b}");
    // An email whose contact has another external_id is a conflict too.
    let (s, _) = api.upsert(json!({"external_id": "u3", "email": "bob@example.com"})).await;
    assert_eq!(s, 409);
    let (_, b) = api.get("/api/v1/contacts/{id}", &format!("/api/v1/contacts/{id}")).await;
    assert_eq!(
        (b["contact"]["email"].as_str(), &b["contact"]["name"]),
        (Some("new@example.com"), &Value::Null)
    );
    assert_eq!(b["contact"]["enrollments"], json!([]));
    let (s, _) = api.get("/api/v1/contacts", "/api/v1/contacts?external_id=u3").await;
    assert_eq!(s, 404, "the refused upsert created nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_track_and_activity_show_automation_runs() {
    let api = Api::start().await;
    let id =
        api.contact(json!({"email": "cy@example.io"})).await["id"].as_str().unwrap().to_string();
    let tags = format!("/api/v1/contacts/{id}/tags");
    let (s, b) = api.post("/api/v1/contacts/{id}/tags", &tags, json!({"tag_names": ["vip"]})).await;
    assert_eq!(s, 200, "{b}");
    // The automation ran in the same transaction as the tag.
    assert_eq!(b["contact"]["tags"], json!(["seen", "vip"]));
    let tmpl = "/api/v1/contacts/{id}/tags/{name}";
    let (s, b) = api.call(Method::DELETE, tmpl, &format!("{tags}/vip"), None).await;
    assert_eq!((s, &b["contact"]["tags"]), (200, &json!(["seen"])));
    let (s, b) = api.call(Method::DELETE, tmpl, &format!("{tags}/vip"), None).await;
    assert_eq!(
        (s, &b["contact"]["tags"]),
        (200, &json!(["seen"])),
        "removing an absent tag is fine"
    );

    let track = "/api/v1/events/track";
    let (s, b) = api
        .post(
            track,
            track,
            json!({"event_name": "activated", "email": "CY@example.io",
        "properties": {"feature": "export"}}),
        )
        .await;
    assert_eq!(
        (s, b["contact_id"].as_str(), b["event_name"].as_str()),
        (202, Some(id.as_str()), Some("activated"))
    );
    let (s, b) = api
        .post(track, track, json!({"event_name": "activated", "email": "nobody@example.io"}))
        .await;
    assert_eq!((s, b["error"]["name"].as_str()), (404, Some("NotFoundError")), "{b}");
    let (s, b) = api.post(track, track, json!({"event_name": "activated"})).await;
    assert_eq!(params(s, &b), ["email"]);

    let (_, b) = api.get("/api/v1/contacts/{id}", &format!("/api/v1/contacts/{id}")).await;
    let e = &b["contact"]["enrollments"];
    assert_eq!(
        (e[0]["sequence"].as_str(), e[0]["status"].as_str()),
        (Some("onboarding"), Some("active")),
        "{b}"
    );
    assert!(e[0]["next_step_at"].is_string(), "{b}");

    let act = format!("/api/v1/contacts/{id}/activity");
    let tmpl = "/api/v1/contacts/{id}/activity";
    let (s, b) = api.get(tmpl, &act).await;
    assert_eq!(s, 200, "{b}");
    let runs: Vec<&Value> =
        b["records"].as_array().unwrap().iter().filter(|r| r["kind"] == "automation").collect();
    let names: Vec<&str> = runs.iter().map(|r| r["automation"].as_str().unwrap()).collect();
    assert_eq!(names, ["activated-onboarding", "vip-seen"], "newest first: {b:#}");
    assert_eq!(runs[0]["condition"], true);
    assert_eq!(runs[0]["actions"][0]["action"], "enroll");
    assert_eq!(runs[1]["trigger"], json!({"kind": "tag_added", "name": "vip"}));
    assert_eq!(runs[1]["actions"][0]["target"], "seen");
    assert_eq!(runs[1]["actions"][0]["outcome"], "done");

    // Paging: one entry per page, each older than the last, no repeats.
    let total = b["count"].as_u64().unwrap();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, p) = api.get(tmpl, &format!("{act}?limit=1&cursor={cursor}")).await;
        assert_eq!((s, p["limit"].as_u64()), (200, Some(1)));
        seen.extend(p["records"].as_array().unwrap().iter().map(|r| r["id"].clone()));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let all: Vec<Value> =
        b["records"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect();
    assert_eq!((seen.len() as u64, &seen), (total, &all));
    let (s, b) = api.get(tmpl, &format!("{act}?cursor=oops")).await;
    assert_eq!(params(s, &b), ["cursor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_page_the_suppression_list_as_of_an_instant() {
    let api = Api::start().await;
    let mut ids = Vec::new();
    for who in ["a", "b", "c"] {
        let c =
            api.contact(json!({"external_id": who, "email": format!("{who}@example.com")})).await;
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let unsub = |i: usize, body: Option<Value>| {
        let path = format!("/api/v1/contacts/{}/unsubscribe", ids[i]);
        let api = &api;
        async move { api.call(Method::POST, "/api/v1/contacts/{id}/unsubscribe", &path, body).await }
    };
    let (s, a) = unsub(0, None).await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (a["contact"]["unsubscribed"].as_bool(), a["contact"]["suppression"].as_str()),
        (Some(true), Some("unsubscribed"))
    );
    let (_, again) = unsub(0, Some(json!({"reason": "bounced"}))).await;
    assert_eq!(again["contact"]["unsubscribed_at"], a["contact"]["unsubscribed_at"], "idempotent");
    assert_eq!(again["contact"]["suppression"], "unsubscribed", "the first reason stays");
    let (s, b) = unsub(1, Some(json!({"reason": "bounced"}))).await;
    assert_eq!((s, b["contact"]["suppression"].as_str()), (200, Some("bounced")));
    let (s, b) = unsub(2, Some(json!({"reason": "spam"}))).await;
    assert_eq!(params(s, &b), ["reason"]);

    let list = "/api/v1/contacts/unsubscribed";
    let (s, first) = api.get(list, &format!("{list}?limit=1")).await;
    assert_eq!(s, 200, "{first}");
    let as_of = first["as_of"].as_str().unwrap().to_string();
    assert_eq!(
        (first["count"].as_u64(), first["records"][0]["id"].as_str()),
        (Some(1), Some(ids[0].as_str()))
    );
    assert_eq!(first["records"][0]["reason"], "unsubscribed");
    // Let the clock pass `as_of` (observed through the list's own echo),
    // so c is suppressed strictly after it.
    eventually("the clock to pass as_of", Duration::from_secs(5), || async {
        let (_, b) = api.get(list, list).await;
        (b["as_of"].as_str().unwrap() > as_of.as_str()).then_some(())
    })
    .await;
    let (s, _) = unsub(2, None).await;
    assert_eq!(s, 200);

    let cursor = first["next_cursor"].as_str().unwrap();
    let page2 = format!("{list}?limit=1&as_of={as_of}&cursor={cursor}");
    let (s, second) = api.get(list, &page2).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["as_of"], as_of.as_str(), "as_of is echoed");
    let got: Vec<&str> =
        second["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, [ids[1].as_str()], "c was suppressed after as_of: {second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let (_, now) = api.get(list, list).await;
    let got: Vec<&str> =
        now["records"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        got,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "oldest first, all three now"
    );

    for (query, param) in [
        ("cursor=12", "cursor"),
        ("as_of=yesterday", "as_of"),
        ("limit=0", "limit"),
        ("as_of=99999999999-01-01T00:00:00Z", "as_of"),
    ] {
        let (s, b) = api.get(list, &format!("{list}?{query}")).await;
        assert_eq!(params(s, &b), [param], "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_naming_each_field() {
    let api = Api::start().await;
    let many_keys: serde_json::Map<String, Value> =
        (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let cases = [
        (json!({}), vec!["external_id"]),
        (json!([]), vec!["body"]),
        (json!({"email": 5}), vec!["email"]),
        (json!({"email": "not-an-email"}), vec!["email"]),
        (json!({"external_id": "x", "foo": 1, "bar": 2}), vec!["foo", "bar"]),
        (json!({"external_id": "x", "first_name": "a".repeat(201)}), vec!["first_name"]),
        (json!({"external_id": " "}), vec!["external_id"]),
        (json!({"external_id": "x", "phone": ["1"]}), vec!["phone"]),
        (json!({"external_id": "x", "custom_fields": [1]}), vec!["custom_fields"]),
        (json!({"external_id": "x", "custom_fields": many_keys}), vec!["custom_fields"]),
        (json!({"external_id": "x", "custom_fields": {"": 1}}), vec!["custom_fields"]),
        (
            json!({"external_id": "x", "tag_names": ["", "ok", 3, "a\u{1}"]}),
            vec!["tag_names[0]", "tag_names[2]", "tag_names[3]"],
        ),
        (json!({"external_id": "x", "tag_names": vec!["t"; 51]}), vec!["tag_names"]),
        (json!({"external_id": "x", "tag_names": "vip"}), vec!["tag_names"]),
    ];
    for (body, want) in cases {
        let (s, b) = api.upsert(body.clone()).await;
        assert_eq!(params(s, &b), want, "{body}");
    }
    let (_, b) = api.upsert(json!({"email": 5})).await;
    assert!(b["message"].as_str().unwrap().ends_with("found a number `5`"), "{b}");
    let (_, b) = api.upsert(json!({"external_id": "x", "foo": 1})).await;
    assert!(b["message"].as_str().unwrap().contains("expected only: external_id, email"), "{b}");

    let id = api.contact(json!({"external_id": "x"})).await["id"].as_str().unwrap().to_string();
    let tags_tmpl = "/api/v1/contacts/{id}/tags";
    for (path, body, want) in [
        (format!("/api/v1/contacts/{id}/tags"), json!({"tag_names": []}), "tag_names"),
        (format!("/api/v1/contacts/{id}/tags"), json!({}), "tag_names"),
        (format!("/api/v1/contacts/{id}/tags"), json!({"tags": ["a"]}), "tags"),
        ("/api/v1/contacts/nope/tags".to_string(), json!({"tag_names": ["a"]}), "id"),
    ] {
        let (s, b) = api.post(tags_tmpl, &path, body).await;
        assert!(params(s, &b).contains(&want.to_string()), "{path}: {b}");
    }
    let (s, b) = api.get("/api/v1/contacts/{id}", "/api/v1/contacts/not-a-uuid").await;
    assert_eq!(params(s, &b), ["id"]);
    assert!(b["message"].as_str().unwrap().contains("`\"not-a-uuid\"`"), "{b}");
    let unknown = "/api/v1/contacts/0190c2b4-6c1e-7a2b-9c3d-4e5f60718293";
    let (s, _) = api.get("/api/v1/contacts/{id}", unknown).await;
    assert_eq!(s, 404);
    let (s, _) = api.post(tags_tmpl, &format!("{unknown}/tags"), json!({"tag_names": ["a"]})).await;
    assert_eq!(s, 404);
    let (s, b) = api
        .call(
            Method::DELETE,
            "/api/v1/contacts/{id}/tags/{name}",
            &format!("/api/v1/contacts/{id}/tags/%20"),
            None,
        )
        .await;
    assert_eq!(params(s, &b), ["name"]);
    let track = "/api/v1/events/track";
    let (s, b) =
        api.post(track, track, json!({"event_name": 1, "email": "x@y", "properties": []})).await;
    assert_eq!(params(s, &b), ["event_name", "properties"]);

    // Too large (413) and not JSON (415) are refused before parsing.
    let big = json!({"external_id": "x", "custom_fields": {"blob": "x".repeat(1 << 20)}});
    let (s, b) = api.upsert(big).await;
    assert_eq!((s, b["error"]["name"].as_str()), (413, Some("PayloadTooLargeError")));
    let resp = api
        .gw
        .http
        .post(format!("{}/api/v1/contacts/upsert", api.gw.base))
        .bearer_auth(api.gw.jwt())
        .body("external_id=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
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
    for (method, path) in routes {
        let url = format!("{}{path}", api.gw.base);
        let body = json!({"external_id": "x", "event_name": "e", "tag_names": ["a"]});
        let resp = api
            .gw
            .http
            .request(method.clone(), &url)
            .header("x-meshes-publishable-key", PK)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let b: Value = resp.json().await.unwrap();
        assert_eq!(
            (status, b["error"]["name"].as_str()),
            (403, Some("PermissionError")),
            "{method} {path}"
        );
        let resp = api.gw.http.request(method.clone(), &url).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
    let (s, _) = api.get("/api/v1/contacts", "/api/v1/contacts?external_id=x").await;
    assert_eq!(s, 404, "nothing was created by the refused requests");
}
