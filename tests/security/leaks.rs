//! No configured secret appears in the gateway's own outputs: the real
//! binary with debug JSON logs, secrets from the environment, every route,
//! failing deliveries and reloads (some invalid).

use super::machine_routes;
use super::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use std::time::Duration;

/// Secret values, supplied only through the environment.
const LEAKS: &[(&str, &str)] = &[
    ("T_MACHINE_SECRET", "machine-Zq8vXw2RkLp4"),
    ("T_SIGNING_SECRET", "whsec_bGVhay10ZXN0LXNpZ25pbmcta2V5LVE3cFgybVY5"),
    ("T_BASIC_PASSWORD", "basic-Pw7Hn3Qx"),
    ("T_BEARER_TOKEN", "bearer-Tk5Jm9Rw"),
    ("T_HEADER_VALUE", "header-Vl2Bs6Yc"),
    ("T_CUSTOM_HEADER", "custom-Hd4Nq8Zt"),
    ("T_URL_PASSWORD", "urlpw-Gf6Ts1Lk"),
    ("T_URL_TOKEN", "urltok-Wb9Ce4Ra"),
    // Malformed (not `whsec_`): errors about it must not echo it.
    ("T_BAD_SIGNING", "not-a-whsec-Mx3Kd7Pw"),
];

/// Three receivers (basic, bearer and header auth) and a `userinfo`
/// connection whose URL carries a password and a token, on a closed port.
fn leak_config(rx: &[&Receiver; 3], closed: &str, extra_rule: bool) -> String {
    let hook = |name: &str, url: &str, auth: &str| {
        format!(
            "  {name}:\n    type: webhook\n    url: {url}\n    signing_secret: ${{T_SIGNING_SECRET}}\n    auth: {auth}\n    headers: {{ X-Custom: '${{T_CUSTOM_HEADER}}' }}\n    delivery: {{ timeout: 2s }}\n"
        )
    };
    let mut s = format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: test\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: ${{T_MACHINE_SECRET}}\nconnections:\n"
    );
    s += &hook(
        "basic",
        &rx[0].url,
        "{ type: basic, username: ops, password: '${T_BASIC_PASSWORD}' }",
    );
    s += &hook("bearer", &rx[1].url, "{ type: bearer, token: '${T_BEARER_TOKEN}' }");
    s += &hook(
        "header",
        &rx[2].url,
        "{ type: header, name: X-Api-Key, value: '${T_HEADER_VALUE}' }",
    );
    let userinfo = format!("http://ops:${{T_URL_PASSWORD}}@{closed}/hook?token=${{T_URL_TOKEN}}");
    // Not `bearer`: the URL's credentials are the `Authorization` header.
    let api_key = "{ type: header, name: X-Api-Key, value: '${T_HEADER_VALUE}' }";
    s += &hook("userinfo", &userinfo, api_key);
    s += "rules:\n";
    for name in ["basic", "bearer", "header", "userinfo"] {
        s += &format!(
            "  - id: {name}-rule\n    event: user.signup\n    connection: {name}\n    metadata: {{ action: send_webhook }}\n"
        );
    }
    if extra_rule {
        s += "  - id: extra-rule\n    event: user.extra\n    connection: header\n    metadata: { action: send_webhook }\n";
    }
    s + "delivery:\n  retry: { schedule: [0s, 200ms, 1h], jitter: 0 }\n"
}

/// Everything the gateway answered: status line, headers and body.
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    async fn call(&mut self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        let text = resp.text().await.unwrap();
        self.0.push(format!("{status} {headers} {text}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_metrics_or_responses() {
    let rx = [&Receiver::start().await, &Receiver::start().await, &Receiver::start().await];
    // Failing deliveries: their bodies are recorded as excerpts (they hold no secret).
    rx[0].set_default(Reply::Status(401));
    rx[1].set_default(Reply::Status(500));
    // A port nobody listens on: connection refused.
    let closed =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    let path = config_path(dir.path());
    std::fs::write(&path, leak_config(&rx, &closed, false)).unwrap();
    let mut env: Vec<(&str, &str)> = LEAKS.to_vec();
    env.push(("MESHES_LOG", "debug"));
    let mut server = Server::spawn_with(dir.path(), &path, &["--log-format", "json"], &env, true);
    let api = Api { http: reqwest::Client::new(), base: server.base.clone() };
    let mut t = Transcript::default();
    exercise_api(&api, &mut t).await;
    let reload = |text: String| std::fs::write(&path, text).unwrap();
    exercise_reloads(&api, &mut t, |extra, var| {
        reload(leak_config(&rx, &closed, extra).replace("${T_SIGNING_SECRET}", var));
    })
    .await;
    let metrics = api.http.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("meshes_deliveries_total"), "{metrics}");
    t.0.push(metrics);
    server.kill();
    let logs = server.lines.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.contains("DEBUG")), "not a debug log");
    assert!(logs.iter().any(|l| l.contains("config reload rejected")), "no reload error logged");
    check_no_secret(&logs, "log line");
    check_no_secret(&t.0, "response or metrics");
    // The receivers did get the credentials: the secrets were really in use.
    let seen = |i: usize, h: &str| rx[i].seen()[0].headers[h].to_str().unwrap().to_string();
    let basic = format!("Basic {}", STANDARD.encode("ops:basic-Pw7Hn3Qx"));
    assert_eq!(seen(0, "authorization"), basic);
    assert_eq!(seen(1, "authorization"), "Bearer bearer-Tk5Jm9Rw");
    assert_eq!(seen(2, "x-api-key"), "header-Vl2Bs6Yc");
    assert_eq!(seen(2, "x-custom"), "custom-Hd4Nq8Zt");
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn jwt(&self) -> String {
        meshes::api::auth::mint_jwt(AK, LEAKS[0].1.as_bytes(), now_secs(), 60)
    }
    /// `/readyz` as text once it contains `want`.
    async fn ready(&self, want: &str) -> Option<String> {
        let r: Value = self.http.get(self.url("/readyz")).send().await.ok()?.json().await.ok()?;
        let text = r.to_string();
        text.contains(want).then_some(text)
    }
}

