//! The contract between the delivery engine and every integration.
//!
//! An adapter performs one attempt and classifies the result; it never
//! sleeps, retries or touches the store. The engine owns scheduling,
//! retries, rate limits and the circuit breaker, so every integration gets
//! them the same way.

use crate::config::model::{Metadata, Outcome};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What one attempt delivers.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Stable across retries (`webhook-id`, idempotency keys), so receivers can deduplicate.
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The event id (UUID v7).
    pub event_id: String,
    /// The event type, e.g. `user.signup`.
    pub event: String,
    /// The event's resource (`global` by default).
    pub resource: String,
    /// The event's resource id, if any.
    pub resource_id: Option<String>,
    /// The workspace id.
    pub workspace: String,
    /// When the event was accepted (Unix ms).
    pub created_at_ms: u64,
    /// The rule being delivered.
    pub rule_id: String,
    /// The rule's metadata (action and its parameters).
    pub metadata: Metadata,
    /// The event payload (a JSON object), held as text: adapters read what
    /// they need from it while building a request (see [`super::payload`]).
    pub payload: super::payload::Payload,
    /// The field mapping in force (connection's, overridden by the rule's);
    /// contact-based adapters apply it through [`super::contact::Contact::for_delivery`].
    pub mapping: std::sync::Arc<crate::config::mapping::Mapping>,
    /// Mapping warnings this attempt collected, for the attempt's message.
    pub warnings: super::mapping::Warnings,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptResult {
    /// The destination accepted it.
    Delivered,
    /// Try again later; `after` is the destination's own hint (`Retry-After`, a reset header).
    Retry {
        /// Why it failed.
        code: Outcome,
        /// The destination's requested delay, if it gave one.
        after: Option<Duration>,
        /// A readable reason (never contains credentials).
        message: String,
    },
    /// A documented quota is spent until a known reset (a daily limit):
    /// nothing can succeed before `until`, so the next try waits for it.
    Deferred {
        /// Why it failed (`rate_limited`).
        code: Outcome,
        /// When the quota resets (Unix ms): the earliest time worth a try.
        until: u64,
        /// Whose quota is spent: this delivery's, or the whole connection's.
        scope: QuotaScope,
        /// A readable reason (never contains credentials).
        message: String,
    },
    /// Retrying cannot help (validation error, 410 Gone, bad credentials).
    Permanent {
        /// Why it failed.
        code: Outcome,
        /// A readable reason (never contains credentials).
        message: String,
    },
}

/// Whose quota a [`AttemptResult::Deferred`] attempt found spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    /// Only this delivery's (Zoom's per-registrant limit): the connection's
    /// other deliveries go on.
    Delivery,
    /// The account's (HubSpot's daily limit): every delivery of the
    /// connection would fail the same way, so the connection pauses until
    /// the reset instead of each delivery spending a request to learn it.
    Connection,
}

/// The result of one attempt plus what the attempt log records.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    /// Classification.
    pub result: AttemptResult,
    /// HTTP status of the last response, if one came back.
    pub http_status: Option<u16>,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_excerpt: Option<String>,
}

impl AttemptReport {
    /// The outcome code recorded in the attempt log.
    pub fn outcome(&self) -> Outcome {
        match &self.result {
            AttemptResult::Delivered => Outcome::Delivered,
            AttemptResult::Retry { code, .. }
            | AttemptResult::Deferred { code, .. }
            | AttemptResult::Permanent { code, .. } => *code,
        }
    }
}

/// Most bytes of a response body kept in the attempt log.
pub const EXCERPT_LIMIT: usize = 4096;

/// Cuts a response body to at most [`EXCERPT_LIMIT`] bytes of text.
///
/// A character split by the cut is dropped rather than shown as U+FFFD, and
/// the lossy text is cut again on a character boundary, since each invalid
/// byte becomes a 3-byte replacement character.
pub fn excerpt(body: &[u8]) -> String {
    let mut text = lossy(&body[..body.len().min(EXCERPT_LIMIT)]);
    if text.len() > EXCERPT_LIMIT {
        let end = (0..=EXCERPT_LIMIT).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(end);
    }
    text
}

/// `body` as text (lossy UTF-8), without a character split by its end.
pub fn lossy(body: &[u8]) -> String {
    let whole = &body[..body.len() - split_char_tail(body)];
    String::from_utf8_lossy(whole).into_owned()
}

/// Length of an incomplete UTF-8 sequence at the end of `bytes` (0 if none).
fn split_char_tail(bytes: &[u8]) -> usize {
    // The last byte that is not a continuation byte starts the final character.
    let tail = bytes.len().saturating_sub(4);
    let Some(start) = (tail..bytes.len()).rev().find(|&i| bytes[i] & 0xC0 != 0x80) else {
        return 0;
    };
    match std::str::from_utf8(&bytes[start..]) {
        Err(e) if e.error_len().is_none() => bytes.len() - start,
        _ => 0,
    }
}

/// A boxed future, so adapters are object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One integration's runtime: built from its connection config (with
/// secrets resolved) and shared by all attempts on that connection.
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// Performs one attempt. `timeout` bounds the whole attempt.
    fn deliver<'a>(
        &'a self,
        delivery: &'a Delivery,
        timeout: Duration,
    ) -> BoxFuture<'a, AttemptReport>;

    /// Lists what the account offers for rules (lists, tags, templates, …),
    /// through every page. Integrations with nothing to list keep this default.
    fn discover(&self) -> BoxFuture<'_, super::discover::Discovered> {
        Box::pin(async { Err(super::discover::unsupported()) })
    }
}

