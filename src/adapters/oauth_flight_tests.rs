#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Token requests that outlive their callers, and caches shared by config
//! versions and across processes, against a fake token endpoint that
//! rotates refresh tokens and refuses a revoked one (as HubSpot does).

use super::super::{ClientAuth, Grant, TokenCache};
use super::*;
use crate::adapters::http::{Api, parse_url};
use crate::adapters::token_store::{TokenStore, fingerprint};
use serde_json::json;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "ws/crm";

fn cache(server: &MockServer, refresh_token: &str) -> TokenCache {
    let api = Api::at(parse_url("u", &server.uri()).unwrap(), reqwest::Client::new()).unwrap();
    let grant = Grant::RefreshToken { refresh_token: refresh_token.into() };
    TokenCache::new(
        api,
        &["oauth", "token"],
        "cid".into(),
        "csecret".into(),
        ClientAuth::Body,
        grant,
    )
}

fn stored(server: &MockServer, refresh_token: &str, store: &Arc<TokenStore>) -> TokenCache {
    cache(server, refresh_token).persisting(Some(store.slot(KEY.into())))
}

fn soon() -> Instant {
    deadline(Duration::from_secs(5))
}

/// The answer to a grant of `from`: an access token and the rotated `to`.
fn rotated(to: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": format!("at-{to}"), "refresh_token": to, "expires_in": expires_in
    }))
}

/// The endpoint trades `from` for `to`, exactly `times` times.
async fn rotates(server: &MockServer, from: &str, reply: impl Respond + 'static, times: u64) {
    Mock::given(method("POST"))
        .and(body_string_contains(format!("refresh_token={from}&")))
        .respond_with(reply)
        .expect(times)
        .named(format!("refresh with {from}"))
        .mount(server)
        .await;
}

/// Any other refresh token was revoked by its rotation.
async fn revoked_otherwise(server: &MockServer) {
    let refused = ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"}));
    Mock::given(method("POST"))
        .respond_with(refused)
        .expect(0)
        .named("revoked")
        .mount(server)
        .await;
}

/// An answer held until the test drops the returned sender; the receiver
/// hears of each request as it arrives.
struct Gate {
    arrived: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
    reply: ResponseTemplate,
}

fn gate(reply: ResponseTemplate) -> (Gate, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (arrived, heard) = mpsc::channel();
    let (release, held) = mpsc::channel();
    let gate = Gate { arrived: Mutex::new(arrived), release: Mutex::new(held), reply };
    (gate, heard, release)
}

impl Respond for Gate {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let _ = self.arrived.lock().unwrap().send(());
        // Blocks the fake's own thread (not the test's runtime) until released.
        let _ = self.release.lock().unwrap().recv();
        self.reply.clone()
    }
}

async fn arrival(heard: mpsc::Receiver<()>) {
    tokio::task::spawn_blocking(move || heard.recv().unwrap()).await.unwrap();
}

/// A provider that rotates `rtok-one` to `rtok-two` once, its answer held
/// at a gate until `release` is dropped, and refuses every other token;
/// and a token store in `dir`.
struct Held {
    server: MockServer,
    heard: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
    dir: tempfile::TempDir,
    store: Arc<TokenStore>,
}

async fn held_rotation() -> Held {
    let server = MockServer::start().await;
    let (gate, heard, release) = gate(rotated("rtok-two", 3600));
    rotates(&server, "rtok-one", gate, 1).await;
    revoked_otherwise(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path());
    Held { server, heard, release, dir, store }
}

fn refresh_token_of(c: &TokenCache) -> String {
    match &c.inner.state().grant {
        Grant::RefreshToken { refresh_token } => refresh_token.clone(),
        Grant::AccountCredentials { .. } => panic!(),
    }
}

#[tokio::test]
async fn a_refresh_outlives_the_attempt_that_gave_up_and_keeps_the_rotated_token() {
    let Held { server, heard: _heard, release, dir, store } = held_rotation().await;
    let c = stored(&server, "rtok-one", &store);
    // The provider answers only after the attempt's deadline.
    let err = c.token(deadline(Duration::from_millis(100))).await.unwrap_err();
    assert!(matches!(err.result, AttemptResult::Retry { code: Outcome::Timeout, .. }), "{err:?}");
    drop(release);
    // The next attempt gets that refresh's token: no second request.
    assert_eq!(c.token(soon()).await.unwrap().access_token, "at-rtok-two");
    assert_eq!(refresh_token_of(&c), "rtok-two");
    let reopened = TokenStore::open(dir.path()).slot(KEY.into());
    assert_eq!(reopened.current(&fingerprint("rtok-one")).as_deref(), Some("rtok-two"));
    server.verify().await;
}

