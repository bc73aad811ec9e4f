//! Request bodies, strictly: size, content type, UTF-8 and nesting depth are
//! each checked and reported on their own before serde_json sees the bytes.

use super::error::{ApiError, FieldError};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

/// The only media type the API reads.
const JSON: &str = "application/json";
/// How much of an unexpected `Content-Type` is echoed back.
const MAX_ECHO: usize = 64;

/// Parses a JSON body: `Content-Type` (415), UTF-8, nesting depth and
/// syntax (400), in that order, each with a message that says where.
pub fn parse_json(headers: &HeaderMap, body: &[u8], max_depth: usize) -> Result<Value, ApiError> {
    serde_json::from_str(checked_text(headers, body, max_depth)?).map_err(syntax_error)
}

/// The body as text once content type, UTF-8 and nesting depth are checked
/// (syntax is left to the parse that reads it, so the body is scanned once).
pub fn checked_text<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    max_depth: usize,
) -> Result<&'a str, ApiError> {
    checked(headers, body, max_depth, || format!("nests deeper than {max_depth} levels"))
}

/// [`checked_text`] for a body that is an array of events: the array is
/// one more level, so that each event may nest `max_depth` levels, as it
/// may when sent alone.
pub fn checked_items_text<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    max_depth: usize,
) -> Result<&'a str, ApiError> {
    let too_deep = || format!("nests deeper than {max_depth} levels within an event");
    checked(headers, body, max_depth + 1, too_deep)
}

fn checked<'a>(
    headers: &HeaderMap,
    body: &'a [u8],
    max_depth: usize,
    too_deep: impl FnOnce() -> String,
) -> Result<&'a str, ApiError> {
    check_framing(headers, body)?;
    check_content_type(headers)?;
    check_content_encoding(headers)?;
    let text = std::str::from_utf8(body).map_err(|e| {
        invalid(format!("is not valid UTF-8 (first invalid byte at offset {})", e.valid_up_to()))
    })?;
    // serde_json stops at 128 levels on its own; this bound is lower,
    // configurable, and checked without building anything.
    if exceeds_depth(text.as_bytes(), max_depth) {
        return Err(invalid(too_deep()));
    }
    Ok(text)
}

/// 400 for a body that is not JSON, saying where.
pub fn syntax_error(e: serde_json::Error) -> ApiError {
    let what = message(&e);
    invalid(format!("is not valid JSON at line {} column {}: {what}", e.line(), e.column()))
}

/// serde_json's message without the " at line L column C" it appends, for
/// answers that say where in their own words (or not at all).
pub fn message(e: &serde_json::Error) -> String {
    let what = e.to_string();
    match what.split_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => what,
    }
}

/// Most of a refused body read (and discarded) before the answer is sent,
/// and the longest time spent on it: the server's bounds for any body a
/// handler leaves unread.
use crate::server::{DRAIN_CAP, DRAIN_TIME};

