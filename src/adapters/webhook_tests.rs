//! Webhook adapter tests, against real HTTP servers on 127.0.0.1.

use super::*;
use crate::adapters::adapter::{Adapter, AttemptReport, AttemptResult, Delivery, EXCERPT_LIMIT};
use crate::config::model::Outcome;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Standard Webhooks test vector's secret (24 bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM=";

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `respond()` for every request on 127.0.0.1 and records requests.
async fn receiver(respond: impl Fn() -> Response + Clone + Send + Sync + 'static) -> (String, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let handler = move |method: axum::http::Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (seen, respond) = (seen.clone(), respond.clone());
        async move {
            let method = method.to_string();
            seen.lock().unwrap().push(Seen { method, uri, headers, body: body.to_vec() });
            respond()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(handler);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, log)
}

fn answer(status: u16, headers: &[(&'static str, &str)], body: impl Into<Bytes>) -> Response {
    let mut resp = (StatusCode::from_u16(status).unwrap(), body.into()).into_response();
    for (k, v) in headers {
        resp.headers_mut().insert(*k, v.parse().unwrap());
    }
    resp
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: EnvString(url.into()),
        method: Method::Post,
        payload_format: PayloadFormat::Wrapped,
        signing_secret: Some(SigningSecrets::One(Secret::new("${HOOK_SECRET}"))),
        auth: None,
        headers: Default::default(),
        delivery: None,
    }
}

fn env(name: &str) -> Option<String> {
    let value = match name {
        "HOOK_SECRET" => SECRET,
        "TOKEN" => "tok_123",
        "TENANT" => "acme",
        "BAD_VALUE" => "line\nbreak-secret",
        _ => return None,
    };
    Some(value.to_string())
}

fn delivery() -> Delivery {
    Delivery {
        delivery_id: "0190c0de-0000-7000-8000-000000000001".into(),
        attempt: 1,
        event_id: "evt_1".into(),
        event: "user.signup".into(),
        resource: "global".into(),
        resource_id: Some("42".into()),
        workspace: "ws".into(),
        created_at_ms: 1_700_000_000_000,
        rule_id: "r1".into(),
        metadata: serde_json::from_value(serde_json::json!({"action": "send_webhook"})).unwrap(),
        payload: serde_json::json!({"email": "ada@example.com"}).into(),
        mapping: Default::default(),
        warnings: Default::default(),
    }
}

async fn deliver(cfg: &WebhookConfig, timeout: Duration) -> AttemptReport {
    let adapter = WebhookAdapter::build(cfg, &env, reqwest::Client::new()).unwrap();
    adapter.deliver(&delivery(), timeout).await
}

fn build_error(cfg: &WebhookConfig) -> String {
    WebhookAdapter::build(cfg, &env, reqwest::Client::new()).unwrap_err().to_string()
}

/// Verifies one `v1,` entry independently of [`sign`].
fn verifies(secret: &str, h: &HeaderMap, body: &[u8], signature: &str) -> bool {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    let (id, ts) = (h["webhook-id"].to_str().unwrap(), h["webhook-timestamp"].to_str().unwrap());
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let raw = B64.decode(signature.strip_prefix("v1,").unwrap()).unwrap();
    mac.verify_slice(&raw).is_ok()
}

fn signatures(h: &HeaderMap) -> Vec<String> {
    h["webhook-signature"].to_str().unwrap().split(' ').map(String::from).collect()
}

#[test]
fn signs_like_the_standard_webhooks_test_vectors() {
    // libraries/javascript/src/webhook.test.ts ("sign function works").
    let key = B64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let sig = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    // libraries/rust/src/lib.rs (test_sign).
    let key = B64.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let sig = sign(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body);
    assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
}

#[tokio::test]
async fn wrapped_post_carries_every_header_and_the_signed_body() {
    let (base, log) = receiver(|| answer(200, &[], "ok")).await;
    let mut cfg = config(&format!("{base}/hooks/in?src=meshes"));
    cfg.auth = Some(WebhookAuth::Bearer { token: Secret::new("${TOKEN}") });
    cfg.headers.insert("X-Tenant".into(), EnvString("${TENANT}".into()));
    let report = deliver(&cfg, Duration::from_secs(5)).await;
    assert_eq!(report.result, AttemptResult::Delivered);
    assert_eq!((report.http_status, report.response_excerpt.as_deref()), (Some(200), Some("ok")));

    let seen = log.lock().unwrap()[0].clone();
    let h = &seen.headers;
    assert_eq!(
        (seen.method.as_str(), seen.uri.to_string()),
        ("POST", "/hooks/in?src=meshes".into())
    );
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["user-agent"], concat!("meshes/", env!("CARGO_PKG_VERSION")));
    assert_eq!(h["authorization"], "Bearer tok_123");
    assert_eq!(h["x-tenant"], "acme");
    assert_eq!(h["webhook-id"], delivery().delivery_id.as_str());
    let ts: u64 = h["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!(ts.abs_diff(crate::clock::now_ms() / 1000) < 60, "timestamp {ts}");
    let sigs = signatures(h);
    assert!(sigs.len() == 1 && verifies(SECRET, h, &seen.body, &sigs[0]), "{sigs:?}");

    let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    let time_sent = sent["time_sent"].as_u64().unwrap();
    assert_eq!(time_sent / 1000, ts, "time_sent and webhook-timestamp come from one clock read");
    let expected = format!(
        r#"{{"uuid":"evt_1","event":"user.signup","resource":"global","resource_id":"42","payload":{{"email":"ada@example.com"}},"time_created":1700000000000,"time_sent":{time_sent}}}"#
    );
    assert_eq!(String::from_utf8(seen.body).unwrap(), expected);
}

#[tokio::test]
async fn raw_put_with_basic_auth_sends_the_payload_alone() {
    let (base, log) = receiver(|| answer(204, &[], "")).await;
    let mut cfg = config(&format!("{base}/raw"));
    cfg.method = Method::Put;
    cfg.payload_format = PayloadFormat::Raw;
    cfg.auth =
        Some(WebhookAuth::Basic { username: EnvString("u".into()), password: Secret::new("p w") });
    let report = deliver(&cfg, Duration::from_secs(5)).await;
    assert_eq!((report.result, report.response_excerpt), (AttemptResult::Delivered, None));
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!((seen.method.as_str(), seen.uri.path()), ("PUT", "/raw"));
    assert_eq!(seen.body, br#"{"email":"ada@example.com"}"#);
    assert_eq!(seen.headers["authorization"], format!("Basic {}", B64.encode("u:p w")));
    assert!(verifies(SECRET, &seen.headers, &seen.body, &signatures(&seen.headers)[0]));
}

#[tokio::test]
async fn header_auth_without_a_secret_still_sends_id_and_timestamp() {
    let (base, log) = receiver(|| answer(202, &[], "")).await;
    let mut cfg = config(&base);
    cfg.method = Method::Patch;
    cfg.signing_secret = None;
    cfg.auth = Some(WebhookAuth::Header { name: "X-Api-Key".into(), value: Secret::new("k_1") });
    cfg.headers.insert("User-Agent".into(), EnvString("custom/1".into()));
    assert_eq!(deliver(&cfg, Duration::from_secs(5)).await.result, AttemptResult::Delivered);
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "PATCH");
    assert_eq!(seen.headers["x-api-key"], "k_1");
    assert_eq!(seen.headers["user-agent"], "custom/1");
    assert!(
        seen.headers.contains_key("webhook-id") && seen.headers.contains_key("webhook-timestamp")
    );
    assert!(!seen.headers.contains_key("webhook-signature"));
}

#[tokio::test]
async fn rotation_sends_one_signature_per_secret() {
    let (base, log) = receiver(|| answer(200, &[], "")).await;
    let mut cfg = config(&base);
    cfg.signing_secret =
        Some(SigningSecrets::Many(vec![Secret::new("${HOOK_SECRET}"), Secret::new(OTHER_SECRET)]));
    deliver(&cfg, Duration::from_secs(5)).await;
    let seen = log.lock().unwrap()[0].clone();
    let sigs = signatures(&seen.headers);
    assert_eq!(sigs.len(), 2);
    assert!(verifies(SECRET, &seen.headers, &seen.body, &sigs[0]));
    assert!(verifies(OTHER_SECRET, &seen.headers, &seen.body, &sigs[1]));
    assert!(!verifies(SECRET, &seen.headers, &seen.body, &sigs[1]));
}

#[tokio::test]
async fn every_attempt_of_a_delivery_has_the_same_webhook_id() {
    let (base, log) = receiver(|| answer(500, &[], "")).await;
    let adapter = WebhookAdapter::build(&config(&base), &env, reqwest::Client::new()).unwrap();
    let mut d = delivery();
    adapter.deliver(&d, Duration::from_secs(5)).await;
    d.attempt = 2;
    adapter.deliver(&d, Duration::from_secs(5)).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].headers["webhook-id"], seen[1].headers["webhook-id"]);
}

