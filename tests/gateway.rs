//! Black-box tests of `meshes serve`: a real server on 127.0.0.1:0, a real
//! HTTP receiver, real redb files.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// Restarts and config reloads.
#[path = "gateway/lifecycle.rs"]
mod lifecycle;

/// What receivers get from a stored payload.
#[path = "gateway/payload.rs"]
mod payload;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::*;

fn verify_signature(seen: &Seen) -> bool {
    signed_with(seen, WHSEC)
}

fn signed_with(seen: &Seen, secret: &str) -> bool {
    let h = |n: &str| seen.headers.get(n).unwrap().to_str().unwrap().to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
    mac.update(&seen.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    h("webhook-signature").split(' ').any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_is_delivered_signed_and_shows_completed() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let (status, body) = gw
        .post_event(json!({"event": "user.signup", "payload": {"email": "ada@example.com"}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let ev = &body["event"];
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["event"], "user.signup");
    assert_eq!(ev["workspace"], WS);
    assert_eq!(ev["resource"], "global");
    let id = ev["id"].as_str().unwrap().to_string();
    let seen = rx.wait_for(1).await;
    assert!(verify_signature(&seen[0]), "signature does not verify");
    let delivered: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(delivered["uuid"], id.as_str());
    assert_eq!(delivered["payload"]["email"], "ada@example.com");
    let detail = gw.wait_status(&id, "completed").await;
    assert_eq!(detail["total_rules"], 1);
    assert_eq!(detail["completed_count"], 1);
    assert_eq!(detail["rule_events"][0]["rule_id"], "signup-rule");
    assert_eq!(detail["rule_events"][0]["attempts"], 1);
    let (_, payload) = gw.get(&format!("/api/v1/events/{id}/payload")).await;
    assert_eq!(payload["payload"]["email"], "ada@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let url = format!("{}/api/v1/events", gw.base);
    let ev = json!({"event": "user.signup", "payload": {"email": "a@b.c"}});
    let none = gw.http.post(&url).json(&ev).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = gw
        .http
        .post(&url)
        .header("x-meshes-publishable-key", "mesh_pub_nope")
        .json(&ev)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let read_with_pk =
        gw.http.get(&url).header("x-meshes-publishable-key", PK).send().await.unwrap();
    assert_eq!(read_with_pk.status(), 403);
    let expired = meshes::api::auth::mint_jwt(AK, SECRET.as_bytes(), now_secs() - 120, 60);
    assert_eq!(gw.http.get(&url).bearer_auth(expired).send().await.unwrap().status(), 401);
    let long = meshes::api::auth::mint_jwt(AK, SECRET.as_bytes(), now_secs(), 3600);
    assert_eq!(gw.http.get(&url).bearer_auth(long).send().await.unwrap().status(), 401);
    let forged = meshes::api::auth::mint_jwt(AK, b"not-the-secret", now_secs(), 60);
    assert_eq!(gw.http.get(&url).bearer_auth(forged).send().await.unwrap().status(), 401);
    let ok = gw.http.get(&url).bearer_auth(gw.jwt()).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let preflight = gw
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        preflight.headers().contains_key("access-control-allow-origin"),
        "{:?} {:?}",
        preflight.status(),
        preflight.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_4xx() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let url = format!("{}/api/v1/events", gw.base);
    let send = |body: Vec<u8>, ct: &'static str| {
        gw.http
            .post(&url)
            .header("x-meshes-publishable-key", PK)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let malformed = send(b"{\"event\": ".to_vec(), "application/json").await.unwrap();
    assert_eq!(malformed.status(), 400);
    let missing = gw.post_event(json!({"payload": {"a": 1}})).await;
    assert_eq!(missing.0, 400);
    assert_eq!(missing.1["error"]["data"][0]["param"], "event", "{}", missing.1);
    let empty = gw.post_event(json!({"event": "user.signup", "payload": {"a": ""}})).await;
    assert_eq!(empty.1["error"]["data"][0]["param"], "payload", "{}", empty.1);
    let wrong_type = gw.post_event(json!({"event": 42, "payload": {"a": 1}})).await;
    assert!(
        wrong_type.1["message"].as_str().unwrap().contains("event: expected a string"),
        "{}",
        wrong_type.1
    );
    assert_eq!(
        send(b"event=x".to_vec(), "application/x-www-form-urlencoded").await.unwrap().status(),
        415
    );
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert_eq!(send(deep.into_bytes(), "application/json").await.unwrap().status(), 400);
    // Oversized bodies get a readable 413 (the body is drained), not a reset.
    for _ in 0..3 {
        assert_eq!(send(vec![b'a'; 2 << 20], "application/json").await.unwrap().status(), 413);
    }
    let bulk = gw
        .http
        .post(format!("{url}/bulk"))
        .header("x-meshes-publishable-key", PK)
        .header("content-type", "application/json")
        .body(vec![b' '; 10 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status(), 413);
    let bulk: serde_json::Value = bulk.json().await.unwrap();
    assert!(bulk["message"].as_str().unwrap().contains("8388608"), "{bulk}");
    assert_eq!(send(vec![0xff, 0xfe, b'{'], "application/json").await.unwrap().status(), 400);
    let (code, body) = gw.post("/api/v1/connections").await;
    assert_eq!(code, 405, "{body}");
    assert!(body["message"].as_str().unwrap().contains("meshes.yaml"));
    assert_eq!(gw.get("/api/v1/nope").await.0, 404);
    assert!(rx.seen().is_empty(), "nothing invalid was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_answers_207_in_input_order() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let body = json!([
        {"event": "user.signup", "payload": {"n": 1}},
        {"event": "", "payload": {"n": 2}},
        {"event": "user.signup", "payload": {"n": 3}},
    ]);
    let resp = gw
        .http
        .post(format!("{}/api/v1/events/bulk", gw.base))
        .header("x-meshes-publishable-key", PK)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 207);
    let out: Value = resp.json().await.unwrap();
    assert_eq!((out["count"].as_u64(), out["error_count"].as_u64()), (Some(2), Some(1)));
    assert!(out["records"][0]["event"]["id"].is_string());
    assert_eq!(out["records"][1]["error"]["data"][0]["param"], "[1].event");
    assert!(out["records"][2]["event"]["id"].is_string());
    rx.wait_for(2).await;
    let too_many: Vec<Value> =
        (0..101).map(|i| json!({"event": "x", "payload": {"i": i}})).collect();
    let resp = gw
        .http
        .post(format!("{}/api/v1/events/bulk", gw.base))
        .header("x-meshes-publishable-key", PK)
        .json(&too_many)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_key_creates_one_event() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s]")).await;
    let send = || {
        gw.http
            .post(format!("{}/api/v1/events", gw.base))
            .header("x-meshes-publishable-key", PK)
            .header("idempotency-key", "signup-42")
            .json(&json!({"event": "user.signup", "payload": {"n": 1}}))
            .send()
    };
    let a: Value = send().await.unwrap().json().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(second.headers().get("idempotent-replayed").unwrap(), "true");
    let b: Value = second.json().await.unwrap();
    assert_eq!(a["event"]["id"], b["event"]["id"]);
    rx.wait_for(1).await;
    gw.wait_status(a["event"]["id"].as_str().unwrap(), "completed").await;
    assert_eq!(rx.seen().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_then_success_with_retry_after_and_attempt_log() {
    let rx = Receiver::start().await;
    rx.script([Reply::Status(500), Reply::RetryAfter(429, 1)]);
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s, 50ms, 50ms]")).await;
    let (_, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    let detail = gw.wait_status(&id, "completed").await;
    assert_eq!(detail["rule_events"][0]["attempts"], 3);
    let seen = rx.seen();
    assert_eq!(
        seen[0].headers["webhook-id"], seen[2].headers["webhook-id"],
        "delivery id is stable across retries"
    );
    assert!(
        seen[2].at - seen[1].at >= std::time::Duration::from_millis(1000),
        "Retry-After: 1 was not honoured"
    );
    let (_, attempts) = gw.get(&format!("/api/v1/events/{id}/rules/signup-rule/attempts")).await;
    let outcomes: Vec<&str> = attempts["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, vec!["rejected_server_error", "rate_limited", "delivered"]);
    assert_eq!(attempts["records"][0]["http_status"], 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_failure_stays_queryable_and_manual_retry_delivers() {
    let rx = Receiver::start().await;
    rx.script([Reply::Status(400)]);
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s, 1h]")).await;
    let (_, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    let failed = gw.wait_status(&id, "failed").await;
    assert_eq!(failed["failed_count"], 1);
    assert!(failed["rule_events"][0]["last_error"].as_str().unwrap().contains("400"));
    let (code, resp) = gw.post(&format!("/api/v1/events/{id}/rules/signup-rule/retry")).await;
    assert_eq!(code, 202, "{resp}");
    gw.wait_status(&id, "completed").await;
    assert_eq!(rx.seen().len(), 2);
    let (code, _) = gw.post(&format!("/api/v1/events/{id}/rules/nope/retry")).await;
    assert_eq!(code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_is_refused_while_due_and_cancel_ends_it() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(503));
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s, 2s, 1h]")).await;
    let (_, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    gw.wait_status(&id, "retrying").await;
    let (code, _) = gw.post(&format!("/api/v1/events/{id}/rules/signup-rule/retry")).await;
    assert_eq!(code, 425, "the next attempt is due within 5 s");
    let (code, out) = gw.post(&format!("/api/v1/events/{id}/cancel")).await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["canceled"], 1);
    assert_eq!(out["event"]["status"], "canceled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_an_attempt_that_delivers_ends_completed() {
    let rx = Receiver::start().await;
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    rx.set_default(Reply::Gate(gate.clone()));
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[0s, 1h]")).await;
    let (_, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    rx.wait_for(1).await;
    let (code, out) = gw.post(&format!("/api/v1/events/{id}/cancel")).await;
    assert_eq!((code, out["canceled"].as_u64()), (200, Some(1)), "{out}");
    assert_eq!(out["in_flight"], json!(["signup-rule"]), "{out}");
    gate.notify_one();
    // The receiver got it: the record says so, not `canceled`.
    let detail = gw.wait_status(&id, "completed").await;
    let rule = &detail["rule_events"][0];
    assert_eq!(
        (rule["last_outcome"].as_str(), rule["attempts"].as_u64()),
        (Some("delivered"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_connection_does_not_delay_another() {
    let slow = Receiver::start().await;
    slow.set_default(Reply::Hang);
    let fast = Receiver::start().await;
    let gw =
        TestGateway::start(&webhook_config(&[("slow", &slow.url), ("fast", &fast.url)], "[0s]"))
            .await;
    for i in 0..20 {
        gw.post_event(json!({"event": "user.slow", "payload": {"i": i}})).await;
    }
    let (_, body) = gw.post_event(json!({"event": "user.fast", "payload": {"i": 1}})).await;
    let id = body["event"]["id"].as_str().unwrap().to_string();
    let start = tokio::time::Instant::now();
    gw.wait_status(&id, "completed").await;
    // The slow lane holds all its permits on hanging requests (2 s timeout);
    // the fast one must not wait for them.
    assert!(
        start.elapsed() < std::time::Duration::from_millis(1500),
        "fast connection waited for the slow one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_first_entry_delays_the_first_attempt() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("signup", &rx.url)], "[1h, 1h]")).await;
    let (code, body) = gw.post_event(json!({"event": "user.signup", "payload": {"n": 1}})).await;
    assert_eq!(code, 201);
    let id = body["event"]["id"].as_str().unwrap();
    let (_, detail) = gw.get(&format!("/api/v1/events/{id}")).await;
    let rule = &detail["event"]["rule_events"][0];
    assert_eq!(rule["status"], "pending", "{detail}");
    assert_eq!(rule["attempts"], 0);
    let at = |v: &Value| meshes::clock::parse_rfc3339(v.as_str().unwrap()).unwrap();
    let delay = at(&rule["next_attempt_at"]) - at(&rule["created_at"]);
    assert_eq!(delay, 3_600_000, "{detail}");
}
