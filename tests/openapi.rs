//! The OpenAPI document: committed copy in sync with `meshes openapi`,
//! every router route documented, and live responses of every route
//! valid against the schema documented for their status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

#[path = "openapi/starting.rs"]
mod starting;

#[path = "openapi/constraints.rs"]
mod constraints;

use meshes::api::openapi::{document, document_text};
use serde_json::{Value, json};
use support::*;

#[test]
fn committed_document_matches_generated() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/openapi.json"))
            .unwrap();
    assert!(
        committed == document_text(),
        "schema/openapi.json is stale: run `cargo run -- openapi > schema/openapi.json` and commit it"
    );
}

/// The routes `.route("…", …)` registers in src/api/mod.rs, with the
/// `/api/v1` prefix for the nested ones (all but the ops routes), and the
/// methods each registers (`managed()` is the four writes that answer 405;
/// ingest routes also answer CORS preflights).
fn router_routes() -> Vec<(String, Vec<&'static str>)> {
    let src = include_str!("../src/api/mod.rs");
    let ops = ["/healthz", "/readyz", "/metrics"];
    src.split(".route(\"")
        .skip(1)
        .map(|rest| {
            let path = rest.split('"').next().unwrap();
            let line = rest.lines().next().unwrap();
            let mut methods = Vec::new();
            for (needle, m) in [
                ("get(", "get"),
                ("post(", "post"),
                ("delete(", "delete"),
                ("ingest_route(", "options"),
            ] {
                if line.contains(needle) {
                    methods.push(m);
                }
            }
            if line.contains("managed()") {
                methods.extend(["post", "put", "patch", "delete"]);
            }
            let full =
                if ops.contains(&path) { path.to_string() } else { format!("/api/v1{path}") };
            (full, methods)
        })
        .collect()
}

#[test]
fn every_router_route_is_documented_and_nothing_else() {
    let doc = document();
    let paths = doc["paths"].as_object().unwrap();
    let routes = router_routes();
    assert_eq!(routes.len(), 28, "parsed {routes:?}");
    for (path, methods) in &routes {
        assert!(!methods.is_empty(), "no methods parsed for {path}");
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path} is not in the OpenAPI document");
        }
        let documented = paths[path].as_object().unwrap().len();
        assert_eq!(documented, methods.len(), "{path}: documented methods differ from {methods:?}");
    }
    for d in paths.keys() {
        assert!(routes.iter().any(|(p, _)| p == d), "documented path {d} is not a route");
    }
}

#[test]
fn every_operation_is_complete() {
    let doc = document();
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            ids.push(op["operationId"].as_str().unwrap().to_string());
            assert!(op["security"].is_array(), "{at}: no security");
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{at}: no responses");
            let secured = !op["security"].as_array().unwrap().is_empty();
            if secured {
                for code in ["400", "401", "403", "429"] {
                    assert!(responses.contains_key(code), "{at}: {code} missing");
                }
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{at}: stray {name}");
                }
            }
        }
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationIds");
    let ingest = &doc["paths"]["/api/v1/events"]["post"];
    assert_eq!(ingest["security"], json!([{ "publishableKey": [] }, { "machineJwt": [] }]));
    for code in ["413", "415", "503"] {
        assert!(ingest["responses"].get(code).is_some(), "POST /events lacks {code}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["publishableKey"]["name"], "X-Meshes-Publishable-Key");
    assert_eq!(schemes["machineJwt"]["scheme"], "bearer");
    assert_eq!(doc["openapi"], "3.1.0");
}

/// A validator for the schema at `pointer` of the document, its `$ref`s
/// resolved against the document's components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = schema.clone();
    if let Some(o) = root.as_object_mut() {
        o.insert("components".into(), doc["components"].clone());
    } else {
        root = json!({ "allOf": [schema], "components": doc["components"] });
    }
    jsonschema::draft202012::new(&root).unwrap()
}

/// The response `method path` documents for `status`, its `$ref` resolved.
fn documented<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let resp = &op["responses"][status.to_string()];
    assert!(resp.is_object(), "{method} {path} answered {status}, which is not documented");
    match resp["$ref"].as_str() {
        Some(r) => &doc["components"]["responses"][r.rsplit('/').next().unwrap()],
        None => resp,
    }
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    &documented(doc, method, path, status)["content"]["application/json"]["schema"]
}

/// Asserts that each header the API sets for clients to act on, when
/// `headers` has it, is documented on the `status` response.
fn headers_documented(
    doc: &Value,
    (method, path, status): (&str, &str, u16),
    headers: &reqwest::header::HeaderMap,
) {
    let listed = documented(doc, method, path, status)["headers"].clone();
    for name in ["retry-after", "idempotent-replayed", "allow", "www-authenticate"] {
        let known =
            listed.as_object().is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
        assert!(
            !headers.contains_key(name) || known,
            "{method} {path} {status} sends `{name}`, which is not documented"
        );
    }
}

/// Asserts `body` is valid for what `method path` documents for `status`.
fn conforms(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let v = validator(doc, response_schema(doc, method, path, status));
    let errors: Vec<String> =
        v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:#?}\n{body:#}");
}

#[test]
fn every_component_schema_compiles() {
    let doc = document();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(&doc, &json!({ "$ref": format!("#/components/schemas/{name}") }));
    }
}

