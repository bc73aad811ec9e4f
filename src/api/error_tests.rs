//! The error-to-HTTP mapping: every variant's status, name and headers,
//! field errors, hidden internal details, the fallbacks, and refusals
//! logged at most once a second and counted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use axum::http::HeaderMap;

#[test]
fn query_text_that_is_not_utf8_once_decoded_is_found() {
    assert_eq!(non_utf8_param("limit=5&event=user.signup&x=%C3%A9%zz%"), None);
    assert_eq!(non_utf8_param("limit=5&event=%FF"), Some(("event".to_string(), "%FF".to_string())));
    assert_eq!(non_utf8_param("%C3=1"), Some(("query".to_string(), "%C3".to_string())));
}

async fn render(e: ApiError) -> (StatusCode, serde_json::Value, HeaderMap) {
    let (parts, b) = e.into_response().into_parts();
    let bytes = axum::body::to_bytes(b, 1 << 20).await.unwrap();
    (parts.status, serde_json::from_slice(&bytes).unwrap(), parts.headers)
}

#[tokio::test]
async fn every_variant_has_its_status_and_name() {
    let cases = [
        (ApiError::field("x", "y"), 400, "ValidationError"),
        (ApiError::Unauthorized("u".into()), 401, "AuthenticationError"),
        (ApiError::Forbidden("f".into()), 403, "PermissionError"),
        (ApiError::NotFound("n".into()), 404, "NotFoundError"),
        (ApiError::MethodNotAllowed("m".into()), 405, "MethodNotAllowedError"),
        (ApiError::Conflict("c".into()), 409, "ConflictError"),
        (ApiError::RequestTimeout("slow".into()), 408, "RequestTimeoutError"),
        (ApiError::LengthRequired("l".into()), 411, "LengthRequiredError"),
        (ApiError::PayloadTooLarge { limit: 10 }, 413, "PayloadTooLargeError"),
        (ApiError::UnsupportedMediaType("t".into()), 415, "UnsupportedMediaTypeError"),
        (ApiError::TooEarly { message: "e".into(), retry_after_secs: 3 }, 425, "TooEarlyError"),
        (ApiError::RateLimited { retry_after_secs: 2 }, 429, "RateLimitError"),
        (ApiError::NotImplemented("x".into()), 501, "NotImplementedError"),
        (ApiError::BadGateway("g".into()), 502, "BadGatewayError"),
        (ApiError::Unavailable("s".into()), 503, "ServiceUnavailableError"),
        (ApiError::Busy("b".into()), 503, "ServiceUnavailableError"),
        (ApiError::Internal("i".into()), 500, "InternalError"),
    ];
    for (e, status, name) in cases {
        let (s, json, headers) = render(e).await;
        assert_eq!((s.as_u16(), json["error"]["name"].as_str()), (status, Some(name)));
        assert_eq!(json["message"], json["error"]["message"], "{name}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{name}");
    }
}

#[tokio::test]
async fn field_errors_fill_message_and_data() {
    let (status, json, _) = render(ApiError::field("event", "is required")).await;
    assert_eq!(status, 400);
    assert_eq!(json["message"], "event: is required");
    assert_eq!(json["error"]["data"], json!([{"param": "event", "msg": "is required"}]));
    let (_, json, _) = render(ApiError::Conflict("taken".into())).await;
    assert_eq!(json["error"]["data"], json!([]));
    let (_, json, _) = render(ApiError::PayloadTooLarge { limit: 1024 }).await;
    assert_eq!(json["message"], "request body is larger than 1024 bytes");
}

#[tokio::test]
async fn retry_after_and_www_authenticate_headers() {
    let (_, _, h) = render(ApiError::RateLimited { retry_after_secs: 0 }).await;
    assert_eq!(h[header::RETRY_AFTER], "1");
    let (_, _, h) = render(ApiError::RateLimited { retry_after_secs: 7 }).await;
    assert_eq!(h[header::RETRY_AFTER], "7");
    let early = ApiError::TooEarly { message: "attempt in flight".into(), retry_after_secs: 4 };
    let (_, json, h) = render(early).await;
    assert_eq!(
        (h[header::RETRY_AFTER].to_str().unwrap(), &json["message"]),
        ("4", &json!("attempt in flight"))
    );
    let (_, _, h) = render(ApiError::Unavailable("disk full".into())).await;
    assert_eq!(h[header::RETRY_AFTER], "1");
    let (_, _, h) = render(ApiError::Unauthorized("no".into())).await;
    assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
    let (_, _, h) = render(ApiError::Forbidden("no".into())).await;
    assert!(h.get(header::WWW_AUTHENTICATE).is_none() && h.get(header::RETRY_AFTER).is_none());
}

