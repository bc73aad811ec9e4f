//! How bodies are framed and sent, through raw sockets: a client that
//! writes its whole body before reading its answer (Python's
//! `http.client`) must get that answer, never a reset, and framing or
//! coding the gateway does not read is named.

use super::support::*;
use super::{BULK, EVENTS, config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer: status, head (lowercased) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

async fn connect(gw: &TestGateway) -> TcpStream {
    TcpStream::connect(gw.base.trim_start_matches("http://")).await.unwrap()
}

/// Writes `head` (without its blank line) and all of `body`, then reads one
/// answer. A write that fails (the server reset the connection without
/// reading the body) fails the test.
async fn exchange(s: &mut TcpStream, head: &str, body: &[u8]) -> Answer {
    let mut request = format!("{head}\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    s.write_all(&request).await.expect("the server reset the connection before answering");
    read_answer(s).await
}

/// Reads one answer with a `Content-Length` body.
async fn read_answer(s: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Answer { status: head[9..12].parse().unwrap(), head, body };
            }
        }
        let n = s.read(&mut chunk).await.expect("the answer could not be read");
        assert!(n > 0, "closed before a whole answer: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `body` in 64 KiB chunks, with the last chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for c in body.chunks(64 << 10) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn head(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json{extra}")
}

/// The answer is `status` with `needle` in its message.
fn says(a: &Answer, status: u16, needle: &str) {
    assert_eq!(a.status, status, "{}\n{}", a.head, a.body);
    assert!(a.body.contains(needle), "`{}` does not mention `{needle}`", a.body);
}

/// The connection still serves: the refused body was read to its end.
async fn still_serves(s: &mut TcpStream) {
    let a = exchange(s, "GET /healthz HTTP/1.1\r\nHost: t", b"").await;
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test]
async fn chunked_bodies_over_the_limit_get_a_readable_413() {
    let gw = TestGateway::start(&config()).await;
    let pk = format!("\r\nX-Meshes-Publishable-Key: {PK}\r\nTransfer-Encoding: chunked");
    let jwt = format!("\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked", gw.jwt());
    for (path, auth, size, limit) in [
        (EVENTS, &pk, 4 << 20, 1 << 20),
        (BULK, &pk, 10 << 20, 8 << 20),
        ("/api/v1/contacts/upsert", &jwt, 4 << 20, 1 << 20),
    ] {
        let body = format!("{{\"event\":\"e\",\"payload\":{{\"a\":\"{}\"}}}}", "x".repeat(size));
        let mut s = connect(&gw).await;
        let a = exchange(&mut s, &head("POST", path, auth), &chunked(body.as_bytes())).await;
        says(&a, 413, &format!("request body is larger than {limit} bytes"));
        still_serves(&mut s).await;
    }
}

#[tokio::test]
async fn routes_that_never_read_the_body_drain_it_before_answering() {
    let gw = TestGateway::start(&config()).await;
    let body = vec![b'x'; 3_000_000];
    let sized = "\r\nContent-Length: 3000000";
    for (method, path, status, needle) in [
        ("POST", "/api/v1/event", 404, "no route for `/api/v1/event`"),
        ("POST", "/healthz", 405, "does not support POST"),
        ("POST", "/api/v1/rules", 405, "managed in meshes.yaml"),
        ("POST", "/api/v1/connections/x/actions", 405, "does not support POST"),
        ("GET", "/healthz", 200, ""),
    ] {
        let mut s = connect(&gw).await;
        says(&exchange(&mut s, &head(method, path, sized), &body).await, status, needle);
        still_serves(&mut s).await;
        let mut s = connect(&gw).await;
        let chunked_head = head(method, path, "\r\nTransfer-Encoding: chunked");
        says(&exchange(&mut s, &chunked_head, &chunked(&body)).await, status, needle);
        still_serves(&mut s).await;
    }
}