async fn call(gw: &TestGateway, method: &str, path: &str, auth: bool) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = gw.http.request(m, format!("{}{path}", gw.base));
    if auth {
        req = req.bearer_auth(gw.jwt());
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_responses_match_the_document() {
    let doc = document();
    let hook = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("hook", &hook.url)], "[0s, 1h]")).await;
    let mut seen = 0;
    let mut check = |method: &str, template: &str, (status, body): (u16, Value)| {
        conforms(&doc, method, template, status, &body);
        seen += 1;
        (status, body)
    };
    let (s, created) = check(
        "post",
        "/api/v1/events",
        gw.post_event(json!({"event": "user.hook", "resource_id": 7, "payload": {"a": 1}})).await,
    );
    assert_eq!(s, 201);
    let id = created["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "completed").await;
    check("post", "/api/v1/events", gw.post_event(json!({"event": 1, "payload": []})).await);
    check("post", "/api/v1/events", gw.post_event(json!([1])).await);
    let bulk = |body: Value| {
        let req = gw
            .http
            .post(format!("{}/api/v1/events/bulk", gw.base))
            .header("x-meshes-publishable-key", PK)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let good = json!({"event": "user.none", "payload": {"a": 1}});
    for (body, want) in [
        (json!([good, good]), 201),
        (json!([good, {"payload": 1}]), 207),
        (json!([{}]), 400),
        (json!({}), 400),
    ] {
        assert_eq!(check("post", "/api/v1/events/bulk", bulk(body).await).0, want);
    }
    let ev = format!("/api/v1/events/{id}");
    let rule = format!("{ev}/rules/hook-rule");
    for (method, template, path, want) in [
        ("get", "/api/v1/events", "/api/v1/events?limit=1".to_string(), 200),
        ("get", "/api/v1/events", "/api/v1/events?limit=0".to_string(), 400),
        ("get", "/api/v1/events", "/api/v1/events?evnet=user.a".to_string(), 400),
        ("get", "/api/v1/events/{id}", ev.clone(), 200),
        ("get", "/api/v1/events/{id}", "/api/v1/events/nope".to_string(), 404),
        ("get", "/api/v1/events/{id}/payload", format!("{ev}/payload"), 200),
        ("get", "/api/v1/events/{id}/rules/{rule_id}/attempts", format!("{rule}/attempts"), 200),
        ("post", "/api/v1/events/{id}/rules/{rule_id}/retry", format!("{rule}/retry"), 202),
        (
            "post",
            "/api/v1/events/{id}/rules/{rule_id}/retry",
            format!("{ev}/rules/nope/retry"),
            404,
        ),
        ("post", "/api/v1/events/{id}/rules/{rule_id}/cancel", format!("{rule}/cancel"), 200),
        ("post", "/api/v1/events/{id}/cancel", format!("{ev}/cancel"), 200),
        ("get", "/api/v1/integrations", "/api/v1/integrations".to_string(), 200),
        ("get", "/api/v1/connections", "/api/v1/connections".to_string(), 200),
        ("get", "/api/v1/connections/{id}", "/api/v1/connections/hook".to_string(), 200),
        ("delete", "/api/v1/connections/{id}", "/api/v1/connections/hook".to_string(), 405),
        ("get", "/api/v1/connections/{id}/actions", "/api/v1/connections/hook/actions".into(), 501),
        ("get", "/api/v1/connections/{id}/actions", "/api/v1/connections/x/actions".into(), 404),
        ("get", "/api/v1/rules", "/api/v1/rules".to_string(), 200),
        ("get", "/api/v1/rules/{id}", "/api/v1/rules/hook-rule".to_string(), 200),
        ("post", "/api/v1/rules", "/api/v1/rules".to_string(), 405),
        ("get", "/api/v1/workspaces/{id}", format!("/api/v1/workspaces/{WS}"), 200),
        ("get", "/api/v1/workspaces/{id}", "/api/v1/workspaces/other".to_string(), 404),
        ("get", "/healthz", "/healthz".to_string(), 200),
        ("get", "/readyz", "/readyz".to_string(), 200),
    ] {
        let got = check(method, template, call(&gw, method, &path, true).await);
        assert_eq!(got.0, want, "{method} {path}: {}", got.1);
    }
    let (s, body) = check("get", "/api/v1/rules", call(&gw, "get", "/api/v1/rules", false).await);
    assert_eq!((s, body["error"]["name"].as_str()), (401, Some("AuthenticationError")));
    let resp = gw
        .http
        .get(format!("{}/api/v1/rules", gw.base))
        .header("x-meshes-publishable-key", PK)
        .send()
        .await
        .unwrap();
    check("get", "/api/v1/rules", (resp.status().as_u16(), resp.json().await.unwrap()));
    assert_eq!(seen, 33);
    let resp = gw.http.get(format!("{}/metrics", gw.base)).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
}

#[tokio::test]
async fn every_api_error_matches_the_error_schema() {
    use axum::response::IntoResponse;
    use meshes::api::error::ApiError;
    let doc = document();
    let v = validator(&doc, &json!({ "$ref": "#/components/schemas/ErrorBody" }));
    let all = [
        ApiError::field("event", "is required"),
        ApiError::Unauthorized("u".into()),
        ApiError::Forbidden("f".into()),
        ApiError::NotFound("n".into()),
        ApiError::MethodNotAllowed("m".into()),
        ApiError::RequestTimeout("t".into()),
        ApiError::Conflict("c".into()),
        ApiError::PayloadTooLarge { limit: 1 },
        ApiError::UnsupportedMediaType("t".into()),
        ApiError::TooEarly { message: "e".into(), retry_after_secs: 1 },
        ApiError::RateLimited { retry_after_secs: 1 },
        ApiError::NotImplemented("x".into()),
        ApiError::BadGateway("g".into()),
        ApiError::Unavailable("s".into()),
        ApiError::Internal("i".into()),
    ];
    for e in all {
        let resp = e.into_response();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v.is_valid(&body), "{status}: {body} does not match ErrorBody");
        // 500 is never expected from any route; the rest are documented.
        if status != 500 {
            assert!(
                doc["components"]["responses"][format!("Error{status}")].is_object(),
                "{status}"
            );
        }
    }
}
