#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::adapters::http::{deadline, parse_url};
use serde_json::json;
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn cache(server: &MockServer, auth: ClientAuth, grant: Grant) -> TokenCache {
    let api = Api::at(parse_url("u", &server.uri()).unwrap(), reqwest::Client::new()).unwrap();
    TokenCache::new(api, &["oauth", "token"], "cid".into(), "csecret".into(), auth, grant)
}

fn refresh(token: &str) -> Grant {
    Grant::RefreshToken { refresh_token: token.into() }
}

fn soon() -> Instant {
    deadline(Duration::from_secs(5))
}

fn token_reply(access: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access, "expires_in": expires_in, "refresh_token": "rtok-two",
        "instance_url": "https://acme.my.salesforce.com"
    }))
}

#[tokio::test]
async fn refreshes_once_then_caches_and_keeps_the_rotated_token() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(body_string(
            "grant_type=refresh_token&refresh_token=rtok-one&client_id=cid&client_secret=csecret",
        ))
        .respond_with(token_reply("at-1", 3600))
        .expect(1)
        .mount(&server)
        .await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    let first = c.token(soon()).await.unwrap();
    let again = c.token(soon()).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(first.access_token, "at-1");
    assert_eq!(first.response["instance_url"], "https://acme.my.salesforce.com");
    assert!(
        matches!(&c.inner.state().grant, Grant::RefreshToken { refresh_token } if refresh_token == "rtok-two")
    );
}

#[tokio::test]
async fn a_token_near_expiry_is_refreshed_before_use() {
    let server = MockServer::start().await;
    // 30 s left is inside the early-refresh margin: every use refreshes.
    Mock::given(method("POST"))
        .respond_with(token_reply("short", 30))
        .expect(2)
        .mount(&server)
        .await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    c.token(soon()).await.unwrap();
    c.token(soon()).await.unwrap();
}

#[tokio::test]
async fn an_absurd_expires_in_is_capped_at_a_day_as_a_number_or_a_string() {
    // Up to u64::MAX seconds used to overflow `Instant + Duration` and
    // panic the attempt. Capped, the token is used and cached for a day.
    for expires_in in
        [json!(u64::MAX), json!(u64::MAX.to_string()), json!(9_300_000_000_000_000_000u64)]
    {
        let server = MockServer::start().await;
        let reply = json!({"access_token": "long", "expires_in": expires_in});
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(reply))
            .expect(1)
            .mount(&server)
            .await;
        let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
        let before = Instant::now();
        let token = c.token(soon()).await.unwrap();
        assert_eq!(token.access_token, "long");
        let lifetime = token.refresh_at.saturating_duration_since(before);
        let capped = MAX_LIFETIME - EARLY;
        assert!(lifetime >= capped, "{expires_in}: {lifetime:?}");
        assert!(lifetime <= capped + Duration::from_secs(5), "{expires_in}: {lifetime:?}");
        assert!(Arc::ptr_eq(&token, &c.token(soon()).await.unwrap()), "cached, not refetched");
    }
}

#[tokio::test]
async fn zoom_account_credentials_use_basic_auth() {
    let server = MockServer::start().await;
    // base64("cid:csecret")
    Mock::given(method("POST"))
        .and(header("authorization", "Basic Y2lkOmNzZWNyZXQ="))
        .and(body_string("grant_type=account_credentials&account_id=acc-1"))
        .respond_with(token_reply("zoom-at", 3600))
        .expect(1)
        .mount(&server)
        .await;
    let grant = Grant::AccountCredentials { account_id: "acc-1".into() };
    let c = cache(&server, ClientAuth::Basic, grant);
    assert_eq!(c.token(soon()).await.unwrap().access_token, "zoom-at");
}

#[tokio::test]
async fn a_refused_refresh_is_a_permanent_auth_failure_without_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "expired rtok-one for csecret"
        })))
        .mount(&server)
        .await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    let err = c.token(soon()).await.unwrap_err();
    let AttemptResult::Permanent { code, message } = err.result else { panic!() };
    assert_eq!(code, Outcome::AuthFailed);
    assert_eq!(
        message,
        "the OAuth token refresh failed: invalid_grant: expired [redacted] for [redacted]"
    );
    assert!(!err.response_excerpt.unwrap().contains("csecret"));
}

#[tokio::test]
async fn a_token_endpoint_outage_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    let err = c.token(soon()).await.unwrap_err();
    assert!(matches!(err.result, AttemptResult::Retry { code: Outcome::RejectedServerError, .. }));
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries_the_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(token_reply("at", 3600))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/thing"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    let api = Api::at(parse_url("u", &server.uri()).unwrap(), reqwest::Client::new()).unwrap();
    let reply = c
        .authorized(soon(), |t| {
            let call = api.call(reqwest::Method::GET, &["thing"]).bearer(&t.access_token);
            call.send(soon())
        })
        .await
        .unwrap();
    // Still 401 after one refresh: the provider's answer stands (auth_failed).
    assert_eq!(reply.status, 401);
    assert!(matches!(reply.classify(), AttemptResult::Permanent { code: Outcome::AuthFailed, .. }));
}