/// Ingest (good and bad), failing deliveries, then every route.
async fn exercise_api(api: &Api, t: &mut Transcript) {
    let ev = |n: u64| json!({"event": "user.signup", "payload": {"n": n}});
    let post = |p: &str| api.http.post(api.url(p)).header("x-meshes-publishable-key", PK);
    let (_, created) = t.call(post("/api/v1/events").json(&ev(1))).await;
    let id = created["event"]["id"].as_str().unwrap().to_string();
    t.call(post("/api/v1/events/bulk").json(&json!([ev(2), {"event": ""}]))).await;
    t.call(post("/api/v1/events").header("idempotency-key", "k1").json(&ev(3))).await;
    t.call(post("/api/v1/events").header("idempotency-key", "k1").json(&ev(3))).await;
    t.call(post("/api/v1/events").body("{not json")).await;
    // Wait until every connection was tried: basic fails for good, bearer and userinfo retry.
    for rule in ["basic-rule", "bearer-rule", "header-rule", "userinfo-rule"] {
        let url = api.url(&format!("/api/v1/events/{id}/rules/{rule}/attempts"));
        eventually(&format!("an attempt of {rule}"), Duration::from_secs(10), || async {
            let req = api.http.get(&url).bearer_auth(api.jwt());
            let (_, body) = Transcript::default().call(req).await;
            let retried = ["bearer-rule", "userinfo-rule"].contains(&rule);
            (body["count"].as_u64() > Some(1) || (body["count"] == 1 && !retried)).then_some(())
        })
        .await;
    }
    let get = |p: String| (reqwest::Method::GET, p);
    let mut routes = vec![
        get(format!("/api/v1/events/{id}/rules/bearer-rule/attempts")),
        get(format!("/api/v1/events/{id}/rules/basic-rule/attempts")),
        get(format!("/api/v1/events/{id}/rules/userinfo-rule/attempts")),
        (reqwest::Method::POST, format!("/api/v1/events/{id}/rules/basic-rule/retry")),
        (reqwest::Method::PUT, "/api/v1/connections/basic".to_string()),
        get("/api/v1/nope".to_string()),
    ];
    for c in ["basic", "bearer", "header", "userinfo"] {
        routes.push(get(format!("/api/v1/connections/{c}")));
    }
    // The generic routes last: they include the cancels.
    routes.extend(machine_routes(&id));
    for (method, path) in routes {
        t.call(api.http.request(method, api.url(&path)).bearer_auth(api.jwt())).await;
    }
    for bad in ["garbage".to_string(), format!("{}x", api.jwt())] {
        t.call(api.http.get(api.url("/api/v1/events")).bearer_auth(bad)).await;
    }
    t.call(api.http.get(api.url("/healthz"))).await;
}

/// Reloads: a good one, a malformed signing secret, a YAML error, an unset
/// variable. `write(extra_rule, signing secret reference)` writes a config.
async fn exercise_reloads(api: &Api, t: &mut Transcript, write: impl Fn(bool, &str)) {
    let wait = |what: &'static str, want: &'static str| {
        eventually(what, Duration::from_secs(10), move || api.ready(want))
    };
    write(true, "${T_SIGNING_SECRET}");
    t.0.push(wait("the good reload", "\"version\":2").await);
    write(true, "${T_BAD_SIGNING}");
    t.0.push(wait("the malformed secret rejected", "signing_secret").await);
    write(true, "${T_SIGNING_SECRET}\n  broken: [");
    t.0.push(wait("the YAML error", "yaml-syntax").await);
    write(true, "${T_UNSET_SECRET}");
    t.0.push(wait("the unset variable", "T_UNSET_SECRET").await);
}

/// Fails naming the secret and the first text holding it (as is, or base64).
fn check_no_secret(texts: &[String], what: &str) {
    for (var, secret) in LEAKS {
        let key = secret.trim_start_matches("whsec_");
        let decoded = STANDARD.decode(key).ok().and_then(|k| String::from_utf8(k).ok());
        let forms = [
            decoded.unwrap_or_else(|| secret.to_string()),
            secret.to_string(),
            STANDARD.encode(secret),
            URL_SAFE_NO_PAD.encode(secret),
            STANDARD.encode(format!("ops:{secret}")),
            // The decoded HMAC key of a `whsec_` secret, re-encoded without padding.
            key.trim_end_matches('=').to_string(),
        ];
        for text in texts {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "{var} ({form}) leaked in a {what}: {text}");
            }
        }
    }
}