/// The body routes' guard, run before their handlers read a byte of the
/// body: the caller must be a machine key (401/403 otherwise), and a
/// `Content-Length` over `limit` is 413. Both refusals drain the body
/// ([`refuse`]) instead of buffering it, so a client without a valid key
/// can neither hold the server's body budget nor wait out a body timeout
/// for its 403. The principal is handed to the handler in the request's
/// extensions: authenticating again would take a second rate-limit token.
pub async fn machine_first(
    st: super::AppState,
    limit: usize,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let principal = match super::machine(&st, &parts.headers) {
        Ok(p) => p,
        Err(e) => return refuse(&parts, body, e.into_response()).await,
    };
    if declared_over(&parts.headers, limit).is_some() {
        return refuse(&parts, body, body_limit_error(limit).into_response()).await;
    }
    req = axum::extract::Request::from_parts(parts, body);
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// The ingest routes' start: the caller from the headers (a refusal drains
/// the body, see [`refuse`]), then the body, at most `limit` bytes.
pub async fn keyed(
    st: &super::AppState,
    req: axum::extract::Request,
    limit: usize,
) -> Result<
    (super::auth::Principal, axum::http::request::Parts, bytes::Bytes),
    axum::response::Response,
> {
    use axum::response::IntoResponse;
    let (parts, body) = req.into_parts();
    let p = match super::principal(st, &parts.headers) {
        Ok(p) => p,
        Err(e) => return Err(refuse(&parts, body, e.into_response()).await),
    };
    let bytes = read_limited(&parts, body, limit).await?;
    Ok((p, parts, bytes))
}

/// Reads a whole body of at most `limit` bytes inside the handler, once
/// the caller is known, with the same answers as [`machine_first`] and
/// axum's body limit, for the ingest routes: per-route layers cost an
/// allocation or two each per request.
pub async fn read_limited(
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, axum::response::Response> {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    if declared_over(&parts.headers, limit).is_some() {
        return Err(refuse(parts, body, body_limit_error(limit).into_response()).await);
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(body_limit_error(limit).into_response())
        }
        Err(e) => Err(read_error(&*e).into_response()),
    }
}

/// The `Content-Length` when it is over `limit`.
fn declared_over(headers: &HeaderMap, limit: usize) -> Option<u64> {
    headers_len(headers).filter(|&declared| declared > limit as u64)
}

/// Answers `refusal` to a request whose body will not be used, after
/// reading and discarding the body (up to `DRAIN_CAP` bytes and
/// `DRAIN_TIME`). Answering while the client is still sending and then
/// closing makes the kernel reset the connection, and most clients report
/// the reset instead of the answer; draining lets them read it. Discarded
/// bytes go back to the server's body budget as they are read
/// ([`crate::server::BodyCredit`]). A body drained to its end leaves the
/// connection usable (a rate-limited client keeps it); one cut short
/// closes it. A client waiting for `100 Continue` is not asked for its body
/// at all: polling it is what would send the `100`.
pub async fn refuse(
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
    mut refusal: axum::response::Response,
) -> axum::response::Response {
    let waits_to_send = parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers_len(&parts.headers);
    let whole = !waits_to_send
        && declared.is_none_or(|len| len <= DRAIN_CAP)
        && tokio::time::timeout(DRAIN_TIME, drain(body, parts)).await.unwrap_or(false);
    if !whole {
        refusal.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    refusal
}

/// Reads `body` to its end (at most `DRAIN_CAP` bytes), dropping what it
/// reads; `true` when it got to the end.
async fn drain(mut body: axum::body::Body, parts: &axum::http::request::Parts) -> bool {
    use http_body_util::BodyExt;
    let credit = parts.extensions.get::<crate::server::BodyCredit>();
    let mut drained = 0u64;
    while drained <= DRAIN_CAP {
        match body.frame().await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                let n = frame.data_ref().map_or(0, bytes::Bytes::len);
                drained += n as u64;
                if let Some(credit) = credit {
                    credit.discarded(n);
                }
            }
        }
    }
    false
}

/// The declared `Content-Length`, if any.
fn headers_len(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse::<u64>().ok()
}

/// 413 for a body over `limit` bytes.
pub fn body_limit_error(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge { limit }
}

/// Maps axum's body rejection: the size limit (axum's `DefaultBodyLimit` or
/// tower-http's `RequestBodyLimit`) tripping is 413, anything else is 400.
pub fn from_rejection(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return body_limit_error(limit);
    }
    read_error(&rejection)
}