#[tokio::test]
async fn a_refresh_outlives_a_caller_that_went_away() {
    let Held { server, heard, release, dir, store } = held_rotation().await;
    let c = Arc::new(stored(&server, "rtok-one", &store));
    // An API client disconnecting from GET /connections/{id}/actions drops its request's future.
    let caller = tokio::spawn({
        let c = c.clone();
        async move { c.token(soon()).await.map(|_| ()) }
    });
    arrival(heard).await;
    caller.abort();
    assert!(caller.await.unwrap_err().is_cancelled());
    drop(release);
    store.settle().await;
    assert_eq!(refresh_token_of(&c), "rtok-two");
    let reopened = TokenStore::open(dir.path()).slot(KEY.into());
    assert_eq!(reopened.current(&fingerprint("rtok-one")).as_deref(), Some("rtok-two"));
    assert_eq!(c.token(soon()).await.unwrap().access_token, "at-rtok-two");
    server.verify().await;
}

#[tokio::test(start_paused = true)]
async fn a_token_request_gives_up_after_its_own_timeout_whoever_waits() {
    let server = MockServer::start().await;
    let (gate, _heard, release) = gate(rotated("rtok-two", 3600));
    // Not `rotates`: with the clock paused, the 60 s may pass before the
    // request even reaches the fake (tokio skips ahead while the runtime
    // waits on sockets), so whether it arrives is not asserted.
    Mock::given(method("POST")).respond_with(gate).mount(&server).await;
    let c = cache(&server, "rtok-one");
    let t0 = Instant::now();
    let err = c.token(deadline(Duration::from_secs(600))).await.unwrap_err();
    assert!(matches!(err.result, AttemptResult::Retry { code: Outcome::Timeout, .. }), "{err:?}");
    assert_eq!(Instant::now() - t0, REFRESH_TIMEOUT);
    drop(release);
}

#[tokio::test]
async fn the_adapters_of_two_config_versions_share_one_refresh() {
    let Held { server, heard, release, dir: _dir, store } = held_rotation().await;
    let old = Arc::new(stored(&server, "rtok-one", &store));
    // A reload builds the connection again while the old adapter refreshes.
    let refreshing = tokio::spawn({
        let old = old.clone();
        async move { old.token(soon()).await.unwrap().access_token.clone() }
    });
    arrival(heard).await;
    let new = stored(&server, "rtok-one", &store);
    assert!(Arc::ptr_eq(&old.inner, &new.inner));
    let waiting = new.token(soon());
    drop(release);
    assert_eq!(waiting.await.unwrap().access_token, "at-rtok-two");
    assert_eq!(refreshing.await.unwrap(), "at-rtok-two");
    server.verify().await;
}

#[tokio::test]
async fn new_credentials_get_their_own_cache_and_the_old_chain_leaves_theirs_alone() {
    let server = MockServer::start().await;
    rotates(&server, "configured-1", rotated("old-2", 3600), 1).await;
    rotates(&server, "configured-2", rotated("new-2", 3600), 1).await;
    revoked_otherwise(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let store = TokenStore::open(dir.path());
    let old = stored(&server, "configured-1", &store);
    // The operator put a freshly authorized token in the config.
    let new = stored(&server, "configured-2", &store);
    assert!(!Arc::ptr_eq(&old.inner, &new.inner));
    new.token(soon()).await.unwrap();
    // An attempt on the old config still running refreshes afterwards.
    old.token(soon()).await.unwrap();
    let reopened = TokenStore::open(dir.path()).slot(KEY.into());
    assert_eq!(reopened.current(&fingerprint("configured-2")).as_deref(), Some("new-2"));
    // Another build with the new credentials takes the new cache.
    assert!(Arc::ptr_eq(&stored(&server, "configured-2", &store).inner, &new.inner));
    server.verify().await;
}

#[tokio::test]
async fn a_token_another_process_rotated_is_the_one_sent() {
    let server = MockServer::start().await;
    // 30 s left is inside the early-refresh margin: every use refreshes.
    rotates(&server, "configured", rotated("rotated-1", 30), 1).await;
    rotates(&server, "rotated-1", rotated("rotated-2", 30), 1).await;
    rotates(&server, "rotated-2", rotated("rotated-3", 30), 1).await;
    revoked_otherwise(&server).await;
    let dir = tempfile::tempdir().unwrap();
    // The gateway and `meshes actions --data-dir`: a store (and cache) each.
    let (gateway, cli) = (TokenStore::open(dir.path()), TokenStore::open(dir.path()));
    let on_gateway = stored(&server, "configured", &gateway);
    let on_cli = stored(&server, "configured", &cli);
    assert_eq!(on_gateway.token(soon()).await.unwrap().access_token, "at-rotated-1");
    assert_eq!(on_cli.token(soon()).await.unwrap().access_token, "at-rotated-2");
    assert_eq!(on_gateway.token(soon()).await.unwrap().access_token, "at-rotated-3");
    server.verify().await;
}
