//! What the document says a client may send, and which headers it gets
//! back, checked against a live gateway.

use super::support::*;
use super::{call, document, headers_documented, validator};
use serde_json::{Value, json};

/// Replays (single and bulk, 201 and 207), 405 and 401 answers carry
/// headers a client acts on: each is documented where it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_clients_act_on_are_documented() {
    let doc = document();
    let gw = TestGateway::start(&webhook_config(&[("hook", "http://127.0.0.1:9")], "[1h]")).await;
    let good = json!({"event": "user.none", "payload": {"a": 1}});
    for (path, body, want) in [
        ("/api/v1/events", good.clone(), 201),
        ("/api/v1/events/bulk", json!([good, good]), 201),
        ("/api/v1/events/bulk", json!([good, {"payload": 1}]), 207),
    ] {
        let replays = [
            sent_with_key(&gw, &doc, path, &body, want).await,
            sent_with_key(&gw, &doc, path, &body, want).await,
        ];
        assert_eq!(replays, [false, true], "{path} {want}: the repeat is a replay");
    }
    for (method, path, template, want) in [
        ("delete", "/api/v1/connections/hook", "/api/v1/connections/{id}", 405),
        ("post", "/api/v1/rules", "/api/v1/rules", 405),
        ("get", "/api/v1/rules", "/api/v1/rules", 401),
    ] {
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let resp = gw.http.request(m, format!("{}{path}", gw.base)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{method} {path}");
        let sent = if want == 405 { "allow" } else { "www-authenticate" };
        assert!(resp.headers().contains_key(sent), "{method} {path}: no {sent}");
        headers_documented(&doc, (method, template, want), resp.headers());
    }
}

/// Sends `body` to `path` with a key of its own, expecting `want`; whether
/// the answer says it is a replay (its headers checked against the document).
async fn sent_with_key(gw: &TestGateway, doc: &Value, path: &str, body: &Value, want: u16) -> bool {
    let resp = gw
        .http
        .post(format!("{}{path}", gw.base))
        .header("x-meshes-publishable-key", PK)
        .header("idempotency-key", format!("{path}-{want}"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), want, "{path}");
    headers_documented(doc, ("post", path, want), resp.headers());
    resp.headers().get("idempotent-replayed").is_some_and(|v| v == "true")
}

/// The `Idempotency-Key` pattern of the document is what the server takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_pattern_is_the_servers() {
    let doc = document();
    let param = &doc["paths"]["/api/v1/events"]["post"]["parameters"][0];
    assert_eq!(param["name"], "Idempotency-Key");
    let pattern = validator(&doc, &param["schema"]);
    let gw = TestGateway::start(&webhook_config(&[("hook", "http://127.0.0.1:9")], "[1h]")).await;
    let keys: [&[u8]; 6] = [b"k", b"a b", b"a\tb", b"~!\"{}", "caf\u{e9}".as_bytes(), b"\xff"];
    for (i, key) in keys.into_iter().enumerate() {
        let resp = gw
            .http
            .post(format!("{}/api/v1/events", gw.base))
            .header("x-meshes-publishable-key", PK)
            .header("idempotency-key", reqwest::header::HeaderValue::from_bytes(key).unwrap())
            .json(&json!({"event": "user.none", "payload": {"n": i}}))
            .send()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(key);
        let documented = pattern.is_valid(&json!(text));
        assert_eq!(resp.status().as_u16(), if documented { 201 } else { 400 }, "{text:?}");
    }
}

/// The tag name of `DELETE /contacts/{id}/tags/{name}` is refused when its
/// documented pattern refuses it, and `as_of` takes RFC 3339 strictly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_parameters_are_checked_as_documented() {
    let doc = document();
    let op = &doc["paths"]["/api/v1/contacts/{id}/tags/{name}"]["delete"];
    let pattern = validator(&doc, &op["parameters"][1]["schema"]);
    let gw = TestGateway::start(&webhook_config(&[("hook", "http://127.0.0.1:9")], "[1h]")).await;
    let (s, _) = call_json(
        &gw,
        reqwest::Method::POST,
        "/api/v1/contacts/upsert",
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(s, 201);
    for (encoded, name) in
        [("vip", "vip"), ("a%20b", "a b"), ("%20", " "), ("%09", "\t"), ("%C2%A0", "\u{a0}")]
    {
        let path = format!("/api/v1/contacts/ada@example.com/tags/{encoded}");
        let (status, body) = call(&gw, "delete", &path, true).await;
        let want = if pattern.is_valid(&json!(name)) { 200 } else { 400 };
        assert_eq!(status, want, "{name:?}: {body}");
    }
    let list = "/api/v1/contacts/unsubscribed?as_of=";
    let (status, body) =
        call(&gw, "get", &format!("{list}2026-01-31T10:30:00.5%2B01:00"), true).await;
    assert_eq!((status, &body["as_of"]), (200, &json!("2026-01-31T09:30:00.500Z")), "{body}");
    let (status, body) = call(&gw, "get", &format!("{list}2026-02-31T00:00:00Z"), true).await;
    let msg = body["error"]["data"][0]["msg"].as_str().unwrap_or_default();
    assert_eq!((status, &body["error"]["data"][0]["param"]), (400, &json!("as_of")), "{body}");
    assert!(msg.contains("2026-02-31T00:00:00Z") && msg.contains("RFC 3339"), "{msg}");
}

async fn call_json(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let req = gw.http.request(method, format!("{}{path}", gw.base)).bearer_auth(gw.jwt());
    let resp = req.json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}