/// Maps an HTTP status to the engine's default classification (design.md):
/// 2xx delivered; 408/429/5xx retry; 410 and other 3xx/4xx permanent. A
/// status with no meaning as a final answer (1xx, or outside 100–599) is a
/// broken server, retried like a 5xx.
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &str) -> AttemptResult {
    let message = || match body.chars().take(200).collect::<String>() {
        text if text.is_empty() => format!("HTTP {status}"),
        text => format!("HTTP {status}: {text}"),
    };
    match status {
        200..=299 => AttemptResult::Delivered,
        429 => AttemptResult::Retry {
            code: Outcome::RateLimited,
            after: retry_after,
            message: message(),
        },
        408 => {
            AttemptResult::Retry { code: Outcome::Timeout, after: retry_after, message: message() }
        }
        500..=599 => AttemptResult::Retry {
            code: Outcome::RejectedServerError,
            after: retry_after,
            message: message(),
        },
        401 | 403 => AttemptResult::Permanent { code: Outcome::AuthFailed, message: message() },
        300..=499 => {
            AttemptResult::Permanent { code: Outcome::RejectedClientError, message: message() }
        }
        _ => AttemptResult::Retry {
            code: Outcome::RejectedServerError,
            after: retry_after,
            message: format!("{}: not a valid final HTTP status", message()),
        },
    }
}

/// Parses `Retry-After`: delta seconds (fractions accepted, as some APIs send
/// them) or an HTTP-date, as the delay from now (zero once it has passed).
/// Negative, non-finite or unrepresentable values count as absent.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        // `try_from` because a server sending `1e300` must not panic the worker.
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // The engine's clock, so the delay agrees with the due times it schedules.
    let now = std::time::UNIX_EPOCH + Duration::from_millis(crate::clock::now_ms());
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
impl Delivery {
    /// A delivery for tests: attempt 2 of `dlv`, event `evt` (`user.signup`)
    /// in workspace `ws`, rule `r1` with the `log` action, carrying `payload`.
    #[allow(clippy::unwrap_used)]
    pub fn sample(payload: serde_json::Value) -> Delivery {
        Delivery {
            delivery_id: "dlv".into(),
            attempt: 2,
            event_id: "evt".into(),
            event: "user.signup".into(),
            resource: "global".into(),
            resource_id: None,
            workspace: "ws".into(),
            created_at_ms: 0,
            rule_id: "r1".into(),
            metadata: serde_json::from_value(serde_json::json!({"action": "log"})).unwrap(),
            payload: payload.into(),
            mapping: Default::default(),
            warnings: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn after(value: &str) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        retry_after(&headers)
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        assert_eq!(after("7"), Some(Duration::from_secs(7)));
        assert_eq!(after(" 1.5 "), Some(Duration::from_millis(1500)));
        for junk in ["-1", "NaN", "inf", "1e300", "soon"] {
            assert_eq!(after(junk), None, "{junk}");
        }
        let now = std::time::UNIX_EPOCH + Duration::from_millis(crate::clock::now_ms());
        let date = httpdate::fmt_http_date(now + Duration::from_secs(120));
        let d = after(&date).unwrap();
        assert!(d > Duration::from_secs(115) && d <= Duration::from_secs(120), "{d:?}");
        assert_eq!(after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_classify_by_class_and_meaningless_ones_retry() {
        let kind = |status| match classify_status(status, None, "") {
            AttemptResult::Delivered => "delivered".to_string(),
            AttemptResult::Retry { code, message, .. } => format!("retry {code:?} {message}"),
            AttemptResult::Permanent { code, message } => format!("final {code:?} {message}"),
            AttemptResult::Deferred { .. } => "deferred".to_string(),
        };
        assert_eq!(kind(204), "delivered");
        assert_eq!(kind(302), "final RejectedClientError HTTP 302");
        assert_eq!(kind(404), "final RejectedClientError HTTP 404");
        assert_eq!(kind(403), "final AuthFailed HTTP 403");
        assert_eq!(kind(503), "retry RejectedServerError HTTP 503");
        for odd in [101, 600, 999] {
            assert_eq!(
                kind(odd),
                format!("retry RejectedServerError HTTP {odd}: not a valid final HTTP status")
            );
        }
        let AttemptResult::Permanent { message, .. } = classify_status(400, None, "bad field")
        else {
            panic!("400 is final")
        };
        assert_eq!(message, "HTTP 400: bad field");
    }

    #[test]
    fn excerpt_is_bounded_and_valid() {
        assert_eq!(excerpt(b"short"), "short");
        assert_eq!(excerpt(&vec![b'x'; 10_000]).len(), EXCERPT_LIMIT);
        // "é" (2 bytes) split by the limit is dropped, not replaced.
        let mut body = vec![b'x'; EXCERPT_LIMIT - 1];
        body.extend_from_slice("é".as_bytes());
        assert_eq!(excerpt(&body), "x".repeat(EXCERPT_LIMIT - 1));
        // Invalid bytes widen to U+FFFD but the text still fits the limit.
        let garbage = excerpt(&[0xFF; 10_000]);
        assert!(garbage.len() <= EXCERPT_LIMIT && garbage.starts_with('\u{FFFD}'));
        assert_eq!(excerpt("ok \u{FFFD}".as_bytes()), "ok \u{FFFD}");
    }
}
