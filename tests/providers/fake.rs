//! The fake provider: exact request matching, a catch-all that fails on
//! anything unexpected, and helpers to build adapters and deliveries.

use meshes::adapters::ConnectionConfig;
use meshes::adapters::adapter::{Adapter, AttemptReport, AttemptResult, Delivery};
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

/// One expected request, matched exactly.
#[derive(Debug, Clone)]
pub struct Expect {
    pub method: &'static str,
    pub path: String,
    /// Every query pair, in any order; no others allowed.
    pub query: Vec<(String, String)>,
    /// Headers that must be present with these exact values.
    pub headers: Vec<(String, String)>,
    /// Headers that must be absent.
    pub absent: Vec<String>,
    /// The exact JSON body; `None` (and no `form`) requires an empty body.
    pub body: Option<Value>,
    /// The exact form-encoded body.
    pub form: Option<String>,
}

impl Expect {
    pub fn new(method: &'static str, path: &str) -> Self {
        Expect {
            method,
            path: path.into(),
            query: vec![],
            headers: vec![],
            absent: vec![],
            body: None,
            form: None,
        }
    }
    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }
    /// Requires header `k` to be `v` (replacing an earlier requirement on `k`).
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn absent(mut self, k: &str) -> Self {
        self.absent.push(k.into());
        self
    }
    pub fn form(mut self, body: &str) -> Self {
        self.form = Some(body.into());
        self.header("content-type", "application/x-www-form-urlencoded")
    }
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self.header("content-type", "application/json")
    }
}

impl Match for Expect {
    fn matches(&self, r: &Request) -> bool {
        let mut query: Vec<(String, String)> =
            r.url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect();
        let mut want = self.query.clone();
        query.sort();
        want.sort();
        let header = |k: &str| r.headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body_ok = match (&self.body, &self.form) {
            (Some(b), _) => serde_json::from_slice::<Value>(&r.body).is_ok_and(|got| &got == b),
            (None, Some(f)) => r.body == f.as_bytes(),
            (None, None) => r.body.is_empty(),
        };
        r.method.as_str() == self.method
            && r.url.path() == self.path
            && query == want
            && self.headers.iter().all(|(k, v)| header(k).as_deref() == Some(v.as_str()))
            && self.absent.iter().all(|k| header(k).is_none())
            && body_ok
    }
}

/// A fake provider that fails the test (on drop) when it receives anything
/// not expected, or an expected request a different number of times.
pub struct Fake {
    pub server: MockServer,
}

impl Fake {
    pub async fn start() -> Fake {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(418).set_body_string("unexpected request"))
            .with_priority(u8::MAX)
            .named("anything not expected")
            .expect(0)
            .mount(&server)
            .await;
        Fake { server }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Expects `e` exactly `times` times, answering `reply`.
    pub async fn expect_n(&self, e: Expect, reply: ResponseTemplate, times: u64) {
        let name = format!("{} {}", e.method, e.path);
        Mock::given(e).respond_with(reply).named(name).expect(times).mount(&self.server).await;
    }

    /// Expects `e` exactly once.
    pub async fn expect(&self, e: Expect, reply: ResponseTemplate) {
        self.expect_n(e, reply, 1).await;
    }

    /// JSON bodies of the requests received on `path`, in order.
    pub async fn bodies(&self, path: &str) -> Vec<Value> {
        let received = self.server.received_requests().await.unwrap_or_default();
        received
            .iter()
            .filter(|r| r.url.path() == path)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// Builds a connection's adapter from YAML with `env` as the environment.
pub fn adapter(yaml: &str, env: &[(&str, &str)]) -> Arc<dyn Adapter> {
    try_adapter(yaml, env).unwrap()
}

/// Like [`adapter`], returning the build error text.
pub fn try_adapter(yaml: &str, env: &[(&str, &str)]) -> Result<Arc<dyn Adapter>, String> {
    let config: ConnectionConfig = serde_saphyr::from_str(yaml).unwrap();
    let vars: HashMap<String, String> =
        env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    let lookup = move |k: &str| vars.get(k).cloned();
    config.build(&lookup, &reqwest::Client::new()).map_err(|e| e.to_string())
}

/// A delivery of `user.signup` with this rule metadata and payload.
pub fn delivery(metadata: Value, payload: Value) -> Delivery {
    Delivery {
        delivery_id: "dlv_0193a1b2c3d4e5f6".into(),
        attempt: 1,
        event_id: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        event: "user.signup".into(),
        resource: "global".into(),
        resource_id: None,
        workspace: "ws1".into(),
        created_at_ms: 1_700_000_000_000,
        rule_id: "rule-1".into(),
        metadata: serde_json::from_value(metadata).unwrap(),
        payload: payload.into(),
        mapping: Default::default(),
        warnings: Default::default(),
    }
}

/// A typical person payload.
pub fn person() -> Value {
    json!({"email": "Ada@Example.com", "first_name": "Ada", "last_name": "Lovelace", "phone": "+441234"})
}

pub async fn deliver(a: &Arc<dyn Adapter>, d: &Delivery) -> AttemptReport {
    a.deliver(d, Duration::from_secs(5)).await
}

/// Asserts a permanent failure with `code` whose message contains `text`.
pub fn assert_permanent(r: &AttemptReport, code: Outcome, text: &str) {
    match &r.result {
        AttemptResult::Permanent { code: c, message } => {
            assert_eq!(*c, code, "{message}");
            assert!(message.contains(text), "`{message}` lacks `{text}`");
        }
        other => panic!("expected permanent {code:?}, got {other:?}"),
    }
}

/// Asserts a retry with `code` and this wait hint.
pub fn assert_retry(r: &AttemptReport, code: Outcome, after: Option<Duration>) {
    match &r.result {
        AttemptResult::Retry { code: c, after: a, message } => {
            assert_eq!((*c, *a), (code, after), "{message}");
        }
        other => panic!("expected retry {code:?}, got {other:?}"),
    }
}

/// Asserts delivered.
pub fn assert_delivered(r: &AttemptReport) {
    assert_eq!(r.result, AttemptResult::Delivered, "{r:?}");
}

/// Asserts no message or excerpt contains `secret`.
pub fn assert_no_secret(r: &AttemptReport, secret: &str) {
    let text = format!("{:?}", r);
    assert!(!text.contains(secret), "the report leaks a credential: {text}");
}

/// The harness itself: a request nobody expected fails the test.
#[tokio::test]
#[should_panic(expected = "Verifications failed")]
async fn the_fake_fails_on_unexpected_requests() {
    let fake = Fake::start().await;
    reqwest::get(format!("{}/surprise", fake.uri())).await.unwrap();
}

/// Discovers through `a`: `(kind, id, name)` of every option, or the error text.
pub async fn discover(a: &Arc<dyn Adapter>) -> Result<Vec<(String, String, String)>, String> {
    a.discover()
        .await
        .map(|all| all.into_iter().map(|o| (o.kind, o.id, o.name)).collect())
        .map_err(|e| e.to_string())
}

/// `(kind, id, name)` rows for assertions.
pub fn rows(all: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    all.iter().map(|(k, i, n)| ((*k).into(), (*i).into(), (*n).into())).collect()
}
