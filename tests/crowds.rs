//! What a crowd of clients can make the server hold is bounded: request
//! heads per connection, and request bodies over all connections together.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BUDGET: usize = 8 << 10;

fn config() -> String {
    webhook_config(&[("hook", "http://127.0.0.1:9/hook")], "[0s, 1h]")
}

/// An event whose JSON body is about `size` bytes.
fn event_of(size: usize) -> Value {
    json!({"event": "e", "payload": {"pad": "x".repeat(size)}})
}

/// POSTs one event; the status, `Retry-After` and body.
async fn post(gw: &TestGateway, event: &Value) -> (u16, Option<String>, Value) {
    let resp = gw
        .http
        .post(format!("{}/api/v1/events", gw.base))
        .header("x-meshes-publishable-key", PK)
        .json(event)
        .send()
        .await
        .unwrap();
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), retry, resp.json().await.unwrap())
}

/// Reads one answer (head and `Content-Length` body) off a kept-alive connection.
async fn answer(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk)).await;
        let n = n.expect("no answer").unwrap();
        assert!(n > 0, "closed before answering: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok())
                .unwrap_or(0usize);
            if body.len() >= len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn bodies_past_the_memory_budget_are_503_until_the_holder_is_answered() {
    let gw = TestGateway::start_with(&config(), |o| o.server.body_memory = BUDGET).await;
    // A holds 6,000 of the 8,192 bytes: most of a bulk body, then it stalls.
    let mut a = TcpStream::connect(gw.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /api/v1/events/bulk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: {PK}\r\nContent-Length: 7000\r\n\r\n["
    );
    a.write_all(head.as_bytes()).await.unwrap();
    a.write_all(&[b' '; 5999]).await.unwrap();
    // B's 3,000 bytes fit alone but not beside A's: refused once A's bytes are read.
    let big = event_of(3000);
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let (retry, body) = eventually("a 503 beside the stalled body", Duration::from_secs(5), || {
        let (gw, big, accepted) = (&gw, &big, &accepted);
        async move {
            let (status, retry, body) = post(gw, big).await;
            match status {
                503 => Some((retry, body)),
                201 => {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    None
                }
                other => panic!("expected 201 or 503, got {other}: {body}"),
            }
        }
    })
    .await;
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["error"]["name"], "ServiceUnavailableError", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("body was refused: the server already holds its limit of 8192 bytes"),
        "{message}"
    );
    // A small event still fits.
    assert_eq!(post(&gw, &event_of(100)).await.0, 201);
    // A finishes (an empty array, refused) and keeps its connection open:
    // the bytes are released with the answer, not when the connection ends.
    let mut rest = vec![b' '; 999];
    rest.push(b']');
    a.write_all(&rest).await.unwrap();
    let a_answer = answer(&mut a).await;
    assert!(a_answer.starts_with("HTTP/1.1 400"), "{a_answer}");
    assert!(a_answer.contains("expected 1 to 100 events, found 0"), "{a_answer}");
    assert_eq!(post(&gw, &big).await.0, 201);
    // Every 201 is stored; nothing refused is.
    let (status, list) = gw.get("/api/v1/events?limit=100").await;
    assert_eq!(status, 200, "{list}");
    let stored = list["records"].as_array().unwrap().len();
    assert_eq!(stored, accepted.into_inner() + 2, "{list}");
    drop(a);
}

/// A request without a valid key is refused from its headers: its body is
/// drained, never held, so it cannot take the budget from keyed clients.
#[tokio::test]
async fn bodies_without_a_valid_key_never_hold_the_budget() {
    let gw = TestGateway::start_with(&config(), |o| o.server.body_memory = BUDGET).await;
    let mut a = TcpStream::connect(gw.base.trim_start_matches("http://")).await.unwrap();
    let head = "POST /api/v1/events/bulk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: not-a-key\r\nContent-Length: 7000\r\n\r\n[";
    a.write_all(head.as_bytes()).await.unwrap();
    a.write_all(&[b' '; 5999]).await.unwrap();
    // Held, those 6,000 bytes would leave no room for 3,000 more (the test
    // above): every keyed request fits while A stalls.
    for _ in 0..20 {
        let (status, _, body) = post(&gw, &event_of(3000)).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut rest = vec![b' '; 999];
    rest.push(b']');
    a.write_all(&rest).await.unwrap();
    let a_answer = answer(&mut a).await;
    assert!(a_answer.starts_with("HTTP/1.1 401"), "{a_answer}");
    // Read to its end, so the connection stays usable.
    assert!(!a_answer.to_ascii_lowercase().contains("connection: close"), "{a_answer}");
    let again = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: {PK}\r\nContent-Length: {}\r\n\r\n{}",
        event_of(10).to_string().len(),
        event_of(10)
    );
    a.write_all(again.as_bytes()).await.unwrap();
    let second = answer(&mut a).await;
    assert!(second.starts_with("HTTP/1.1 201"), "{second}");
}

/// A client that waits for `100 Continue` before sending its body is
/// refused from the headers without being asked for the body.
#[tokio::test]
async fn a_refused_client_waiting_to_continue_is_not_asked_for_its_body() {
    let gw = TestGateway::start(&config()).await;
    let mut a = TcpStream::connect(gw.base.trim_start_matches("http://")).await.unwrap();
    let head = "POST /api/v1/events/bulk HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: not-a-key\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n";
    a.write_all(head.as_bytes()).await.unwrap();
    let first = answer(&mut a).await;
    assert!(first.starts_with("HTTP/1.1 401"), "no 100 Continue first: {first}");
    assert!(first.to_ascii_lowercase().contains("connection: close"), "{first}");
}

/// An oversized body is drained before its 413 (so the client can read
/// it), and what is drained is thrown away as it comes: it is not held
/// against the budget.
#[tokio::test]
async fn drained_oversized_bodies_never_hold_the_budget() {
    let gw = TestGateway::start_with(&config(), |o| o.server.body_memory = BUDGET).await;
    let mut a = TcpStream::connect(gw.base.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: {PK}\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    a.write_all(head.as_bytes()).await.unwrap();
    a.write_all(&[b' '; 7000]).await.unwrap();
    for _ in 0..20 {
        let (status, _, body) = post(&gw, &event_of(3000)).await;
        assert_eq!(status, 201, "{body}");
    }
    a.write_all(&vec![b' '; (2 << 20) - 7000]).await.unwrap();
    let a_answer = answer(&mut a).await;
    assert!(a_answer.starts_with("HTTP/1.1 413"), "{a_answer}");
}

#[tokio::test]
async fn request_heads_past_64_kib_are_431_however_they_arrive() {
    let gw = TestGateway::start(&config()).await;
    let body = event_of(10).to_string();
    // Around the limit, and in one write: hyper checks its read buffer's cap
    // between reads, and a single read used to let ~110 KiB heads through.
    let cases = [(32 << 10, 201), ((64 << 10) - 400, 201), ((64 << 10) + 1, 431), (100 << 10, 431)];
    for (size, want) in cases {
        let head = format!(
            "POST /api/v1/events HTTP/1.1\r\nhost: x\r\nx-meshes-publishable-key: {PK}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nx-padding: {}\r\n\r\n",
            body.len(),
            "p".repeat(size)
        );
        let status = raw_status(&gw, format!("{head}{body}").as_bytes()).await;
        assert_eq!(status, want, "a {size}-byte header sent in one write");
    }
    // The server is unharmed.
    assert_eq!(post(&gw, &event_of(10)).await.0, 201);
}

/// Sends `request` in one write on a new connection; the answer's status.
async fn raw_status(gw: &TestGateway, request: &[u8]) -> u16 {
    let addr = gw.base.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // A refused head is answered before the rest is read: the write may fail.
    let _ = conn.write_all(request).await;
    let mut answer = vec![0; 64];
    let n = conn.read(&mut answer).await.unwrap();
    let line = String::from_utf8_lossy(&answer[..n]).into_owned();
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{line:?}"))
}
