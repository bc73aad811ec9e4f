//! What parses as JSON but would not read back (a lone surrogate, a number
//! beyond a float) is refused where it is, and a bulk item is held to what
//! `POST /events` holds one event to: the same depth, the same size.

use super::support::*;
use super::{BULK, EVENTS, gateway, refused, send};
use serde_json::{Value, json};

const LONE: &str = r"contains an invalid \u escape (a lone surrogate)";
const RANGE: &str = "is a number out of range (beyond a 64-bit float)";

async fn post_text(gw: &TestGateway, path: &str, body: &str) -> (u16, Value) {
    send(gw, path, Some("application/json"), body.as_bytes().to_vec()).await
}

/// A lone surrogate deep in the payload was stored and then read back as
/// `null` everywhere (API, rules, webhooks): now it is a 400 naming it.
#[tokio::test]
async fn undecodable_values_are_refused_with_their_path_on_both_routes() {
    let gw = gateway().await;
    let cases = [
        (
            r#"{"event":"user.hook","payload":{"email":"ada@example.com","x":["\udc00"]}}"#,
            "payload.x[0]",
            LONE,
        ),
        (r#"{"event":"user.\ud800signup","payload":{"a":1}}"#, "event", LONE),
        (r#"{"event":"user.hook","payload":{"a":"x\ud800y"}}"#, "payload.a", LONE),
        (r#"{"event":"user.hook","payload":{"a":1,"x":1e400}}"#, "payload.x", RANGE),
        (r#"{"event":"user.hook","resource":"\ud800","payload":{"a":1}}"#, "resource", LONE),
        (r#"{"event":"user.hook","resource_id":"\udfff","payload":{"a":1}}"#, "resource_id", LONE),
        (r#"{"event":"user.hook","workspace":"\ud800","payload":{"a":1}}"#, "workspace", LONE),
    ];
    let ok = r#"{"event":"user.hook","payload":{"a":1}}"#;
    for (body, param, problem) in cases {
        let want = format!("{param}: {problem}");
        refused(&post_text(&gw, EVENTS, body).await, 400, Some(param), &want);
        let (status, answer) = post_text(&gw, BULK, &format!("[{ok},{body}]")).await;
        assert_eq!((status, &answer["error_count"]), (207, &json!(1)), "{answer}");
        assert_eq!(answer["records"][1]["message"], format!("[1].{want}"), "{body}");
        assert_eq!(answer["records"][1]["error"]["data"][0]["param"], format!("[1].{param}"));
    }
    // Paired surrogates are a character, and such a payload reads back whole.
    let body = r#"{"event":"user.hook","payload":{"a":"\ud83d\ude00"}}"#;
    let (status, created) = post_text(&gw, EVENTS, body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["event"]["id"].as_str().unwrap();
    let (_, stored) = gw.get(&format!("{EVENTS}/{id}/payload")).await;
    assert_eq!(stored["payload"], json!({"a": "😀"}));
}

/// `{"event":…,"payload":` then `levels` nested objects.
fn nested_event(levels: usize) -> String {
    let payload = format!("{}1{}", r#"{"k":"#.repeat(levels), "}".repeat(levels));
    format!(r#"{{"event":"user.hook","payload":{payload}}}"#)
}

/// The bulk array is a level of its own: an event at the depth limit is
/// accepted in a bulk as it is alone, one deeper is refused on both.
#[tokio::test]
async fn bulk_items_may_nest_as_deep_as_a_single_event() {
    let gw = gateway().await;
    let (deepest, too_deep) = (nested_event(31), nested_event(32));
    assert_eq!(post_text(&gw, EVENTS, &deepest).await.0, 201);
    let (status, body) = post_text(&gw, BULK, &format!("[{deepest},{deepest}]")).await;
    assert_eq!((status, &body["count"]), (201, &json!(2)), "{body}");
    refused(&post_text(&gw, EVENTS, &too_deep).await, 400, Some("body"), "deeper than 32 levels");
    let got = post_text(&gw, BULK, &format!("[{deepest},{too_deep}]")).await;
    refused(&got, 400, Some("body"), "body nests deeper than 32 levels within an event");
}

/// The 1 MiB of `POST /events` holds for each event of a bulk request too
/// (only the 8 MiB of the whole body applied): a larger one is refused on
/// its own, the others stored.
#[tokio::test]
async fn a_bulk_item_over_the_single_event_limit_is_refused_alone() {
    let gw = gateway().await;
    let blob = "x".repeat(3 << 20);
    let big = json!({"event": "user.hook", "payload": {"blob": blob}}).to_string();
    let limit = "request body is larger than 1048576 bytes";
    refused(&post_text(&gw, EVENTS, &big).await, 413, None, limit);
    let ok = r#"{"event":"user.hook","payload":{"a":1}}"#;
    let (status, body) = post_text(&gw, BULK, &format!("[{ok}, {big}]")).await;
    assert_eq!((status, &body["count"], &body["error_count"]), (207, &json!(1), &json!(1)));
    let want = format!(
        "[1].body: is {} bytes; one event may be at most 1048576 bytes (as on POST /events)",
        big.len()
    );
    assert_eq!(body["records"][1]["message"], want);
    let (_, list) = gw.get(&format!("{EVENTS}?limit=10")).await;
    assert_eq!(list["count"], 1, "only the small event was stored: {list}");
}
