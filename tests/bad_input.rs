//! Bad input never gets a 5xx, a panic or a vague answer: every refusal is
//! a 4xx whose message names the field or problem.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

/// Slow clients and the server's read timeouts.
#[path = "bad_input/slow.rs"]
mod slow;

/// Framing and codings, and answers to clients that send before they read.
#[path = "bad_input/framing.rs"]
mod framing;

/// Values that parse but do not decode; depth and size of bulk items.
#[path = "bad_input/decode.rs"]
mod decode;

use serde_json::{Value, json};
use support::*;

const EVENTS: &str = "/api/v1/events";
const BULK: &str = "/api/v1/events/bulk";

/// One webhook rule to a port nothing listens on (deliveries are not the point here).
fn config() -> String {
    webhook_config(&[("hook", "http://127.0.0.1:9/hook")], "[0s, 1h]")
}

async fn gateway() -> TestGateway {
    TestGateway::start(&config()).await
}

/// POSTs raw bytes with the publishable key; `None` sends no Content-Type.
async fn send(gw: &TestGateway, path: &str, ctype: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = gw
        .http
        .post(format!("{}{path}", gw.base))
        .header("x-meshes-publishable-key", PK)
        .body(body);
    if let Some(c) = ctype {
        req = req.header("content-type", c);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn json_to(gw: &TestGateway, path: &str, body: &Value) -> (u16, Value) {
    send(gw, path, Some("application/json"), body.to_string().into_bytes()).await
}

/// The answer is `status`, its message contains `needle`, and (for 400s
/// about a field) `error.data` names `param`.
fn refused(got: &(u16, Value), status: u16, param: Option<&str>, needle: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    let message = body["message"].as_str().unwrap_or_else(|| panic!("no message: {body}"));
    assert!(message.contains(needle), "`{message}` does not mention `{needle}`");
    assert_eq!(body["error"]["message"], body["message"]);
    if let Some(p) = param {
        let data = body["error"]["data"].as_array().unwrap();
        assert!(data.iter().any(|d| d["param"] == p), "no `{p}` in {data:?}");
    }
}

#[tokio::test]
async fn invalid_utf8_truncated_and_too_deep_bodies_name_the_problem() {
    let gw = gateway().await;
    for path in [EVENTS, BULK] {
        let bad = b"{\"event\": \"a\", \"payload\": {\"x\": \"\xff\xfe\"}}".to_vec();
        let got = send(&gw, path, Some("application/json"), bad).await;
        refused(&got, 400, Some("body"), "is not valid UTF-8 (first invalid byte at offset 33)");
        let got =
            send(&gw, path, Some("application/json"), b"{\"event\": \"a\", \"pay".to_vec()).await;
        refused(
            &got,
            400,
            Some("body"),
            "is not valid JSON at line 1 column 19: EOF while parsing",
        );
        let deep = "[".repeat(10_000).into_bytes();
        refused(
            &send(&gw, path, Some("application/json"), deep).await,
            400,
            Some("body"),
            "nests deeper than 32 levels",
        );
        let deep =
            format!("{{\"event\":\"a\",\"payload\":{}1{}}}", "{\"k\":".repeat(40), "}".repeat(40));
        refused(
            &send(&gw, path, Some("application/json"), deep.into_bytes()).await,
            400,
            Some("body"),
            "nests deeper than 32",
        );
        // reqwest sends an empty body with no length at all.
        refused(
            &send(&gw, path, Some("application/json"), Vec::new()).await,
            411,
            None,
            "body is empty: the request has neither Content-Length nor Transfer-Encoding",
        );
    }
}

#[tokio::test]
async fn wrong_content_types_are_415_naming_what_was_sent() {
    let gw = gateway().await;
    let body = json!({"event": "user.hook", "payload": {"a": 1}}).to_string().into_bytes();
    for path in [EVENTS, BULK] {
        let got = send(&gw, path, Some("text/plain"), body.clone()).await;
        refused(
            &got,
            415,
            None,
            "expected Content-Type application/json, found Content-Type `text/plain`",
        );
        refused(&send(&gw, path, None, body.clone()).await, 415, None, "found no Content-Type");
        let multipart = "multipart/form-data; boundary=xyz";
        let got = send(&gw, path, Some(multipart), b"--xyz\r\n\r\n{}\r\n--xyz--".to_vec()).await;
        refused(&got, 415, None, "found Content-Type `multipart/form-data; boundary=xyz`");
    }
}

#[tokio::test]
async fn non_objects_and_bad_payloads_name_the_field() {
    let gw = gateway().await;
    for (body, want) in [
        (json!([]), "found an array"),
        (json!(5), "found a number"),
        (json!(null), "found null"),
        (json!("x"), "found a string"),
    ] {
        refused(
            &json_to(&gw, EVENTS, &body).await,
            400,
            Some("body"),
            &format!("body: expected a JSON object, {want}"),
        );
    }
    for (payload, want) in [
        (json!("text"), "payload: expected an object, found a string"),
        (json!([1, 2]), "payload: expected an object, found an array"),
        (json!(3), "payload: expected an object, found a number"),
        (json!({}), "payload: expected at least one field with a non-empty value"),
        (
            json!({"a": null, "b": "", "c": [], "d": {}}),
            "payload: expected at least one field with a non-empty value",
        ),
    ] {
        let got = json_to(&gw, EVENTS, &json!({"event": "user.hook", "payload": payload})).await;
        refused(&got, 400, Some("payload"), want);
    }
    let got = json_to(&gw, EVENTS, &json!({"event": "user.hook"})).await;
    refused(&got, 400, Some("payload"), "payload: is required");
}

#[tokio::test]
async fn wrong_types_in_each_field_say_what_was_expected() {
    let gw = gateway().await;
    let p = json!({"a": 1});
    for (body, field, want) in [
        (json!({"event": 5, "payload": p}), "event", "event: expected a string, found a number"),
        (json!({"payload": p}), "event", "event: is required"),
        (json!({"event": "  ", "payload": p}), "event", "event: must not be empty"),
        (
            json!({"event": "a\u{0}b", "payload": p}),
            "event",
            "event: must not contain control characters",
        ),
        (
            json!({"event": "e", "resource": true, "payload": p}),
            "resource",
            "resource: expected a string, found a boolean",
        ),
        (
            json!({"event": "e", "resource_id": [], "payload": p}),
            "resource_id",
            "resource_id: expected a string, found an array",
        ),
        (
            json!({"event": "e", "resource_id": {}, "payload": p}),
            "resource_id",
            "resource_id: expected a string, found an object",
        ),
        (
            json!({"event": "e", "workspace": 7, "payload": p}),
            "workspace",
            &format!("workspace: expected `{WS}` (the workspace of your key), found 7"),
        ),
        (json!({"event": "e", "workspace": "other", "payload": p}), "workspace", "found \"other\""),
    ] {
        refused(&json_to(&gw, EVENTS, &body).await, 400, Some(field), want);
    }
    // Every problem at once, each named.
    let got = json_to(&gw, EVENTS, &json!({"event": 1, "resource": 2, "payload": 3})).await;
    refused(
        &got,
        400,
        Some("resource"),
        "event: expected a string, found a number; resource: expected a string, found a number; payload: expected an object, found a number",
    );
}

/// A numeric `resource_id` is kept only as the integer that was sent:
/// `1e400` has no value and 30 digits do not fit in 64 bits (they were
/// stored as null and as `1.2345678901234568e+29`). Same on both routes.
#[tokio::test]
async fn numeric_resource_ids_are_kept_exactly_or_refused() {
    let gw = gateway().await;
    let item = |id: &str| {
        format!(r#"{{"event": "user.hook", "resource_id": {id}, "payload": {{"a": 1}}}}"#)
    };
    let want = "expected a string, or an integer within 64 bits (-2^63 to 2^64-1), found";
    let (thirty, big) = ("123456789012345678901234567890", "1".repeat(80));
    let shown_big = format!("{}…", &big[..57]);
    for (id, shown) in [("1e400", "1e400"), (thirty, thirty), (big.as_str(), shown_big.as_str())] {
        let got = send(&gw, EVENTS, Some("application/json"), item(id).into_bytes()).await;
        refused(&got, 400, Some("resource_id"), &format!("resource_id: {want} {shown}"));
    }
    let (status, body) = send(&gw, EVENTS, Some("application/json"), item("42").into_bytes()).await;
    assert_eq!((status, &body["event"]["resource_id"]), (201, &json!("42")), "{body}");
    let bulk = format!("[{}, {}, {}]", item("1e400"), item(thirty), item("42"));
    let (status, body) = send(&gw, BULK, Some("application/json"), bulk.into_bytes()).await;
    assert_eq!(
        (status, &body["count"], &body["error_count"]),
        (207, &json!(1), &json!(2)),
        "{body}"
    );
    for (i, shown) in [(0, "1e400"), (1, thirty)] {
        let record = &body["records"][i];
        assert_eq!(record["message"], format!("[{i}].resource_id: {want} {shown}"), "{body}");
        assert_eq!(record["error"]["data"][0]["param"], format!("[{i}].resource_id"));
    }
    assert_eq!(body["records"][2]["event"]["resource_id"], "42", "{body}");
}

#[tokio::test]
async fn huge_strings_are_accepted_in_payloads_and_refused_as_names() {
    let gw = gateway().await;
    let big = "x".repeat(900 * 1024);
    let (status, body) =
        json_to(&gw, EVENTS, &json!({"event": "user.big", "payload": {"blob": big}})).await;
    assert_eq!(status, 201, "{body}");
    let id = body["event"]["id"].as_str().unwrap();
    let (status, stored) = gw.get(&format!("{EVENTS}/{id}/payload")).await;
    assert_eq!((status, stored["payload"]["blob"].as_str().map(str::len)), (200, Some(big.len())));
    let got = json_to(&gw, EVENTS, &json!({"event": big, "payload": {"a": 1}})).await;
    refused(&got, 400, Some("event"), "event: is 921600 characters long; expected at most 200");
    let got = json_to(
        &gw,
        EVENTS,
        &json!({"event": "e", "resource_id": "é".repeat(201), "payload": {"a": 1}}),
    )
    .await;
    refused(&got, 400, Some("resource_id"), "is 201 characters long; expected at most 200");
}

#[tokio::test]
async fn ten_megabyte_bodies_get_a_readable_413_on_both_routes() {
    let gw = gateway().await;
    let body = format!("{{\"event\":\"e\",\"payload\":{{\"a\":\"{}\"}}}}", "x".repeat(10 << 20));
    for (path, limit) in [(EVENTS, 1 << 20), (BULK, 8 << 20)] {
        // Read the whole answer: a reset instead of a 413 fails here.
        let got = send(&gw, path, Some("application/json"), body.clone().into_bytes()).await;
        refused(&got, 413, None, &format!("request body is larger than {limit} bytes"));
        assert_eq!(got.1["error"]["name"], "PayloadTooLargeError");
    }
    // Without Content-Length (chunked), the limit trips while reading.
    let frames: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> = body
        .as_bytes()
        .chunks(64 << 10)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let chunked = http_body_util::StreamBody::new(futures::stream::iter(frames));
    let resp = gw
        .http
        .post(format!("{}{EVENTS}", gw.base))
        .header("x-meshes-publishable-key", PK)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap(chunked))
        .send()
        .await
        .unwrap();
    let got = (resp.status().as_u16(), resp.json().await.unwrap());
    refused(&got, 413, None, "request body is larger than 1048576 bytes");
    // And the gateway still serves.
    assert_eq!(gw.post_event(json!({"event": "user.hook", "payload": {"a": 1}})).await.0, 201);
}

#[tokio::test]
async fn bulk_shape_errors_name_the_body_or_the_item() {
    let gw = gateway().await;
    let one = json!({"event": "user.hook", "payload": {"a": 1}});
    let many = Value::Array(vec![one.clone(); 101]);
    refused(
        &json_to(&gw, BULK, &many).await,
        400,
        Some("body"),
        "body: expected 1 to 100 events, found 101",
    );
    refused(
        &json_to(&gw, BULK, &json!([])).await,
        400,
        Some("body"),
        "expected 1 to 100 events, found 0",
    );
    for not_array in [json!({"events": [one]}), json!({"events": "nope"}), json!("x"), json!(null)]
    {
        refused(
            &json_to(&gw, BULK, &not_array).await,
            400,
            Some("body"),
            "body: expected a JSON array of 1 to 100 events",
        );
    }
    let (status, body) =
        json_to(&gw, BULK, &json!([one, {"event": 1, "payload": {"a": 1}}, 7])).await;
    assert_eq!(
        (status, &body["count"], &body["error_count"]),
        (207, &json!(1), &json!(2)),
        "{body}"
    );
    assert_eq!(body["records"][1]["error"]["data"][0]["param"], "[1].event");
    assert_eq!(body["records"][1]["message"], "[1].event: expected a string, found a number");
    assert_eq!(body["records"][2]["message"], "[2].body: expected a JSON object, found a number");
}

#[tokio::test]
async fn unknown_event_ids_are_404_or_400_never_500() {
    let gw = gateway().await;
    let long = "a".repeat(3000);
    for id in [
        "nope",
        "123",
        "00000000-0000-0000-0000-000000000000",
        "0195f3c4-9a7e-7cc0-8b5c-1f2e3d4c5b6a",
        "%20",
        "%C3%A9",
        long.as_str(),
        "..%2F..%2Fetc",
    ] {
        for suffix in ["", "/payload", "/rules/r/attempts"] {
            let (status, body) = gw.get(&format!("{EVENTS}/{id}{suffix}")).await;
            assert_eq!(status, 404, "{id}{suffix}: {body}");
            assert!(body["message"].as_str().unwrap().starts_with("no event `"), "{body}");
        }
        for suffix in ["/cancel", "/rules/r/retry", "/rules/r/cancel"] {
            let (status, body) = gw.post(&format!("{EVENTS}/{id}{suffix}")).await;
            assert_eq!(status, 404, "{id}{suffix}: {body}");
            assert!(body["message"].as_str().unwrap().contains("no event `"), "{body}");
        }
    }
    // Percent-decoding to bytes that are not UTF-8 names the path.
    let got = gw.get(&format!("{EVENTS}/%FF%FE")).await;
    refused(&got, 400, Some("path"), "path: could not be read");
}

#[tokio::test]
async fn bad_query_parameters_name_the_parameter() {
    let gw = gateway().await;
    for (query, param, want) in [
        ("limit=0", "limit", "limit: expected an integer from 1 to 200, found `0`"),
        ("limit=abc", "limit", "found `abc`"),
        ("limit=201", "limit", "found `201`"),
        ("limit=-1", "limit", "found `-1`"),
        ("cursor=garbage", "cursor", "cursor: expected the `next_cursor` of a previous page"),
        (
            "status=nope",
            "status",
            "status: expected one of: pending, processing, retrying, completed, failed, canceled; found `nope`",
        ),
        ("status=ok&status=failed", "query", "query: could not be read: duplicate field `status`"),
        (
            "event=%FF",
            "event",
            "event: `%FF` is not UTF-8 once percent-decoded; expected UTF-8 text",
        ),
    ] {
        refused(&gw.get(&format!("{EVENTS}?{query}")).await, 400, Some(param), want);
    }
    let (status, body) = gw.get(&format!("{EVENTS}?limit=5&cursor=")).await;
    assert_eq!((status, &body["limit"]), (200, &json!(5)), "{body}");
    // A mistyped filter is refused: ignored, it returned every event.
    let got = gw.get(&format!("{EVENTS}?limit=5&evnet=user.signup")).await;
    refused(&got, 400, Some("query"), "query: could not be read: evnet: unknown field `evnet`");
}
