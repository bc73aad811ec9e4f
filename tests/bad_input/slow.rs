//! Slow clients: headers or bodies that arrive too slowly are cut off by
//! the server's read timeouts, with a 408 once the headers are in.

use super::support::*;
use super::{BULK, EVENTS, config};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short_timeouts() -> meshes::server::ServerOptions {
    meshes::server::ServerOptions {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(500),
        ..meshes::server::ServerOptions::default()
    }
}

/// Reads until the server closes the connection (a reset counts).
async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let read = read.expect("the server kept a slow connection open");
    assert!(
        read.is_ok()
            || read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    buf
}

#[tokio::test]
async fn slowloris_headers_are_dropped_after_the_header_timeout() {
    let gw = TestGateway::start_with(&config(), |o| o.server = short_timeouts()).await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /api/v1/events HT").await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    // Trickle a header byte every 50 ms, forever: only the timeout ends it.
    let trickle = tokio::spawn(async move {
        wr.write_all(b"TP/1.1\r\n").await.ok();
        while wr.write_all(b"X").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let began = tokio::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a slowloris connection open");
    assert!(
        buf.is_empty(),
        "no answer is owed to unfinished headers: {:?}",
        String::from_utf8_lossy(&buf)
    );
    assert!(began.elapsed() >= Duration::from_millis(250), "closed before the timeout");
    trickle.abort();
    assert_eq!(gw.post_event(json!({"event": "e", "payload": {"a": 1}})).await.0, 201);
}

#[tokio::test]
async fn a_stalled_body_gets_a_408_naming_the_timeout() {
    let gw = TestGateway::start_with(&config(), |o| o.server = short_timeouts()).await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    for path in [EVENTS, BULK] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: {PK}\r\nContent-Length: 100\r\n\r\n{{\"event\":"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // Never send the rest of the body.
        let answer = String::from_utf8(until_closed(&mut s).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("body was not received within 500ms (body read timeout)"),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_trickled_body_does_not_extend_the_deadline() {
    let gw = TestGateway::start_with(&config(), |o| o.server = short_timeouts()).await;
    let addr = gw.base.trim_start_matches("http://").to_string();
    let s = TcpStream::connect(&addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST {EVENTS} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-Meshes-Publishable-Key: {PK}\r\nContent-Length: 100000\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        while wr.write_all(b" ").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), rd.read_to_end(&mut buf)).await;
    trickle.abort();
    assert!(read.is_ok(), "a trickled body held the connection open");
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body read timeout"), "{answer}");
}
