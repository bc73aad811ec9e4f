//! `Idempotency-Key`s are per credential and bound to the body: the public
//! publishable key can neither pre-empt a server's event by using its key
//! first nor read a server-sent event's metadata by replaying its key.

use super::support::*;
use serde_json::Value;

/// Sends `body` to `path` with key `key`, as the publishable key (`jwt`
/// `None`) or a machine JWT: the status, the replay header and the JSON.
async fn send(
    gw: &TestGateway,
    path: &str,
    jwt: Option<String>,
    key: &str,
    body: &str,
) -> (u16, bool, Value) {
    let req = gw.http.post(format!("{}{path}", gw.base)).header("idempotency-key", key);
    let req = match jwt {
        Some(jwt) => req.bearer_auth(jwt),
        None => req.header("x-meshes-publishable-key", PK),
    };
    let resp =
        req.header("content-type", "application/json").body(body.to_string()).send().await.unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (resp.status().as_u16(), replayed, resp.json().await.unwrap())
}

const PAID: &str =
    r#"{"event":"user.paid","resource":"order","resource_id":"42","payload":{"n":1}}"#;
const IGNORED: &str = r#"{"event":"t.ignored","payload":{"n":1}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishable_key_cannot_take_a_machine_keys_idempotency_key() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("paid", &rx.url)], "[0s]")).await;
    let (status, _, squat) = send(&gw, "/api/v1/events", None, "order-42", IGNORED).await;
    assert_eq!(status, 201);
    let (status, replayed, real) =
        send(&gw, "/api/v1/events", Some(gw.jwt()), "order-42", PAID).await;
    assert_eq!((status, replayed), (201, false), "{real}");
    assert_eq!(real["event"]["event"], "user.paid");
    assert_ne!(real["event"]["id"], squat["event"]["id"]);
    let id = real["event"]["id"].as_str().unwrap();
    gw.wait_status(id, "completed").await;
    assert_eq!(rx.seen().len(), 1, "the real event was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishable_key_cannot_read_a_machine_sent_event_by_its_key() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("paid", &rx.url)], "[0s]")).await;
    let (status, _, real) = send(&gw, "/api/v1/events", Some(gw.jwt()), "order-7", PAID).await;
    assert_eq!(status, 201);
    assert_eq!(real["event"]["created_by"], AK);
    // The same body, even: a new event of its own, nothing of the server's.
    let (status, replayed, probe) = send(&gw, "/api/v1/events", None, "order-7", PAID).await;
    assert_eq!((status, replayed), (201, false), "{probe}");
    assert_ne!(probe["event"]["id"], real["event"]["id"]);
    assert_eq!(probe["event"]["created_by"], "publishable_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_body_is_a_409_and_bulk_items_keep_to_themselves() {
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&webhook_config(&[("paid", &rx.url)], "[0s]")).await;
    let (status, _, first) = send(&gw, "/api/v1/events", None, "k", IGNORED).await;
    assert_eq!(status, 201);
    let (status, replayed, again) = send(&gw, "/api/v1/events", None, "k", IGNORED).await;
    assert_eq!((status, replayed, &again["event"]["id"]), (201, true, &first["event"]["id"]));
    let (status, replayed, refused) = send(&gw, "/api/v1/events", None, "k", PAID).await;
    assert_eq!((status, replayed), (409, false), "{refused}");
    assert_eq!(refused["error"]["name"], "ConflictError");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("`k` was already used with a different request body"), "{message}");
    // A bulk request keyed `k` does not meet the single event sent with `k#0`.
    let (_, _, single) = send(&gw, "/api/v1/events", None, "k#0", IGNORED).await;
    let bulk = format!("[{IGNORED}]");
    let (status, replayed, items) = send(&gw, "/api/v1/events/bulk", None, "k", &bulk).await;
    assert_eq!((status, replayed), (201, false), "{items}");
    assert_ne!(items["records"][0]["event"]["id"], single["event"]["id"]);
    // Its repeat says it is one, like a single event's (the OpenAPI text promises it).
    let (status, replayed, again) = send(&gw, "/api/v1/events/bulk", None, "k", &bulk).await;
    assert_eq!((status, replayed, &again), (201, true, &items));
    let (status, _, refused) =
        send(&gw, "/api/v1/events/bulk", None, "k", &format!("[{PAID}]")).await;
    assert_eq!(status, 409, "{refused}");
}

/// Like [`send`] as the publishable key, with the body as sent back.
async fn send_text(gw: &TestGateway, path: &str, key: &str, body: &str) -> (u16, bool, String) {
    let resp = gw
        .http
        .post(format!("{}{path}", gw.base))
        .header("idempotency-key", key)
        .header("x-meshes-publishable-key", PK)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (resp.status().as_u16(), replayed, resp.text().await.unwrap())
}

/// A bulk key is bound to the whole body, refused items included: another
/// body under it is a 409 whichever of its items are valid (item keys
/// alone let `[bad, ok]` then `[ok2, bad]` store a second event), and a
/// repeat answers the first reply byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_key_reused_with_another_body_is_a_409_whatever_its_items() {
    let gw = TestGateway::start(&webhook_config(&[("paid", "http://127.0.0.1:9/")], "[1h]")).await;
    const BULK: &str = "/api/v1/events/bulk";
    const BAD: &str = r#"{"event":7,"payload":{"n":1}}"#;
    const OTHER: &str = r#"{"event":"t.other","payload":{"n":2}}"#;
    let bulk = |items: &[&str]| format!("[{}]", items.join(","));
    let (status, replayed, first) = send_text(&gw, BULK, "k", &bulk(&[BAD, IGNORED])).await;
    assert_eq!((status, replayed), (207, false), "{first}");
    for other in [bulk(&[OTHER, BAD]), bulk(&[BAD, OTHER]), bulk(&[BAD, BAD])] {
        let (status, _, refused) = send_text(&gw, BULK, "k", &other).await;
        assert_eq!(status, 409, "{other}: {refused}");
    }
    let (status, replayed, again) = send_text(&gw, BULK, "k", &bulk(&[BAD, IGNORED])).await;
    assert_eq!((status, replayed, &again), (207, true, &first));
    // A key first used for an all-valid request.
    let (status, _, _) = send_text(&gw, BULK, "k2", &bulk(&[IGNORED])).await;
    assert_eq!(status, 201);
    let (status, _, refused) = send_text(&gw, BULK, "k2", &bulk(&[BAD, OTHER])).await;
    assert_eq!(status, 409, "{refused}");
    // An all-refused request stores nothing, so nothing holds its key.
    let (status, _, _) = send_text(&gw, BULK, "k3", &bulk(&[BAD])).await;
    assert_eq!(status, 400);
    let (status, replayed, _) = send_text(&gw, BULK, "k3", &bulk(&[IGNORED])).await;
    assert_eq!((status, replayed), (201, false));
    let (_, list) = gw.get("/api/v1/events?limit=100").await;
    assert_eq!(list["count"], 3, "one event per request that stored one: {list}");
}
