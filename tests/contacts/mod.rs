//! Helpers for `tests/contacts_api.rs`: a gateway with automations, and
//! calls whose answers are checked against the OpenAPI document.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::*;
use meshes::api::openapi::document;
use reqwest::Method;
use serde_json::{Value, json};

pub fn config() -> String {
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
pub struct Api {
    pub gw: TestGateway,
    pub doc: Value,
}

impl Api {
    pub async fn start() -> Api {
        Api { gw: TestGateway::start(&config()).await, doc: document() }
    }

    /// `method path` with a machine JWT and an optional JSON body; the
    /// answer must match what the document says for `template` and its status.
    pub async fn call(
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

    pub async fn post(&self, template: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, template, path, Some(body)).await
    }

    pub async fn get(&self, template: &str, path: &str) -> (u16, Value) {
        self.call(Method::GET, template, path, None).await
    }

    pub async fn upsert(&self, body: Value) -> (u16, Value) {
        self.post("/api/v1/contacts/upsert", "/api/v1/contacts/upsert", body).await
    }

    /// Upserts and returns the contact (asserting 200 or 201).
    pub async fn contact(&self, body: Value) -> Value {
        let (s, b) = self.upsert(body).await;
        assert!(s == 200 || s == 201, "{s} {b}");
        b["contact"].clone()
    }

    /// Upserts and returns the contact's id.
    pub async fn create(&self, body: Value) -> String {
        self.contact(body).await["id"].as_str().unwrap().to_string()
    }

    /// `GET /contacts?{query}`.
    pub async fn find(&self, query: &str) -> (u16, Value) {
        self.get("/api/v1/contacts", &format!("/api/v1/contacts?{query}")).await
    }

    /// `GET /contacts/{id}`.
    pub async fn by_id(&self, id: &str) -> (u16, Value) {
        self.get("/api/v1/contacts/{id}", &format!("/api/v1/contacts/{id}")).await
    }

    /// `POST /contacts/{id}/tags`.
    pub async fn add_tags(&self, id: &str, body: Value) -> (u16, Value) {
        self.post("/api/v1/contacts/{id}/tags", &format!("/api/v1/contacts/{id}/tags"), body).await
    }

    /// `DELETE /contacts/{id}/tags/{name}` (`name` as it goes in the path).
    pub async fn remove_tag(&self, id: &str, name: &str) -> (u16, Value) {
        let path = format!("/api/v1/contacts/{id}/tags/{name}");
        self.call(Method::DELETE, "/api/v1/contacts/{id}/tags/{name}", &path, None).await
    }

    /// `POST /events/track`.
    pub async fn track(&self, body: Value) -> (u16, Value) {
        self.post("/api/v1/events/track", "/api/v1/events/track", body).await
    }

    /// `POST /contacts/{id}/unsubscribe`, with or without a body.
    pub async fn unsubscribe(&self, id: &str, body: Option<Value>) -> (u16, Value) {
        let path = format!("/api/v1/contacts/{id}/unsubscribe");
        self.call(Method::POST, "/api/v1/contacts/{id}/unsubscribe", &path, body).await
    }

    /// `POST /contacts/{id}/resubscribe`.
    pub async fn resubscribe(&self, id: &str) -> (u16, Value) {
        let path = format!("/api/v1/contacts/{id}/resubscribe");
        self.call(Method::POST, "/api/v1/contacts/{id}/resubscribe", &path, None).await
    }

    /// `GET /contacts/unsubscribed?{query}`.
    pub async fn unsubscribed(&self, query: &str) -> (u16, Value) {
        let path = format!("/api/v1/contacts/unsubscribed?{query}");
        self.get("/api/v1/contacts/unsubscribed", &path).await
    }

    /// `GET /contacts/{id}/activity?{query}`.
    pub async fn activity(&self, id: &str, query: &str) -> (u16, Value) {
        let path = format!("/api/v1/contacts/{id}/activity?{query}");
        self.get("/api/v1/contacts/{id}/activity", &path).await
    }

    pub fn conforms(&self, method: &str, template: &str, status: u16, body: &Value) {
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
pub fn params(status: u16, body: &Value) -> Vec<String> {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["name"], "ValidationError");
    let data = body["error"]["data"].as_array().unwrap();
    for d in data {
        let (param, msg) = (d["param"].as_str().unwrap(), d["msg"].as_str().unwrap());
        assert!(body["message"].as_str().unwrap().contains(&format!("{param}: {msg}")));
    }
    data.iter().map(|d| d["param"].as_str().unwrap().to_string()).collect()
}

/// The `id`s of a page's records, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}
