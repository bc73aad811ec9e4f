#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::adapters::adapter::AttemptResult;
use reqwest::header::HeaderValue;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn api(server: &MockServer) -> Api {
    let base = parse_url("base_url", &format!("{}/v3", server.uri())).unwrap();
    Api::at(base, reqwest::Client::new()).unwrap().bearer("sk_live_topsecret").unwrap()
}

fn soon() -> Instant {
    deadline(Duration::from_secs(5))
}

#[tokio::test]
async fn joins_encoded_segments_and_sends_auth_and_json() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v3/lists/a%2Fb/members/x@y.co"))
        .and(query_param("skip", "true"))
        .and(header("authorization", "Bearer sk_live_topsecret"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"k": 1})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {"id": 7}})))
        .expect(1)
        .mount(&server)
        .await;
    let reply = api(&server)
        .call(reqwest::Method::PUT, &["lists", "a/b", "members", "x@y.co"])
        .query("skip", "true")
        .json(&json!({"k": 1}))
        .send(soon())
        .await
        .unwrap();
    assert!(reply.ok());
    assert_eq!(reply.str_at("/data/id").as_deref(), Some("7"));
    assert_eq!(reply.classify(), AttemptResult::Delivered);
}

#[tokio::test]
async fn errors_carry_the_provider_message_without_credentials() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(
            json!({"name": "validation_error", "message": "bad key sk_live_topsecret"}),
        ))
        .mount(&server)
        .await;
    let reply = api(&server).call(reqwest::Method::POST, &["x"]).send(soon()).await.unwrap();
    let AttemptResult::Permanent { code, message } = reply.classify() else { panic!() };
    assert_eq!(code, Outcome::RejectedClientError);
    assert_eq!(message, "HTTP 422: validation_error: bad key [redacted]");
    assert!(!reply.excerpt.contains("topsecret"), "{}", reply.excerpt);
}

#[tokio::test]
async fn throttles_carry_the_reset_hint() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("ratelimit-reset", "3"))
        .mount(&server)
        .await;
    let reply = api(&server).call(reqwest::Method::GET, &[]).send(soon()).await.unwrap();
    let AttemptResult::Retry { code, after, .. } = reply.classify() else { panic!() };
    assert_eq!((code, after), (Outcome::RateLimited, Some(Duration::from_secs(3))));
}

#[tokio::test]
async fn a_timeout_retries_only_idempotent_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let api = api(&server);
    let short = || deadline(Duration::from_millis(200));
    let safe = api.call(reqwest::Method::POST, &["a"]).send(short()).await.unwrap_err();
    assert!(matches!(safe.result, AttemptResult::Retry { code: Outcome::Timeout, .. }));
    let once =
        api.call(reqwest::Method::POST, &["a"]).not_idempotent().send(short()).await.unwrap_err();
    let AttemptResult::Permanent { code, message } = once.result else { panic!() };
    assert_eq!(code, Outcome::Timeout);
    assert!(message.contains("not retried automatically"), "{message}");
}

#[tokio::test]
async fn refused_connections_are_always_retryable_and_redacted() {
    // Bind then drop: the port is closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = parse_url("url", &format!("http://127.0.0.1:{port}/hooks/T0/B0/tok_secret")).unwrap();
    let api = Api::secret_url(url, reqwest::Client::new()).unwrap();
    let err = api.call(reqwest::Method::POST, &[]).not_idempotent().send(soon()).await.unwrap_err();
    let AttemptResult::Retry { code, message, .. } = err.result else { panic!() };
    assert_eq!(code, Outcome::NetworkError);
    assert!(!message.contains("tok_secret"), "{message}");
}

#[test]
fn a_base_url_user_and_password_are_redacted_in_every_form() {
    use base64::Engine as _;
    let url = parse_url("base_url", "https://api_user_1:s3cret%2Fpass@api.example/v3").unwrap();
    let api = Api::at(url, reqwest::Client::new()).unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode("api_user_1:s3cret/pass");
    let echoed = format!("Basic {basic} api_user_1 s3cret/pass s3cret%2Fpass");
    assert_eq!(api.redact(&echoed), "Basic [redacted] [redacted] [redacted] [redacted]");
}

#[test]
fn error_messages_from_common_shapes() {
    let cases = [
        (json!({"message": "m"}), "m"),
        (json!({"error": {"message": "nested"}}), "nested"),
        (
            json!({"title": "Member In Compliance State", "detail": "d"}),
            "Member In Compliance State: d",
        ),
        (json!({"errors": [{"field": null, "message": "too many requests"}]}), "too many requests"),
        (json!({"ok": false, "error": "channel_not_found"}), "channel_not_found"),
        (
            json!({"errors": [{"title": "Email address is not valid.", "detail": ""}]}),
            "Email address is not valid.",
        ),
        (json!({"message": "", "errors": [{"title": "T", "detail": "D"}]}), "T: D"),
        (
            json!([{"message": "Already a campaign member.", "errorCode": "DUPLICATE_VALUE"}]),
            "DUPLICATE_VALUE: Already a campaign member.",
        ),
        (
            json!({"code": 50006, "message": "Cannot send an empty message"}),
            "50006: Cannot send an empty message",
        ),
    ];
    for (json, want) in cases {
        assert_eq!(error_message(&json).as_deref(), Some(want), "{json}");
    }
    assert_eq!(error_message(&json!({"id": 1})), None);
}

#[test]
fn reset_headers_in_seconds_or_epoch() {
    let hint = |name: &'static str, value: &str| {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        retry_hint(&h)
    };
    assert_eq!(hint("retry-after", "4"), Some(Duration::from_secs(4)));
    assert_eq!(hint("x-ratelimit-reset-after", "1.5"), Some(Duration::from_millis(1500)));
    assert_eq!(hint("x-ratelimit-reset", "30"), Some(Duration::from_secs(30)));
    let epoch = crate::clock::now_ms() / 1000 + 60;
    let d = hint("x-ratelimit-reset", &epoch.to_string()).unwrap();
    assert!(d > Duration::from_secs(55) && d <= Duration::from_secs(60), "{d:?}");
    assert_eq!(hint("x-ratelimit-reset", "1000000000"), Some(Duration::ZERO));
    assert_eq!(hint("x-ratelimit-reset", "soon"), None);
    assert_eq!(retry_hint(&HeaderMap::new()), None);
}

#[test]
fn base_urls_are_checked_without_echoing_them() {
    for bad in ["not a url", "ftp://x.example", "https://"] {
        let err = parse_url("base_url", bad).unwrap_err().to_string();
        assert!(err.starts_with("connection field `base_url`"), "{err}");
    }
}

/// A keep-alive HTTP server answering `{}` to everything; counts connections.
async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(hyper::Response::new("{}".to_string()))
            });
            let io = hyper_util::rt::TokioIo::new(socket);
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn calls_not_safe_to_repeat_never_reuse_a_kept_alive_connection() {
    use std::sync::atomic::Ordering;
    let (url, accepted) = counting_server().await;
    let api = Api::at(parse_url("base_url", &url).unwrap(), reqwest::Client::new()).unwrap();
    for _ in 0..3 {
        assert!(api.call(reqwest::Method::POST, &["x"]).send(soon()).await.unwrap().ok());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "idempotent calls share a connection");
    for _ in 0..3 {
        let call = api.call(reqwest::Method::POST, &["msg"]).not_idempotent();
        assert!(call.send(soon()).await.unwrap().ok());
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 4, "one new connection per message");
}
