//! Security: what a publishable key may do, which JWTs are refused (tokens
//! crafted by hand), workspace isolation, and that no configured secret ever
//! appears in the gateway's own outputs (logs, metrics, API responses).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// No secret in the gateway's own outputs.
#[path = "security/leaks.rs"]
mod leaks;

/// Idempotency keys never cross credentials.
#[path = "security/idempotency.rs"]
mod idempotency;

/// Echoed credentials come back redacted.
#[path = "security/echoes.rs"]
mod echoes;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
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
            "not a configured access key",
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
    let gw = TestGateway::start_with(&a, move |opts| {
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