#[tokio::test]
async fn internal_errors_hide_their_detail() {
    let (status, json, _) = render(ApiError::Internal("secret path /etc/x".into())).await;
    assert_eq!(status, 500);
    assert_eq!(json["message"], "internal error");
    assert!(!json.to_string().contains("/etc/x"));
}

#[tokio::test]
async fn fallbacks_answer_json() {
    let nope = Uri::from_static("/api/v1/nope?x=1");
    let (status, json, _) = render(not_found_fallback(Method::GET, nope).await).await;
    assert_eq!(status, 404);
    assert_eq!(json["message"], "no route for `/api/v1/nope`");
    let (status, json, _) = render(method_not_allowed(Method::PUT).await).await;
    assert_eq!(
        (status.as_u16(), json["error"]["name"].as_str()),
        (405, Some("MethodNotAllowedError"))
    );
    assert_eq!(
        json["message"],
        "this route does not support PUT; the Allow header lists the methods it does"
    );
}

#[tokio::test]
async fn a_long_path_is_echoed_cut_short() {
    let uri: Uri = format!("/{}", "a".repeat(60_000)).parse().unwrap();
    let (_, json, _) = render(not_found_fallback(Method::GET, uri).await).await;
    let want = format!("no route for `/{}…`", "a".repeat(MAX_PATH_ECHO - 1));
    assert_eq!(json["message"], want);
}

#[tokio::test]
async fn requests_for_no_path_are_405_not_404() {
    let connect = Uri::from_static("example.com:443");
    let (status, json, _) = render(not_found_fallback(Method::CONNECT, connect).await).await;
    assert_eq!(status, 405, "{json}");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .starts_with("CONNECT is not supported for `example.com:443`")
    );
    let (status, json, _) =
        render(not_found_fallback(Method::OPTIONS, Uri::from_static("*")).await).await;
    assert_eq!(status, 405, "{json}");
    assert!(json["message"].as_str().unwrap().starts_with("OPTIONS is not supported for `*`"));
}

/// A client retrying in a loop through a store outage: one line, then
/// silence for a second, then one line counting every refusal in between.
#[test]
fn store_refusals_are_logged_once_a_second_with_their_count() {
    let (_guard, logs) = crate::delivery::observe::tests::Logs::capture();
    let log = Mutex::new(AcceptLog::default());
    let t0 = tokio::time::Instant::now();
    for ms in 0..1_000 {
        store_refused(&log, t0 + std::time::Duration::from_millis(ms), "disk full");
    }
    let lines = logs.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("WARN") && lines[0].ends_with(" refused=1 detail=disk full"),
        "{}",
        lines[0]
    );
    store_refused(&log, t0 + std::time::Duration::from_millis(1_000), "disk full");
    let lines = logs.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[1].ends_with(" refused=1000 detail=disk full"), "{}", lines[1]);
    assert!(lines[1].contains("requests refused: store unavailable"), "{}", lines[1]);
}

/// Every 503 a client should retry is counted, by a bounded reason.
#[tokio::test]
async fn refused_requests_are_counted_by_reason() {
    use crate::delivery::observe::tests::{recorder, sample};
    let (_guard, handle) = recorder();
    for _ in 0..3 {
        render(ApiError::Unavailable("store unavailable: disk full".into())).await;
    }
    render(ApiError::Busy("starting".into())).await;
    render(ApiError::Internal("bug".into())).await;
    render(ApiError::RateLimited { retry_after_secs: 1 }).await;
    let text = handle.render();
    let count = |reason: &str| {
        sample(&text, &format!("meshes_http_requests_refused_total{{reason=\"{reason}\"}}"))
    };
    assert_eq!((count("store_unavailable"), count("busy")), (Some(3.0), Some(1.0)), "{text}");
    assert_eq!(text.matches("meshes_http_requests_refused_total{").count(), 2, "{text}");
}
