//! The contract between the delivery engine and every integration.
//!
//! An adapter performs one attempt and classifies the result; it never
//! sleeps, retries or touches the store. The engine owns scheduling,
//! retries, rate limits and the circuit breaker, so every integration gets
//! them the same way.

use crate::config::model::{Metadata, Outcome};
use serde_json::Value;
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
    /// The event payload (a JSON object).
    pub payload: Value,
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
    /// Retrying cannot help (validation error, 410 Gone, bad credentials).
    Permanent {
        /// Why it failed.
        code: Outcome,
        /// A readable reason (never contains credentials).
        message: String,
    },
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
            AttemptResult::Retry { code, .. } | AttemptResult::Permanent { code, .. } => *code,
        }
    }
}

/// Most bytes of a response body kept in the attempt log.
pub const EXCERPT_LIMIT: usize = 4096;

/// Cuts a response body to [`EXCERPT_LIMIT`] bytes on a character boundary.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(EXCERPT_LIMIT)]);
    text.trim_end_matches('\u{FFFD}').to_string()
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
}

/// Maps an HTTP status to the engine's default classification (design.md):
/// 2xx delivered; 408/429/5xx retry; 410 and other 4xx permanent.
pub fn classify_status(status: u16, retry_after: Option<Duration>, body: &str) -> AttemptResult {
    let message = || format!("HTTP {status}: {}", body.chars().take(200).collect::<String>());
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
        _ => AttemptResult::Permanent { code: Outcome::RejectedClientError, message: message() },
    }
}

/// Parses `Retry-After` (delta seconds or an HTTP date is not supported: seconds only, as the
/// providers we target send).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}
