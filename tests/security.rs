//! Security: what a publishable key may do, which JWTs are refused (tokens
//! crafted by hand), workspace isolation, and that no configured secret ever
//! appears in the gateway's own outputs (logs, metrics, API responses).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

/// A JWT with this header and these claims, signed with HMAC-SHA256 (or
/// SHA-512 when the header says HS512), or unsigned for `alg: none`.
fn token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = match header["alg"].as_str() {
        Some("HS512") => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Some("none") => Vec::new(),
        _ => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(iat: u64, exp: u64) -> Value {
    json!({"iss": format!("urn:meshes:m2m:{AK}"), "aud": "meshes-api", "iat": iat, "exp": exp})
}

fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": AK})
}

/// Every read route, and the retry and cancel routes, for one event.
fn machine_routes(id: &str) -> Vec<(reqwest::Method, String)> {
    use reqwest::Method as M;
    let r = "signup-rule";
    vec![
        (M::GET, "/api/v1/events".into()),
        (M::GET, format!("/api/v1/events/{id}")),
        (M::GET, format!("/api/v1/events/{id}/payload")),
        (M::GET, format!("/api/v1/events/{id}/rules/{r}/attempts")),
        (M::POST, format!("/api/v1/events/{id}/rules/{r}/retry")),
        (M::POST, format!("/api/v1/events/{id}/rules/{r}/cancel")),
        (M::POST, format!("/api/v1/events/{id}/cancel")),
        (M::GET, "/api/v1/integrations".into()),
        (M::GET, "/api/v1/connections".into()),
        (M::GET, "/api/v1/connections/signup".into()),
        (M::GET, "/api/v1/rules".into()),
        (M::GET, format!("/api/v1/rules/{r}")),
        (M::GET, format!("/api/v1/workspaces/{WS}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishable_key_cannot_read_retry_or_cancel() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let (status, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "completed").await;
    for (method, path) in machine_routes(&id) {
        let resp = gw
            .http
            .request(method.clone(), format!("{}{path}", gw.base))
            .header("x-meshes-publishable-key", PK)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} {path} with a publishable key");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("machine key"),
            "{method} {path}: unclear message {body}"
        );
        if method != reqwest::Method::GET {
            continue;
        }
        // The same read with a machine key is not refused (control).
        let resp = gw
            .http
            .request(method.clone(), format!("{}{path}", gw.base))
            .bearer_auth(gw.jwt())
            .send()
            .await
            .unwrap();
        assert!(![401, 403].contains(&resp.status().as_u16()), "{method} {path} with a JWT");
    }
    // The refused retry and cancels changed nothing.
    let (_, detail) = gw.get(&format!("/api/v1/events/{id}")).await;
    assert_eq!(detail["event"]["status"], "completed");
    assert_eq!(detail["event"]["rule_events"][0]["attempts"], 1);
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jwts_are_refused_with_a_clear_401() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let now = now_secs();
    let s = SECRET.as_bytes();
    let with = |k: &str, v: Value| {
        let mut h = header();
        h[k] = v;
        h
    };
    let mut no_kid = header();
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut wrong_aud = claims(now, now + 30);
    wrong_aud["aud"] = json!("some-other-api");
    let mut wrong_iss = claims(now, now + 30);
    wrong_iss["iss"] = json!("urn:meshes:m2m:mk_someone_else");
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", token(&header(), &claims(now - 120, now - 60), s), "expired"),
        ("iat in the future", token(&header(), &claims(now + 600, now + 630), s), "`iat`"),
        ("wrong aud", token(&header(), &wrong_aud, s), "`aud`"),
        ("wrong iss", token(&header(), &wrong_iss, s), "`iss`"),
        ("alg none", token(&with("alg", json!("none")), &claims(now, now + 30), s), "`none`"),
        ("HS512", token(&with("alg", json!("HS512")), &claims(now, now + 30), s), "HS512"),
        ("RS256", token(&with("alg", json!("RS256")), &claims(now, now + 30), s), "RS256"),
        ("missing kid", token(&no_kid, &claims(now, now + 30), s), "`kid`"),
        (
            "unknown kid",
            token(&with("kid", json!("mk_nope")), &claims(now, now + 30), s),
            "unknown access key",
        ),
        ("long-lived", token(&header(), &claims(now, now + 3_600), s), "lifetime"),
        ("wrong secret", token(&header(), &claims(now, now + 30), b"not-the-secret"), "signature"),
        ("garbage", "garbage".into(), "malformed"),
        ("three garbage parts", "a.b.c".into(), "malformed"),
        ("four parts", format!("{}.x", gw.jwt()), "malformed"),
        ("huge", "a".repeat(10_000), "longer than"),
    ];
    let url = format!("{}/api/v1/events", gw.base);
    for (what, jwt, says) in &cases {
        let resp = gw.http.get(&url).bearer_auth(jwt).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what} was not refused");
        let body: Value = resp.json().await.unwrap();
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(says), "{what}: message {msg:?} does not mention {says:?}");
        assert!(!body.to_string().contains(SECRET), "{what}: the secret is in the answer");
    }
    for (what, value) in
        [("no scheme", gw.jwt()), ("basic", format!("Basic {}", STANDARD.encode("a:b")))]
    {
        let resp = gw.http.get(&url).header("authorization", value).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
    }
    // Control: a well-formed token passes.
    let ok = token(&header(), &claims(now, now + 30), s);
    assert_eq!(gw.http.get(&url).bearer_auth(ok).send().await.unwrap().status(), 200);
}