/// (status, response headers, expected outcome, retryable, expected `after` in seconds).
type Case = (u16, &'static [(&'static str, &'static str)], Outcome, bool, Option<u64>);

#[tokio::test]
async fn classifies_answers() {
    let http_date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    let date: &'static str = Box::leak(http_date.into_boxed_str());
    let date_header: &'static [(&str, &str)] = Box::leak(Box::new([("retry-after", date)]));
    let cases: [Case; 7] = [
        (410, &[], Outcome::RejectedClientError, false, None),
        (300, &[], Outcome::RejectedClientError, false, None),
        (400, &[], Outcome::RejectedClientError, false, None),
        (401, &[], Outcome::AuthFailed, false, None),
        (500, &[], Outcome::RejectedServerError, true, None),
        (429, &[("retry-after", "7")], Outcome::RateLimited, true, Some(7)),
        (503, date_header, Outcome::RejectedServerError, true, Some(30)),
    ];
    for (status, headers, code, retryable, after) in cases {
        let (base, _) = receiver(move || answer(status, headers, "bad field `email`")).await;
        let r = deliver(&config(&base), Duration::from_secs(5)).await;
        assert_eq!((r.outcome(), r.http_status), (code, Some(status)), "{status}");
        assert_eq!(r.response_excerpt.as_deref(), Some("bad field `email`"), "{status}");
        match r.result {
            AttemptResult::Retry { after: got, .. } => {
                assert!(retryable, "{status}");
                // An HTTP date is whole seconds, so allow the second being cut.
                let got = got.map(|d| d.as_secs_f64().round() as u64);
                assert!(got == after || got == after.map(|s| s - 1), "{status}: {got:?}");
            }
            AttemptResult::Permanent { message, .. } => {
                assert!(!retryable, "{status}");
                assert!(status != 410 || message.contains("gone"), "{message}");
                assert!(status != 300 || message.contains("redirects"), "{message}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_hanging_receiver_times_out_within_the_attempt() {
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/h", hang.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hang.accept().await {
            held.push(socket);
        }
    });
    let r = deliver(&config(&url), Duration::from_millis(300)).await;
    assert_eq!(r.outcome(), Outcome::Timeout);
    assert!(matches!(r.result, AttemptResult::Retry { .. }));
}

#[tokio::test]
async fn a_stalled_body_keeps_the_status_and_what_arrived() {
    let (base, _) = receiver(|| {
        let chunk =
            futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("partial")) });
        let body = Body::from_stream(chunk.chain(futures::stream::pending()));
        (StatusCode::OK, body).into_response()
    })
    .await;
    let r = deliver(&config(&base), Duration::from_millis(300)).await;
    assert_eq!(r.result, AttemptResult::Delivered);
    assert_eq!(r.response_excerpt.as_deref(), Some("partial"));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_body_is_read_for_the_grace_only_not_the_whole_timeout() {
    let (base, _) = receiver(|| {
        let chunk = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("par")) });
        let body = Body::from_stream(chunk.chain(futures::stream::pending()));
        (StatusCode::OK, body).into_response()
    })
    .await;
    let start = tokio::time::Instant::now();
    let r = deliver(&config(&base), Duration::from_secs(60)).await;
    assert_eq!((r.result, r.response_excerpt.as_deref()), (AttemptResult::Delivered, Some("par")));
    // The paused clock only moves to the next timer: the grace's, not the timeout's.
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