#[tokio::test]
async fn a_malformed_chunk_names_what_is_wrong_with_it() {
    let gw = TestGateway::start(&config()).await;
    let auth = format!("\r\nX-Meshes-Publishable-Key: {PK}\r\nTransfer-Encoding: chunked");
    for path in [EVENTS, BULK] {
        let mut s = connect(&gw).await;
        let a = exchange(&mut s, &head("POST", path, &auth), b"zz\r\n{}\r\n0\r\n\r\n").await;
        says(
            &a,
            400,
            "body could not be read: error reading a body from connection: Invalid chunk size line",
        );
    }
}

#[tokio::test]
async fn content_and_transfer_codings_the_gateway_does_not_decode_are_refused() {
    let gw = TestGateway::start(&config()).await;
    let event = br#"{"event":"user.hook","payload":{"a":1}}"#;
    let pk = format!("\r\nX-Meshes-Publishable-Key: {PK}");
    for path in [EVENTS, BULK] {
        for coding in ["gzip", "br", "identity, deflate"] {
            let extra =
                format!("{pk}\r\nContent-Encoding: {coding}\r\nContent-Length: {}", event.len());
            let mut s = connect(&gw).await;
            let a = exchange(&mut s, &head("POST", path, &extra), event).await;
            let first = coding.rsplit(", ").next().unwrap();
            says(
                &a,
                415,
                &format!(
                    "expected no Content-Encoding (or `identity`): bodies are read uncompressed, found Content-Encoding `{first}`"
                ),
            );
        }
        let extra = format!("{pk}\r\nTransfer-Encoding: gzip, chunked");
        let mut s = connect(&gw).await;
        let a = exchange(&mut s, &head("POST", path, &extra), &chunked(event)).await;
        says(&a, 501, "Transfer-Encoding `gzip` is not supported; expected only `chunked`");
    }
    let a = exchange(
        &mut connect(&gw).await,
        &head(
            "POST",
            EVENTS,
            &format!("{pk}\r\nContent-Encoding: identity\r\nContent-Length: {}", event.len()),
        ),
        event,
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
}

#[tokio::test]
async fn a_post_without_any_length_is_411_saying_what_is_needed() {
    let gw = TestGateway::start(&config()).await;
    let pk = format!("\r\nX-Meshes-Publishable-Key: {PK}");
    for path in [EVENTS, BULK] {
        let mut s = connect(&gw).await;
        let a = exchange(&mut s, &head("POST", path, &pk), b"").await;
        says(
            &a,
            411,
            "body is empty: the request has neither Content-Length nor Transfer-Encoding; expected a JSON body with one of them",
        );
        assert!(a.body.contains("LengthRequiredError"), "{}", a.body);
    }
}

#[tokio::test]
async fn requests_for_no_path_are_405_and_long_paths_are_echoed_cut_short() {
    let gw = TestGateway::start(&config()).await;
    for (target, shown) in [("CONNECT 127.0.0.1:9", "127.0.0.1:9"), ("OPTIONS *", "*")] {
        let a =
            exchange(&mut connect(&gw).await, &format!("{target} HTTP/1.1\r\nHost: t"), b"").await;
        let method = target.split(' ').next().unwrap();
        says(&a, 405, &format!("{method} is not supported for `{shown}`"));
    }
    let long = format!("/{}", "a".repeat(60_000));
    let a =
        exchange(&mut connect(&gw).await, &format!("GET {long} HTTP/1.1\r\nHost: t"), b"").await;
    says(&a, 404, &format!("no route for `/{}…`", "a".repeat(199)));
    assert!(a.body.len() < 1_000, "{}", a.body.len());
}

/// A client waiting for `100 Continue` is answered without being asked for
/// its body: draining it would send the `100` and wait for the upload.
#[tokio::test]
async fn a_client_waiting_to_send_is_answered_at_once() {
    let gw = TestGateway::start(&config()).await;
    let head =
        "POST /api/v1/event HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3000000";
    let mut s = connect(&gw).await;
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(2), exchange(&mut s, head, b""));
    says(
        &answer.await.expect("the answer waited for the body"),
        404,
        "no route for `/api/v1/event`",
    );
}