#[tokio::test]
async fn waiting_behind_a_slow_refresh_honours_the_deadline() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(token_reply("slow", 3600).set_delay(Duration::from_secs(10)))
        .expect(1)
        .mount(&server)
        .await;
    let c = Arc::new(cache(&server, ClientAuth::Body, refresh("rtok-one")));
    let first = tokio::spawn({
        let c = c.clone();
        async move { c.token(deadline(Duration::from_secs(20))).await.map(|_| ()) }
    });
    // Whichever starts the refresh, the second caller waits on the same one
    // (one request) and gives up at its own deadline.
    let err = c.token(deadline(Duration::from_millis(200))).await.unwrap_err();
    assert!(matches!(err.result, AttemptResult::Retry { code: Outcome::Timeout, .. }), "{err:?}");
    first.abort();
}

#[tokio::test]
async fn a_rotated_refresh_token_is_redacted_from_later_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string(
            "grant_type=refresh_token&refresh_token=rtok-one&client_id=cid&client_secret=csecret",
        ))
        .respond_with(token_reply("at-1", 30))
        .expect(1)
        .mount(&server)
        .await;
    // The next refresh (30 s left is inside the early-refresh margin) fails
    // with a body that echoes the rotated token.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_grant", "token": "rtok-two"})),
        )
        .mount(&server)
        .await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    c.token(soon()).await.unwrap();
    let err = c.token(soon()).await.unwrap_err();
    let text = format!("{:?} {:?}", err.result, err.response_excerpt);
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(!text.contains("rtok-two"), "{text}");
}

/// Answers with the request's `Authorization` header, as an echo service does.
struct EchoAuth(u16);

impl wiremock::Respond for EchoAuth {
    fn respond(&self, r: &wiremock::Request) -> ResponseTemplate {
        let auth = r.headers.get("authorization").map(|v| v.to_str().unwrap().to_string());
        ResponseTemplate::new(self.0).set_body_json(json!({"message": format!("got {auth:?}")}))
    }
}

#[tokio::test]
async fn each_access_token_is_redacted_from_the_answer_to_the_call_it_was_sent_on() {
    let server = MockServer::start().await;
    // A 401 with the first token: the refresh rotates it to the second.
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(token_reply("access-token-one", 3600))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(token_reply("access-token-two", 3600))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("authorization", "Bearer access-token-one"))
        .respond_with(EchoAuth(401))
        .mount(&server)
        .await;
    Mock::given(method("GET")).respond_with(EchoAuth(500)).mount(&server).await;
    let c = cache(&server, ClientAuth::Body, refresh("rtok-one"));
    let api = Api::at(parse_url("u", &server.uri()).unwrap(), reqwest::Client::new()).unwrap();
    let mut answers = Vec::new();
    let reply = c
        .authorized(soon(), |t| {
            let call = api.call(reqwest::Method::GET, &["thing"]).bearer(&t.access_token);
            call.send(soon())
        })
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    answers.push(reply.excerpt.clone());
    answers.push(format!("{:?}", reply.classify()));
    for text in &answers {
        assert!(text.contains("Bearer [redacted]"), "{text}");
        assert!(!text.contains("access-token"), "{text}");
    }
    // The connection's own list did not grow: the token is the call's alone.
    assert!(api.redact("access-token-two").contains("access-token-two"));
}

#[tokio::test]
async fn the_basic_client_credentials_are_redacted_from_the_token_endpoint_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(EchoAuth(400)).mount(&server).await;
    let c = cache(&server, ClientAuth::Basic, refresh("rtok-one"));
    let err = c.token(soon()).await.unwrap_err();
    let encoded = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("cid:csecret")
    };
    let text = format!("{err:?}");
    assert!(text.contains("Basic [redacted]"), "{text}");
    assert!(!text.contains(&encoded), "{text}");
}

/// Answers 400 with the request's form body, as JSON (`/` escaped as PHP
/// does) and raw, as a debug error page would.
struct EchoBody;

impl wiremock::Respond for EchoBody {
    fn respond(&self, r: &wiremock::Request) -> ResponseTemplate {
        let form = String::from_utf8(r.body.clone()).unwrap();
        let decoded: Vec<(String, String)> = url_decoded(&form);
        let json = serde_json::to_string(&decoded).unwrap().replace('/', "\\/");
        ResponseTemplate::new(400).set_body_string(format!("bad request {form} {json}"))
    }
}

fn url_decoded(form: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex: String = [bytes.next().unwrap(), bytes.next().unwrap()]
                    .iter()
                    .map(|&c| char::from(c))
                    .collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).unwrap()
    };
    form.split('&')
        .map(|kv| kv.split_once('=').unwrap())
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

#[tokio::test]
async fn an_echoed_token_request_leaks_no_encoded_or_escaped_secret() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(EchoBody).expect(1).mount(&server).await;
    let api = Api::at(parse_url("u", &server.uri()).unwrap(), reqwest::Client::new()).unwrap();
    let (secret, refresh_token) = ("cs+ec/ret=&%x", "rt/to+ken==&%1");
    let grant = Grant::RefreshToken { refresh_token: refresh_token.into() };
    let c = TokenCache::new(api, &["t"], "cid".into(), secret.into(), ClientAuth::Body, grant);
    let err = c.token(soon()).await.unwrap_err();
    let text = format!("{:?} {:?}", err.result, err.response_excerpt);
    assert!(
        text.contains("bad request grant_type=refresh_token&refresh_token=[redacted]"),
        "{text}"
    );
    for leak in ["rt%2F", "rt/to", "rt\\/to", "cs%2B", "cs+ec", "ec\\/ret", "ken%3D", "%25x"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}