#[tokio::test]
async fn an_answer_with_too_many_headers_says_the_destination_answered() {
    let (base, _) = receiver(|| {
        let mut resp = answer(200, &[], "ok");
        for i in 0..150 {
            let name = axum::http::HeaderName::try_from(format!("x-h{i}")).unwrap();
            resp.headers_mut().insert(name, "1".parse().unwrap());
        }
        resp
    })
    .await;
    let r = deliver(&config(&base), Duration::from_secs(5)).await;
    let AttemptResult::Retry { code, message, .. } = &r.result else { panic!("{r:?}") };
    assert_eq!(*code, Outcome::NetworkError);
    assert!(message.contains("more than 100 headers") && message.contains("answered"), "{message}");
}

#[tokio::test]
async fn short_url_parts_do_not_scrub_words_out_of_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let r = deliver(&config(&format!("http://e:o@127.0.0.1:{port}/x?c=1")), Duration::from_secs(5))
        .await;
    let AttemptResult::Retry { message, .. } = &r.result else { panic!("{r:?}") };
    assert!(message.starts_with("could not connect: "), "{message}");
    assert!(!message.contains("[redacted]"), "{message}");
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error_without_the_url_secrets() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://user:pw-SECRET@127.0.0.1:{port}/h?token=QUERY-SECRET");
    let r = deliver(&config(&url), Duration::from_secs(5)).await;
    assert_eq!(r.outcome(), Outcome::NetworkError);
    let AttemptResult::Retry { message, .. } = &r.result else { panic!("{r:?}") };
    assert!(!message.contains("SECRET") && !message.contains("pw"), "{message}");
    assert_eq!((r.http_status, r.response_excerpt), (None, None));
}

