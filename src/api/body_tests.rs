//! Body checks: size, content type and coding, framing, UTF-8, depth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use tower::ServiceExt;

fn headers(content_type: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
    h
}

fn parse(body: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    parse_json(&headers("application/json"), body, max_depth)
}

fn bad_request(r: Result<Value, ApiError>) -> (String, Vec<FieldError>) {
    match r {
        Err(ApiError::BadRequest { message, data }) => (message, data),
        other => panic!("expected 400, got {other:?}"),
    }
}

fn nested(open: &str, close: &str, levels: usize) -> String {
    format!("{}{}", open.repeat(levels), close.repeat(levels))
}

#[test]
fn accepts_json_with_parameters_in_any_case() {
    let v = parse_json(&headers("Application/JSON ; charset=UTF-8"), br#"{"a":[1]}"#, 32);
    assert_eq!(v.unwrap(), serde_json::json!({"a": [1]}));
}

#[test]
fn wrong_or_missing_content_type_is_415_naming_both() {
    let e = parse_json(&headers("text/plain"), b"{}", 32).unwrap_err();
    assert!(
        matches!(&e, ApiError::UnsupportedMediaType(m) if m == "expected Content-Type application/json, found Content-Type `text/plain`"),
        "{e:?}"
    );
    let e = parse_json(&HeaderMap::new(), b"{}", 32).unwrap_err();
    assert!(
        matches!(&e, ApiError::UnsupportedMediaType(m) if m.ends_with("found no Content-Type"))
    );
    let e = parse_json(&headers("application/json-patch+json"), b"{}", 32).unwrap_err();
    assert!(matches!(e, ApiError::UnsupportedMediaType(_)));
}

#[test]
fn invalid_utf8_names_the_offset() {
    let (message, data) = bad_request(parse(b"{\"a\": \"\xc3\x28\"}", 32));
    assert_eq!(message, "body is not valid UTF-8 (first invalid byte at offset 7)");
    assert_eq!(data[0].param, "body");
}

#[test]
fn depth_at_the_limit_passes_and_one_more_fails() {
    assert!(parse(nested("[", "]", 32).as_bytes(), 32).is_ok());
    let objects = format!("{}1{}", r#"{"k":"#.repeat(32), "}".repeat(32));
    assert!(parse(objects.as_bytes(), 32).is_ok());
    let (message, _) = bad_request(parse(nested("[", "]", 33).as_bytes(), 32));
    assert_eq!(message, "body nests deeper than 32 levels");
    let mixed = format!("{}[]{}", r#"{"k":"#.repeat(32), "}".repeat(32));
    assert!(bad_request(parse(mixed.as_bytes(), 32)).0.contains("deeper than 32"));
}

#[test]
fn brackets_inside_strings_do_not_count() {
    // An escaped quote must not end the string: the `[[[` after it is still text.
    let body = format!(r#"{{"a": "{}\" [[[", "b": "\\"}}"#, "[{".repeat(100));
    assert_eq!(parse(body.as_bytes(), 1).unwrap()["b"], "\\");
    // After a string closes, brackets count again.
    assert!(bad_request(parse(br#"["[", [[]]]"#, 2)).0.contains("deeper than 2"));
}

#[test]
fn malformed_json_names_line_and_column() {
    let (message, _) = bad_request(parse(b"{\n  \"a\": }", 32));
    assert_eq!(message, "body is not valid JSON at line 2 column 8: expected value");
    let mut sized = headers("application/json");
    sized.insert(header::CONTENT_LENGTH, "0".parse().unwrap());
    let (message, _) = bad_request(parse_json(&sized, b"", 32));
    assert!(message.contains("line 1 column 0"), "{message}");
}

#[test]
fn an_empty_body_without_a_length_is_411_saying_so() {
    let e = parse(b"", 32).unwrap_err();
    assert!(
        matches!(&e, ApiError::LengthRequired(m) if m.starts_with("body is empty: the request has neither Content-Length nor Transfer-Encoding")),
        "{e:?}"
    );
}

#[test]
fn content_codings_are_415_and_transfer_codings_501() {
    let mut h = headers("application/json");
    h.insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
    assert!(parse_json(&h, b"{}", 32).is_ok());
    h.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
    let e = parse_json(&h, b"{}", 32).unwrap_err();
    assert!(
        matches!(&e, ApiError::UnsupportedMediaType(m) if m == "expected no Content-Encoding (or `identity`): bodies are read uncompressed, found Content-Encoding `br`"),
        "{e:?}"
    );
    let mut h = headers("application/json");
    h.insert(header::TRANSFER_ENCODING, "gzip, chunked".parse().unwrap());
    let e = parse_json(&h, b"{}", 32).unwrap_err();
    assert!(
        matches!(&e, ApiError::NotImplemented(m) if m == "Transfer-Encoding `gzip` is not supported; expected only `chunked`"),
        "{e:?}"
    );
    h.insert(header::TRANSFER_ENCODING, "Chunked".parse().unwrap());
    assert!(parse_json(&h, b"{}", 32).is_ok());
}

async fn status_through_router(body: Body) -> (StatusCode, String) {
    let handler = |b: Result<Bytes, BytesRejection>| async move {
        b.map(|_| "ok").map_err(|r| from_rejection(r, 4)).into_response()
    };
    let app = axum::Router::new()
        .route("/", axum::routing::post(handler))
        .layer(DefaultBodyLimit::max(4));
    let resp = app.oneshot(axum::http::Request::post("/").body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn body_limit_rejections_are_413_and_others_400() {
    let (status, text) = status_through_router(Body::from("12345")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("larger than 4 bytes"), "{text}");
    let failing = futures::stream::iter([Err::<Bytes, _>(std::io::Error::other("reset"))]);
    let (status, text) = status_through_router(Body::from_stream(failing)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("body could not be read"), "{text}");
    assert_eq!(status_through_router(Body::from("1234")).await.0, StatusCode::OK);
}