/// 408 when the body missed its deadline, 503 when it did not fit in the
/// server's body budget, else 400.
fn read_error(e: &(dyn std::error::Error + 'static)) -> ApiError {
    read_failure(e).unwrap_or_else(|| invalid(format!("could not be read: {}", causes(e))))
}

/// `e` and its sources, joined by `: `: the outer errors say only that a
/// body could not be read, the innermost why (hyper's framing errors,
/// such as `Invalid chunk size line`, are sources of a generic one). A
/// source whose text the message already ends with (wrappers that show
/// their inner error) is not repeated.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The answer for a body the server stopped reading (the cause is somewhere
/// in `e`'s sources): 408 past its deadline, 503 over the body budget.
fn read_failure(e: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(timeout) = e.downcast_ref::<crate::server::BodyTimeout>() {
            return Some(ApiError::RequestTimeout(format!("body {timeout}")));
        }
        if let Some(full) = e.downcast_ref::<crate::server::BodyBudgetFull>() {
            metrics::counter!("meshes_http_bodies_refused_total").increment(1);
            return Some(ApiError::Busy(format!("body {full}; retry shortly")));
        }
        source = e.source();
    }
    None
}

/// A 400 about the body as a whole: message `"body <msg>"`, param `body`.
fn invalid(msg: String) -> ApiError {
    ApiError::BadRequest {
        message: format!("body {msg}"),
        data: vec![FieldError { param: "body".into(), msg }],
    }
}

/// How the body was framed: a transfer coding other than `chunked` is
/// 501 (RFC 9112 6.1: hyper removes the chunking and passes the rest on
/// undecoded), and an empty body sent with neither `Content-Length` nor
/// `Transfer-Encoding` is 411, since a request without them has no body
/// (what was meant as one, if any, is not read).
fn check_framing(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if let Some(other) = other_coding(headers, &header::TRANSFER_ENCODING, b"chunked") {
        return Err(ApiError::NotImplemented(format!(
            "Transfer-Encoding `{}` is not supported; expected only `chunked`",
            shown(other)
        )));
    }
    let framed = headers.contains_key(header::CONTENT_LENGTH)
        || headers.contains_key(header::TRANSFER_ENCODING);
    if body.is_empty() && !framed {
        return Err(ApiError::LengthRequired(
            "body is empty: the request has neither Content-Length nor Transfer-Encoding; expected a JSON body with one of them (Content-Length, or Transfer-Encoding: chunked)".into(),
        ));
    }
    Ok(())
}

/// 415 for a body in any `Content-Encoding` but `identity`: it is read as
/// sent, so a compressed body would fail as text that is not UTF-8 (gzip)
/// or, worse, be stored as it is (a coding label on a plain body).
fn check_content_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    match other_coding(headers, &header::CONTENT_ENCODING, b"identity") {
        None => Ok(()),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "expected no Content-Encoding (or `identity`): bodies are read uncompressed, found Content-Encoding `{}`",
            shown(other)
        ))),
    }
}

/// The first coding listed in `name` (its lines, comma-separated, any
/// case) other than `allowed`.
fn other_coding<'h>(
    headers: &'h HeaderMap,
    name: &header::HeaderName,
    allowed: &[u8],
) -> Option<&'h [u8]> {
    let codings = headers.get_all(name).iter();
    let codings = codings.flat_map(|v| v.as_bytes().split(|&b| b == b','));
    codings.map(<[u8]>::trim_ascii).find(|c| !c.eq_ignore_ascii_case(allowed))
}

/// A header value as echoed in an answer: at most [`MAX_ECHO`] bytes.
fn shown(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(&v[..v.len().min(MAX_ECHO)]).into_owned();
    if v.len() > MAX_ECHO { format!("{text}…") } else { text }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let found = headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes());
    // Parameters such as `; charset=utf-8` are allowed; the type is case-insensitive.
    let essence = found.map(|v| v.split(|&b| b == b';').next().unwrap_or_default().trim_ascii());
    if essence.is_some_and(|m| m.eq_ignore_ascii_case(JSON.as_bytes())) {
        return Ok(());
    }
    let found = match found {
        None => "no Content-Type".to_string(),
        Some(v) => format!("Content-Type `{}`", shown(v)),
    };
    Err(ApiError::UnsupportedMediaType(format!("expected Content-Type {JSON}, found {found}")))
}

/// Whether arrays and objects nest deeper than `max`. Brackets inside
/// strings do not count; unbalanced input is left for serde_json to report.
fn exceeds_depth(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