#[tokio::test]
async fn huge_bodies_are_cut_and_never_read_to_the_end() {
    let huge = Bytes::from(vec![b'x'; 1 << 20]);
    let (base, _) = receiver(move || answer(500, &[], huge.clone())).await;
    let r = deliver(&config(&base), Duration::from_secs(5)).await;
    assert_eq!(r.response_excerpt.unwrap().len(), EXCERPT_LIMIT);
    // An endless body: reading it all would last the whole (long) timeout.
    let (base, _) = receiver(|| {
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, std::io::Error>(Bytes::from_static(&[b'y'; 1024]))
        });
        (StatusCode::BAD_GATEWAY, Body::from_stream(endless)).into_response()
    })
    .await;
    let cfg = config(&base);
    let attempt = deliver(&cfg, Duration::from_secs(300));
    let r = tokio::time::timeout(Duration::from_secs(30), attempt).await.expect("stopped reading");
    assert_eq!(r.response_excerpt.unwrap().len(), EXCERPT_LIMIT);
}

#[test]
fn build_errors_name_the_field_never_the_value() {
    let e = build_error(&config("${UNSET_WEBHOOK_URL}"));
    assert!(e.contains("`url`") && e.contains("UNSET_WEBHOOK_URL"), "{e}");
    for bad in ["ftp://example.com/x", "not a url tok_SECRET", "mailto:a@b"] {
        let e = build_error(&config(bad));
        assert!(e.contains("`url`") && !e.contains("SECRET"), "{bad}: {e}");
    }
    let mut cfg = config("https://example.com/h");
    for (secret, why) in [
        ("plain-SECRET-value", "whsec_"),
        ("whsec_not*base64*SECRET", "base64"),
        ("whsec_c2hvcnQtU0VDUkVU", "24 bytes"),
    ] {
        cfg.signing_secret =
            Some(SigningSecrets::Many(vec![Secret::new(SECRET), Secret::new(secret)]));
        let e = build_error(&cfg);
        assert!(e.contains("`signing_secret[1]`") && e.contains(why), "{e}");
        assert!(!e.contains("SECRET") && !e.contains("c2hvcnQt"), "{e}");
    }
    let mut cfg = config("https://example.com/h");
    cfg.headers.insert("X-Tenant".into(), EnvString("${BAD_VALUE}".into()));
    let e = build_error(&cfg);
    assert!(e.contains("`headers.X-Tenant`") && !e.contains("break-secret"), "{e}");
}

#[test]
fn configured_headers_cannot_clash() {
    let with = |headers: &[(&str, &str)], auth: Option<WebhookAuth>| {
        let mut cfg = config("https://example.com/h");
        cfg.headers =
            headers.iter().map(|(k, v)| (k.to_string(), EnvString(v.to_string()))).collect();
        cfg.auth = auth;
        WebhookAdapter::build(&cfg, &env, reqwest::Client::new()).map(|_| ())
    };
    assert!(with(&[("webhook-id", "x")], None).is_err(), "signed headers are computed");
    assert!(with(&[("Content-Type", "text/plain")], None).is_err());
    assert!(with(&[("bad name", "x")], None).is_err());
    let bad_auth_name = WebhookAuth::Header { name: "X Key".into(), value: Secret::new("v") };
    let e = with(&[], Some(bad_auth_name)).unwrap_err().to_string();
    assert!(e.contains("`auth.name`"), "{e}");
    assert!(with(&[("X-A", "1"), ("x-a", "2")], None).is_err());
    let bearer = || Some(WebhookAuth::Bearer { token: Secret::new("t") });
    assert!(with(&[("Authorization", "x")], bearer()).is_err());
    assert!(with(&[("X-A", "1")], bearer()).is_ok());
    let basic =
        WebhookAuth::Basic { username: EnvString("a:b".into()), password: Secret::new("p") };
    assert!(with(&[], Some(basic)).is_err(), "user names cannot contain `:`");
}

#[test]
fn debug_never_shows_secrets() {
    let mut cfg = config("https://user:pw-SECRET@example.com/p/PATH-SECRET?t=QUERY-SECRET");
    // Not `bearer`: with the URL's credentials, that is credentials twice.
    cfg.auth =
        Some(WebhookAuth::Header { name: "X-Api-Key".into(), value: Secret::new("tok-SECRET") });
    cfg.headers.insert("X-Key".into(), EnvString("HEADER-SECRET".into()));
    let adapter = WebhookAdapter::build(&cfg, &env, reqwest::Client::new()).unwrap();
    let debug = format!("{adapter:?}");
    assert!(!debug.contains("SECRET") && !debug.contains("MfKQ"), "{debug}");
    assert!(debug.contains("example.com") && debug.contains("x-key"), "{debug}");
}