/// RFC 7519 §4.1.5: a token must not be accepted before its `nbf`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: src/api/auth.rs:278 check_times ignores `nbf`"]
async fn a_jwt_not_valid_yet_is_refused() {
    let gw =
        TestGateway::start(&webhook_config(&[("signup", "http://127.0.0.1:9/hook")], "[0s]")).await;
    let now = now_secs();
    let mut c = claims(now, now + 30);
    c["nbf"] = json!(now + 3_600);
    let url = format!("{}/api/v1/events", gw.base);
    let resp = gw
        .http
        .get(&url)
        .bearer_auth(token(&header(), &c, SECRET.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a token with `nbf` an hour ahead was accepted");
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("nbf"), "{body}");
}

const WS_B: &str = "9a1c3f0e-5b7d-4e2a-8c6f-1d2e3f4a5b6c";
const PK_B: &str = "mesh_pub_test_key_b";
const AK_B: &str = "mk_test_b";
const SECRET_B: &str = "test-machine-secret-b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workspace_cannot_see_another() {
    let rx = Receiver::start().await;
    let rx_b = Receiver::start().await;
    let a = webhook_config(&[("signup", &rx.url)], "[0s]");
    let b = webhook_config(&[("signup", &rx_b.url)], "[0s]")
        .replace(WS, WS_B)
        .replace(PK, PK_B)
        .replace(AK, AK_B)
        .replace(SECRET, SECRET_B);
    let gw = TestGateway::start_with(&a, |opts| {
        // Two files in one directory: two workspaces.
        let conf = opts.config[0].parent().unwrap().to_path_buf();
        std::fs::write(conf.join("b.yaml"), &b).unwrap();
        opts.config = vec![conf];
    })
    .await;
    let (status, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["event"]["id"].as_str().unwrap().to_string();
    rx.wait_for(1).await;
    let jwt_b = || meshes::api::auth::mint_jwt(AK_B, SECRET_B.as_bytes(), now_secs(), 60);
    let send = |method: reqwest::Method, path: String, jwt: String| {
        let req = gw.http.request(method, format!("{}{path}", gw.base)).bearer_auth(jwt);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (method, path) in machine_routes(&id) {
        let (status, body) = send(method.clone(), path.clone(), jwt_b()).await;
        let text = body.to_string();
        if path.contains(&id) || path.contains(WS) {
            assert_eq!(status, 404, "{method} {path} as workspace B: {body}");
        } else if path == "/api/v1/events" {
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["count"], 0, "B lists A's events: {body}");
        }
        let echoed = path.contains(&id) || path.contains(WS);
        assert!(
            !text.contains(&rx.url) && (echoed || !text.contains(WS)),
            "{method} {path} leaks A to B: {text}"
        );
    }
    // A still sees (and kept) its event: B's cancel did nothing.
    let detail = gw.wait_status(&id, "completed").await;
    assert_eq!(detail["workspace"], WS);
    // B's secret cannot sign for A's key, nor A's for B's.
    let forged = meshes::api::auth::mint_jwt(AK, SECRET_B.as_bytes(), now_secs(), 60);
    let (status, _) = send(reqwest::Method::GET, format!("/api/v1/events/{id}"), forged).await;
    assert_eq!(status, 401);
    // B's publishable key ingests into B only: naming A's workspace is refused.
    let post_b = |body: Value| {
        let req = gw
            .http
            .post(format!("{}/api/v1/events", gw.base))
            .header("x-meshes-publishable-key", PK_B)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) =
        post_b(json!({"event": "user.signup", "payload": {"n": 2}, "workspace": WS})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["data"][0]["param"], "workspace");
    let (status, body) = post_b(json!({"event": "user.signup", "payload": {"n": 2}})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["event"]["workspace"], WS_B);
    rx_b.wait_for(1).await;
    assert_eq!(rx.seen().len(), 1, "B's event reached A's receiver");
}

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
    s += &hook("userinfo", &userinfo, "{ type: bearer, token: '${T_BEARER_TOKEN}' }");
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
    let server = Server::spawn_with(dir.path(), &path, &["--log-format", "json"], &env, true);
    let (base, http) = (server.base.clone(), reqwest::Client::new());
    let jwt = || meshes::api::auth::mint_jwt(AK, LEAKS[0].1.as_bytes(), now_secs(), 60);
    let mut t = Transcript::default();
    let ev = |n: u64| json!({"event": "user.signup", "payload": {"n": n}});
    let post = |p: &str| http.post(format!("{base}{p}")).header("x-meshes-publishable-key", PK);
    let (_, created) = t.call(post("/api/v1/events").json(&ev(1))).await;
    let id = created["event"]["id"].as_str().unwrap().to_string();
    t.call(post("/api/v1/events/bulk").json(&json!([ev(2), {"event": ""}]))).await;
    t.call(post("/api/v1/events").header("idempotency-key", "k1").json(&ev(3))).await;
    t.call(post("/api/v1/events").header("idempotency-key", "k1").json(&ev(3))).await;
    t.call(post("/api/v1/events").body("{not json")).await;
    // Wait until every connection was tried: basic fails for good, bearer retries.
    for rule in ["basic-rule", "bearer-rule", "header-rule", "userinfo-rule"] {
        let url = format!("{base}/api/v1/events/{id}/rules/{rule}/attempts");
        eventually(&format!("an attempt of {rule}"), Duration::from_secs(10), || async {
            let (_, body) = Transcript::default().call(http.get(&url).bearer_auth(jwt())).await;
            let retried = ["bearer-rule", "userinfo-rule"].contains(&rule);
            (body["count"].as_u64() > Some(1) || (body["count"] == 1 && !retried)).then_some(())
        })
        .await;
    }
    for (method, path) in machine_routes(&id).into_iter().chain([
        (reqwest::Method::GET, "/api/v1/connections/basic".to_string()),
        (reqwest::Method::GET, "/api/v1/connections/bearer".to_string()),
        (reqwest::Method::GET, "/api/v1/connections/header".to_string()),
        (reqwest::Method::GET, format!("/api/v1/events/{id}/rules/bearer-rule/attempts")),
        (reqwest::Method::GET, format!("/api/v1/events/{id}/rules/basic-rule/attempts")),
        (reqwest::Method::GET, format!("/api/v1/events/{id}/rules/userinfo-rule/attempts")),
        (reqwest::Method::GET, "/api/v1/connections/userinfo".to_string()),
        (reqwest::Method::POST, format!("/api/v1/events/{id}/rules/basic-rule/retry")),
        (reqwest::Method::PUT, "/api/v1/connections/basic".to_string()),
        (reqwest::Method::GET, "/api/v1/nope".to_string()),
    ]) {
        t.call(http.request(method, format!("{base}{path}")).bearer_auth(jwt())).await;
    }
    for bad in ["garbage", &format!("{}x", jwt())] {
        t.call(http.get(format!("{base}/api/v1/events")).bearer_auth(bad)).await;
    }
    t.call(http.get(format!("{base}/healthz"))).await;
    // Reloads: a good one, a malformed secret, a YAML error, an unknown variable.
    let ready = |want: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r: Value =
                http.get(format!("{base}/readyz")).send().await.ok()?.json().await.ok()?;
            let text = r.to_string();
            text.contains(want).then_some(text)
        }
    };
    std::fs::write(&path, leak_config(&rx, &closed, true)).unwrap();
    eventually("the good reload", Duration::from_secs(10), || ready("\"version\":2")).await;
    let bad_secret =
        leak_config(&rx, &closed, true).replace("${T_SIGNING_SECRET}", "${T_BAD_SIGNING}");
    std::fs::write(&path, &bad_secret).unwrap();
    let r1 = eventually("the malformed secret rejected", Duration::from_secs(10), || {
        ready("signing_secret")
    })
    .await;
    std::fs::write(&path, format!("{bad_secret}\n  broken: [\n")).unwrap();
    let r2 = eventually("the YAML error", Duration::from_secs(10), || async {
        ready("last_reload_error").await.filter(|r| *r != r1)
    })
    .await;
    let unset = leak_config(&rx, &closed, true).replace("${T_BEARER_TOKEN}", "${T_UNSET_TOKEN}");
    std::fs::write(&path, unset).unwrap();
    let r3 =
        eventually("the unset variable", Duration::from_secs(10), || ready("T_UNSET_TOKEN")).await;
    t.0.extend([r1, r2, r3]);
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("meshes_deliveries_total"), "{metrics}");
    t.0.push(metrics);
    let mut server = server;
    server.kill();
    let logs = server.lines.lock().unwrap().clone();
    assert!(logs.iter().any(|l| l.contains("DEBUG")), "not a debug log");
    assert!(logs.iter().any(|l| l.contains("config reload rejected")), "no reload error logged");
    check_no_secret(&logs, "log line");
    check_no_secret(&t.0, "response or metrics");
    // The receivers did get the credentials: the secrets were really in use.
    let seen = |i: usize, h: &str| rx[i].seen()[0].headers[h].to_str().unwrap().to_string();
    assert_eq!(
        seen(0, "authorization"),
        format!("Basic {}", STANDARD.encode("ops:basic-Pw7Hn3Qx"))
    );
    assert_eq!(seen(1, "authorization"), "Bearer bearer-Tk5Jm9Rw");
    assert_eq!(seen(2, "x-api-key"), "header-Vl2Bs6Yc");
    assert_eq!(seen(2, "x-custom"), "custom-Hd4Nq8Zt");
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
