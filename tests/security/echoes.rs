//! Destinations that echo the request (echo services, debug error pages,
//! API gateways) answer with our own credentials. Those answers are kept
//! (attempt excerpts, `last_error`, discovery errors) and must come back
//! redacted: webhooks with bearer, basic and header auth, custom headers,
//! URL path and query tokens, and a HubSpot OAuth connection whose access
//! token is fetched at run time. The real binary, debug JSON logs.

use super::support::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Credentials, supplied only through the environment.
const SECRETS: &[(&str, &str)] = &[
    ("E_BEARER", "echo-bearer-Tq4Wm8Zr"),
    ("E_BASIC_PW", "echo-basic-Hv2Kc6Ns"),
    ("E_API_KEY", "echo-apikey-Lp3Xd9Gb"),
    ("E_CUSTOM", "echo-custom-Rj5Yt1Vf"),
    ("E_PATH", "echo-path-Bn7Qs3Mw"),
    ("E_QUERY", "echo-query-Fz8Ck2Ph"),
    ("E_SIGNING", "whsec_ZWNoby1zaWduaW5nLWtleS1mb3ItdGhlLXRlc3Rz"),
    ("E_HS_SECRET", "echo-hs-secret-Wd6Jn4Tx"),
    ("E_HS_REFRESH", "echo-hs-refresh-Ys9Ga5Ku"),
];

/// The access token the fake HubSpot issues: never in the config or env.
const ACCESS: &str = "echo-hs-access-Mc2Vr7Ee";

/// Answers with everything it received as a JSON `message` (so it is both
/// the excerpt and the provider message a report quotes), with the status
/// the path asks for: `/ok/…` 200, `/deny/…` 401, anything else 500.
struct Echo;

impl Respond for Echo {
    fn respond(&self, r: &Request) -> ResponseTemplate {
        let headers: Vec<String> = r
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
            .collect();
        let text = format!(
            "{} {} {} body: {}",
            r.method,
            r.url,
            headers.join("; "),
            String::from_utf8_lossy(&r.body)
        );
        let status = match r.url.path() {
            p if p.starts_with("/ok/") => 200,
            p if p.starts_with("/deny/") => 401,
            _ => 500,
        };
        ResponseTemplate::new(status).set_body_json(json!({ "message": text }))
    }
}

