//! The one place API errors become HTTP responses:
//! `{message, error: {name, message, data: [{param, msg}]}}`.

use crate::server::fds::AcceptLog;
use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{LazyLock, Mutex};

/// A problem with one input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct FieldError {
    /// The field, e.g. `event` or `[2].payload`.
    pub param: String,
    /// What is wrong and what was expected.
    pub msg: String,
}

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the input is invalid.
    #[error("{message}")]
    BadRequest {
        /// Summary.
        message: String,
        /// Per-field problems.
        data: Vec<FieldError>,
    },
    /// 401: missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: valid credentials, wrong route for them.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 408: the body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 411: a body route got a request with no length (neither
    /// `Content-Length` nor `Transfer-Encoding`), hence no body.
    #[error("{0}")]
    LengthRequired(String),
    /// 413.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 425: an attempt is in flight or imminent.
    #[error("{message}")]
    TooEarly {
        /// Why.
        message: String,
        /// When to try again.
        retry_after_secs: u64,
    },
    /// 429.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// When to try again.
        retry_after_secs: u64,
    },
    /// 501: the connection's integration has nothing to list.
    #[error("{0}")]
    NotImplemented(String),
    /// 502: a provider failed; the message is the provider's, credentials redacted.
    #[error("{0}")]
    BadGateway(String),
    /// 503: the store cannot take writes; nothing was acknowledged.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the server holds its limit of request bodies (or is still
    /// starting); nothing was read into the store. Not logged (a flood
    /// would flood the log): counted in `meshes_http_requests_refused_total`
    /// (and the bodies in `meshes_http_bodies_refused_total`).
    #[error("{0}")]
    Busy(String),
    /// 500: a bug. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 about one field: message `"<param>: <msg>"`.
    pub fn field(param: &str, msg: &str) -> Self {
        ApiError::BadRequest {
            message: format!("{param}: {msg}"),
            data: vec![FieldError { param: param.to_string(), msg: msg.to_string() }],
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "ValidationError"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "AuthenticationError"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "PermissionError"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundError"),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowedError")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "ConflictError"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "RequestTimeoutError"),
            ApiError::LengthRequired(_) => (StatusCode::LENGTH_REQUIRED, "LengthRequiredError"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeError")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaTypeError")
            }
            ApiError::TooEarly { .. } => (StatusCode::TOO_EARLY, "TooEarlyError"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "RateLimitError"),
            ApiError::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "NotImplementedError"),
            ApiError::BadGateway(_) => (StatusCode::BAD_GATEWAY, "BadGatewayError"),
            ApiError::Unavailable(_) | ApiError::Busy(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailableError")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    /// Server-side problems are logged, and refusals counted, here so no
    /// handler can forget to.
    fn record(&self) {
        if let Some(reason) = self.refused_reason() {
            metrics::counter!("meshes_http_requests_refused_total", "reason" => reason)
                .increment(1);
        }
        match self {
            ApiError::Internal(detail) => tracing::error!(detail = %detail, "internal error"),
            ApiError::Unavailable(detail) => {
                store_refused(&STORE_REFUSALS, tokio::time::Instant::now(), detail);
            }
            _ => {}
        }
    }

    /// The `reason` label of `meshes_http_requests_refused_total`: a 503
    /// the client should retry, for the store or for the server's load.
    fn refused_reason(&self) -> Option<&'static str> {
        match self {
            ApiError::Unavailable(_) => Some("store_unavailable"),
            ApiError::Busy(_) => Some("busy"),
            _ => None,
        }
    }

    /// Seconds for `Retry-After`, for the errors a client should retry.
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooEarly { retry_after_secs, .. }
            | ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Unavailable(_) | ApiError::Busy(_) => Some(1),
            _ => None,
        }
    }
}

/// Store refusals since the last line about them. During an outage
/// (a full disk) a client retrying in a loop is refused hundreds of times a
/// second: a line each flooded the log, on the disk that was full.
static STORE_REFUSALS: LazyLock<Mutex<AcceptLog>> = LazyLock::new(Mutex::default);

