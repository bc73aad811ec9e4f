//! A gateway and a webhook receiver on loopback, for black-box tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use meshes::api::auth::mint_jwt;
use meshes::gateway::{Gateway, GatewayOptions, start};
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod faults;
#[allow(unused_imports)]
pub use faults::*;

pub const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
/// The variables reqwest reads a proxy from (either case): the gateway
/// follows them, and the tests' loopback destinations must not depend on
/// the machine's.
pub const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];
pub const PK: &str = "mesh_pub_test_key_0001";
pub const AK: &str = "mk_test_0001";
pub const SECRET: &str = "test-machine-secret-0001";
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query (the receiver answers on every path, so it can stand
    /// in for a provider's API as well as a webhook).
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: tokio::time::Instant,
}

/// What the receiver answers, in order; then `default`.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    Hang,
    /// Answers 200 once the test opens the gate (`notify_one`).
    Gate(Arc<Notify>),
}

#[derive(Debug, Default)]
struct ReceiverState {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Option<Reply>>,
    notify: Notify,
}

/// A webhook receiver on 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(st): State<Arc<ReceiverState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let uri = uri.to_string();
    st.seen.lock().unwrap().push(Seen { uri, headers, body, at: tokio::time::Instant::now() });
    st.notify.notify_waiters();
    let reply = st
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| st.default.lock().unwrap().clone())
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), "ok").into_response(),
        Reply::RetryAfter(s, secs) => {
            (StatusCode::from_u16(s).unwrap(), [("retry-after", secs.to_string())], "slow down")
                .into_response()
        }
        Reply::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        Reply::Gate(gate) => {
            gate.notified().await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new().fallback(receive).with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    /// Waits (at most 10 s) until `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.state.notify.notified();
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("receiver got {} request(s), expected {n}", self.seen().len());
            }
        }
    }
}

/// Adjusts the gateway's options before each boot.
pub type Tune = Arc<dyn Fn(&mut GatewayOptions) + Send + Sync>;

/// A running gateway with its config file and data directory.
pub struct TestGateway {
    pub gateway: Option<Gateway>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// Installed as the gateway's Prometheus handle on every boot.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Applied to the options on every boot (timeouts, disk faults, …).
    pub tune: Option<Tune>,
}

pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("conf").join("meshes.yaml")
}

/// A config with one workspace, a webhook connection per `(name, url)` and one rule per connection.
pub fn webhook_config(hooks: &[(&str, &str)], schedule: &str) -> String {
    let mut s = format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: test\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: {SECRET}\nconnections:\n"
    );
    for (name, url) in hooks {
        s.push_str(&format!("  {name}:\n    type: webhook\n    url: {url}\n    signing_secret: {WHSEC}\n    delivery: {{ timeout: 2s }}\n"));
    }
    s.push_str("rules:\n");
    for (name, _) in hooks {
        s.push_str(&format!("  - id: {name}-rule\n    event: user.{name}\n    connection: {name}\n    metadata: {{ action: send_webhook }}\n"));
    }
    s.push_str(&format!("delivery:\n  retry: {{ schedule: {schedule}, jitter: 0 }}\n"));
    s
}

/// A workspace with one webhook connection `mail` to `url`, the retry
/// `schedule`, then `body` (automations, sequences, …) appended as is.
pub fn mail_config(url: &str, schedule: &str, body: &str) -> String {
    format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: {PK} }}\n\
         machine_keys: [ {{ access_key: {AK}, secret: {SECRET} }} ]\n\
         connections:\n  mail: {{ type: webhook, url: {url}, signing_secret: {WHSEC} }}\n\
         delivery: {{ retry: {{ schedule: {schedule}, jitter: 0 }} }}\n{body}"
    )
}

impl TestGateway {
    pub async fn start(config: &str) -> TestGateway {
        let mut tg = Self::prepare(config);
        tg.boot().await;
        tg
    }