async fn echo_server() -> MockServer {
    let server = MockServer::start().await;
    let token = json!({"access_token": ACCESS, "expires_in": 3600});
    Mock::given(method("POST"))
        .and(path("/oauth/v3/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(token))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any()).respond_with(Echo).mount(&server).await;
    server
}

/// Rules and the connections they deliver to.
const RULES: &[(&str, &str)] = &[
    ("bearer", "user.signup"),
    ("basic", "user.signup"),
    ("header", "user.signup"),
    ("query", "user.signup"),
    ("hs", "lead.added"),
];

fn config(echo: &str) -> String {
    let hook = |name: &str, url: &str, auth: &str| {
        format!(
            "  {name}:\n    type: webhook\n    url: {url}\n    signing_secret: ${{E_SIGNING}}\n    auth: {auth}\n    headers: {{ X-Custom: '${{E_CUSTOM}}' }}\n"
        )
    };
    let mut s = format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: test\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: {SECRET}\nconnections:\n"
    );
    s += &hook("bearer", &format!("{echo}/ok/bearer"), "{ type: bearer, token: '${E_BEARER}' }");
    let basic = "{ type: basic, username: ops, password: '${E_BASIC_PW}' }";
    s += &hook("basic", &format!("{echo}/deny/basic"), basic);
    let header = "{ type: header, name: X-Api-Key, value: '${E_API_KEY}' }";
    s += &hook("header", &format!("{echo}/fail/header"), header);
    let query = format!("{echo}/ok/${{E_PATH}}/hook?token=${{E_QUERY}}");
    s += &hook("query", &query, "{ type: bearer, token: '${E_BEARER}' }");
    s += &format!(
        "  hs:\n    type: hubspot\n    base_url: {echo}\n    client_id: echo-client\n    client_secret: ${{E_HS_SECRET}}\n    refresh_token: ${{E_HS_REFRESH}}\n"
    );
    s += "rules:\n";
    for (name, event) in RULES {
        let meta = if *name == "hs" {
            "{ action: add_to_list, id: 7 }"
        } else {
            "{ action: send_webhook }"
        };
        s += &format!(
            "  - id: {name}-rule\n    event: {event}\n    connection: {name}\n    metadata: {meta}\n"
        );
    }
    s + "delivery:\n  retry: { schedule: [0s, 1h], jitter: 0 }\n"
}

/// The binary's API, with a machine JWT.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn get(&self, p: &str) -> (u16, String) {
        let jwt = meshes::api::auth::mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60);
        let req = self.http.get(format!("{}/api/v1{p}", self.base)).bearer_auth(jwt);
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn post(&self, body: Value) -> String {
        let req = self.http.post(format!("{}/api/v1/events", self.base));
        let resp = req.header("x-meshes-publishable-key", PK).json(&body).send().await.unwrap();
        let created: Value = resp.json().await.unwrap();
        created["event"]["id"].as_str().unwrap().to_string()
    }

    /// The rule's attempts once there is one, then the event itself.
    async fn kept(&self, event: &str, rule: &str) -> [String; 2] {
        let p = format!("/events/{event}/rules/{rule}/attempts");
        let attempts =
            eventually(&format!("an attempt of {rule}"), Duration::from_secs(15), || {
                let p = p.clone();
                async move {
                    let (_, text) = self.get(&p).await;
                    let v: Value = serde_json::from_str(&text).ok()?;
                    (v["count"].as_u64() >= Some(1)).then_some(text)
                }
            })
            .await;
        // The echo really came back (and was kept), only redacted.
        assert!(attempts.contains("[redacted]"), "{rule}: {attempts}");
        [attempts, self.get(&format!("/events/{event}")).await.1]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoed_credentials_are_redacted_everywhere_they_are_kept() {
    let echo = echo_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    let conf = config_path(dir.path());
    std::fs::write(&conf, config(&echo.uri())).unwrap();
    let mut env = SECRETS.to_vec();
    env.push(("MESHES_LOG", "debug"));
    let mut server = Server::spawn_with(dir.path(), &conf, &["--log-format", "json"], &env, false);
    let api = Client { http: reqwest::Client::new(), base: server.base.clone() };
    let signup = api.post(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    let lead = api.post(json!({"event": "lead.added", "payload": {"email": "ada@example.com"}}));
    let lead = lead.await;
    let mut kept = Vec::new();
    for (name, _) in RULES {
        let event = if *name == "hs" { &lead } else { &signup };
        kept.extend(api.kept(event, &format!("{name}-rule")).await);
    }
    let (status, actions) = api.get("/connections/hs/actions").await;
    assert_eq!(status, 502, "{actions}");
    assert!(actions.contains("[redacted]"), "{actions}");
    kept.push(actions);
    server.kill();
    let logs = server.lines.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.contains("DEBUG")), "not a debug log");
    check_absent(&kept, "an API answer");
    check_absent(&logs, "a log line");
    check_sent(&echo).await;
}

/// The destinations did get the credentials: they were really in use.
async fn check_sent(echo: &MockServer) {
    let received = echo.received_requests().await.unwrap();
    let sent = |p: &str, h: &str| {
        let r = received.iter().find(|r| r.url.path().starts_with(p)).unwrap();
        r.headers.get(h).unwrap().to_str().unwrap().to_string()
    };
    assert_eq!(sent("/ok/bearer", "authorization"), "Bearer echo-bearer-Tq4Wm8Zr");
    assert_eq!(sent("/deny/basic", "authorization"), basic_value());
    assert_eq!(sent("/fail/header", "x-api-key"), "echo-apikey-Lp3Xd9Gb");
    assert_eq!(sent("/ok/echo-path-Bn7Qs3Mw/hook", "x-custom"), "echo-custom-Rj5Yt1Vf");
    assert_eq!(sent("/crm/", "authorization"), format!("Bearer {ACCESS}"));
}

fn basic_value() -> String {
    format!("Basic {}", STANDARD.encode("ops:echo-basic-Hv2Kc6Ns"))
}

/// Fails naming the credential and the first text holding it.
fn check_absent(texts: &[String], what: &str) {
    let mut forms: Vec<String> = SECRETS.iter().map(|(_, s)| (*s).to_string()).collect();
    forms.push(ACCESS.to_string());
    forms.push(STANDARD.encode("ops:echo-basic-Hv2Kc6Ns"));
    forms.push("ZWNoby1zaWduaW5nLWtleS1mb3ItdGhlLXRlc3Rz".to_string());
    for text in texts {
        for form in &forms {
            assert!(!text.contains(form.as_str()), "{form} leaked in {what}: {text}");
        }
    }
}