/// Counts a request the store refused, and logs at most one line per
/// [`AcceptLog::EVERY`] with how many there were since the last (the ones
/// after the last line show in `meshes_http_requests_refused_total`).
fn store_refused(log: &Mutex<AcceptLog>, now: tokio::time::Instant, detail: &str) {
    let due = log.lock().map_or(Some(1), |mut log| log.failed(now));
    if let Some(refused) = due {
        tracing::warn!(
            refused,
            detail = %detail,
            "requests refused: store unavailable (at most one line a second; `refused` counts them since the last)"
        );
    }
}

impl ApiError {
    /// The JSON body: `{message, error: {name, message, data}}`. Also written
    /// inside the bulk answer, for each refused item and when all are.
    pub(super) fn body(&self) -> Value {
        let (_, name) = self.parts();
        // `to_string` of `Internal` is the fixed "internal error": the detail
        // is logged, never sent to the client.
        let message = self.to_string();
        let data = match self {
            ApiError::BadRequest { data, .. } => data.as_slice(),
            _ => &[],
        };
        json!({ "message": message, "error": { "name": name, "message": message, "data": data } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.parts();
        self.record();
        let mut resp = (status, Json(self.body())).into_response();
        let h = resp.headers_mut();
        if let Some(secs) = self.retry_after() {
            // `Retry-After: 0` invites an immediate retry storm; one second is the floor.
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Contact operations: 404 unknown contact, 409 identifiers naming two
/// contacts, 503 the store refused the write (nothing was changed).
impl From<crate::automations::service::ContactError> for ApiError {
    fn from(e: crate::automations::service::ContactError) -> Self {
        use crate::automations::service::ContactError;
        match e {
            ContactError::NotFound(m) => ApiError::NotFound(m),
            ContactError::Conflict(m) => ApiError::Conflict(m),
            ContactError::Invalid(param, m) => ApiError::field(&param, &m),
            ContactError::Store(e) => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// Most characters of a request path echoed in a 404.
const MAX_PATH_ECHO: usize = 200;

/// JSON 404 for unknown routes, naming the path that was asked for (its
/// first [`MAX_PATH_ECHO`] characters). A request for no path at all
/// (`CONNECT host:port`, `OPTIONS *`) is a 405: there is nothing to find.
pub async fn not_found_fallback(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    if method == Method::CONNECT || !path.starts_with('/') {
        return ApiError::MethodNotAllowed(format!(
            "{method} is not supported for `{}`; the API answers requests for paths such as `/api/v1/events`",
            echoed(&uri.to_string())
        ));
    }
    ApiError::NotFound(format!("no route for `{}`", echoed(path)))
}

/// `text` cut to [`MAX_PATH_ECHO`] characters, `…` marking a cut.
fn echoed(text: &str) -> String {
    match text.char_indices().nth(MAX_PATH_ECHO) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// JSON 405 for a known route and an unsupported method (axum adds the
/// `Allow` header with the ones it supports).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "this route does not support {}; the Allow header lists the methods it does",
        echoed(method.as_str())
    ))
}

/// `Path` whose rejection (e.g. a segment that is not UTF-8 once
/// percent-decoded) is a JSON 400 naming `path`, not axum's plain text.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|r| ApiError::field("path", &format!("could not be read: {}", r.body_text())))
    }
}

/// `Query` whose rejection (e.g. a repeated parameter) is a JSON 400
/// naming `query`, not axum's plain text.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        // The decoder replaces bytes that are not UTF-8 with U+FFFD, so a
        // filter would silently match nothing instead of being refused.
        if let Some((name, raw)) = parts.uri.query().and_then(non_utf8_param) {
            let msg = format!("`{raw}` is not UTF-8 once percent-decoded; expected UTF-8 text");
            return Err(ApiError::field(&name, &msg));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|r| {
                let text = r.body_text();
                let what =
                    text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
                ApiError::field("query", &format!("could not be read: {what}"))
            })
    }
}

/// The first query parameter whose name or value is not UTF-8 once
/// percent-decoded: its name (lossily decoded) and the raw text at fault.
fn non_utf8_param(query: &str) -> Option<(String, String)> {
    use crate::adapters::redact::percent_decoded;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let utf8 = |s: &str| std::str::from_utf8(&percent_decoded(s)).is_ok();
        let decoded_name = String::from_utf8_lossy(&percent_decoded(name)).into_owned();
        match (utf8(name), utf8(value)) {
            (true, true) => None,
            (true, false) => Some((decoded_name, value.to_string())),
            (false, _) => Some(("query".to_string(), name.to_string())),
        }
    })
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