    /// Writes the config in a new temp dir without starting: set fields, then `boot`.
    pub fn prepare(config: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        std::fs::write(config_path(dir.path()), config).unwrap();
        TestGateway {
            gateway: None,
            base: String::new(),
            dir,
            http: reqwest::Client::new(),
            metrics: None,
            tune: None,
        }
    }

    /// Like [`TestGateway::start`], with the options adjusted by `tune` on every boot.
    pub async fn start_with(
        config: &str,
        tune: impl Fn(&mut GatewayOptions) + Send + Sync + 'static,
    ) -> TestGateway {
        let mut tg = Self::prepare(config);
        tg.tune = Some(Arc::new(tune));
        tg.boot().await;
        tg
    }

    /// (Re)starts on the same data directory.
    pub async fn boot(&mut self) {
        let mut opts =
            GatewayOptions::new(vec![config_path(self.dir.path())], self.dir.path().join("data"));
        opts.debounce = Duration::from_millis(50);
        opts.drain = Duration::from_secs(2);
        opts.metrics = self.metrics.clone();
        if let Some(tune) = &self.tune {
            tune(&mut opts);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = start(opts, listener, CancellationToken::new()).await.unwrap();
        self.base = format!("http://{}", gw.addr);
        self.gateway = Some(gw);
    }

    pub async fn stop(&mut self) {
        if let Some(gw) = self.gateway.take() {
            gw.stop().await;
        }
    }

    pub fn jwt(&self) -> String {
        mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60)
    }

    pub async fn post_event(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/events", self.base))
            .header("x-meshes-publishable-key", PK)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.machine(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        self.machine(reqwest::Method::POST, path).await
    }

    /// A request with a fresh machine JWT; the status and the JSON body (or null).
    async fn machine(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.jwt())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls the event (at most 10 s) until its status is `want`.
    pub async fn wait_status(&self, id: &str, want: &str) -> Value {
        let path = format!("/api/v1/events/{id}");
        eventually(&format!("event {id} reaching `{want}`"), Duration::from_secs(10), || async {
            let (_, body) = self.get(&path).await;
            (body["event"]["status"] == want).then(|| body["event"].clone())
        })
        .await
    }

    pub fn write_config(&self, text: &str) {
        let path = config_path(self.dir.path());
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }
}

/// A store opener that runs `first` before opening: something that happens
/// while the store opens (a repair after a crash can take seconds).
pub fn opening_after(first: impl Fn() + Send + Sync + 'static) -> meshes::store::db::Opener {
    let open = meshes::store::db::file_opener();
    Arc::new(move |path: &Path| {
        first();
        open(path)
    })
}

/// `cfg` with a second rule (`second`, on `user.other`, through `connection`).
pub fn with_second_rule(cfg: &str, connection: &str) -> String {
    cfg.replace(
        "rules:\n",
        &format!("rules:\n  - id: second\n    event: user.other\n    connection: {connection}\n    metadata: {{ action: send_webhook }}\n"),
    )
}

/// Waits (at most 10 s) until `/readyz` shows config `version`.
pub async fn config_version(gw: &TestGateway, version: u64) -> Value {
    eventually(&format!("config version {version}"), Duration::from_secs(10), || async {
        let (_, r) = gw.get("/readyz").await;
        (r["config"]["version"] == version).then_some(r)
    })
    .await
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Polls `check` every 20 ms until it returns `Some`, failing the test with
/// `what` after `limit`. Waiting on an observable condition, never on time.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `meshes serve` binary on a free loopback port.
pub struct Server {
    pub child: std::process::Child,
    pub base: String,
    /// Every stderr line so far.
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts it on `dir`'s config and data directory and waits for the
    /// address it reports (the text banner or the JSON `meshes is serving` line).
    pub fn spawn(dir: &Path, extra: &[&str]) -> Server {
        Self::spawn_with(dir, &config_path(dir), extra, &[], false)
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

pub(crate) fn listening_addr(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("meshes listening on http://") {
        return rest.split_whitespace().next().map(str::to_string);
    }
    let v: Value = serde_json::from_str(line).ok()?;
    (v["message"] == "meshes is serving").then(|| v["addr"].as_str().map(str::to_string))?
}
