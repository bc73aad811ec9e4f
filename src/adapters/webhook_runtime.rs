//! The webhook runtime: one signed HTTP request per attempt, classified per
//! the Standard Webhooks contract (2xx delivered, 410 permanent, the rest by
//! [`classify_status`]).

use super::{Method, PayloadFormat, WebhookConfig};
use crate::adapters::adapter::{
    Adapter, AttemptReport, AttemptResult, BoxFuture, Delivery, EXCERPT_LIMIT, classify_status,
    retry_after,
};
use crate::adapters::redact::Secrets;
use crate::adapters::{BuildError, Lookup};
use crate::config::model::Outcome;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use std::time::Duration;
use tokio::time::Instant;

// Built once: a string key would be parsed into a `HeaderName` on every attempt.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// How long the response body is read for its excerpt once the status is in.
const EXCERPT_GRACE: Duration = Duration::from_secs(2);

/// Delivers events to one URL, signed per the Standard Webhooks spec.
///
/// Everything is resolved and checked once by [`WebhookAdapter::build`];
/// secrets live only in memory and never appear in `Debug` or errors.
pub struct WebhookAdapter {
    url: reqwest::Url,
    method: reqwest::Method,
    format: PayloadFormat,
    keys: Vec<Vec<u8>>,
    headers: HeaderMap,
    /// Scrubbed from the receiver's answers, which may echo the request.
    secrets: Secrets,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The host only: the path, query and userinfo may carry tokens.
        f.debug_struct("WebhookAdapter")
            .field("host", &self.url.host_str())
            .field("method", &self.method)
            .field("format", &self.format)
            .field("signing_keys", &self.keys.len())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The Standard Webhooks signature of one request:
/// `v1,<base64(HMAC-SHA256(secret_key, "<id>.<timestamp>.<body>"))>`, where
/// `secret_key` is the base64-decoded part of the `whsec_` secret.
pub fn sign(secret_key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length (longer ones are hashed, RFC 2104), so
    // this never fails; the error exists for fixed-key MACs sharing the trait.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl WebhookAdapter {
    /// Resolves every `${VAR}` with `lookup` and validates the result: the
    /// URL, the `whsec_` secrets and the headers. Errors name the field and
    /// the reason, never a value.
    pub fn build(
        cfg: &WebhookConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let resolved = super::checks::resolve(cfg, lookup)
            .map_err(|errors| errors.into_iter().next().unwrap_or_else(no_reason))?;
        let secrets = super::secrets::secrets(cfg, &resolved.url, lookup);
        Ok(WebhookAdapter {
            url: resolved.url,
            method: match cfg.method {
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
                Method::Patch => reqwest::Method::PATCH,
            },
            format: cfg.payload_format,
            keys: resolved.keys,
            headers: resolved.headers,
            secrets,
            client,
        })
    }

    /// The body, built once: these exact bytes are signed and sent. The
    /// payload goes in as its held text, never parsed: `raw` sends that
    /// text itself, shared rather than copied.
    fn body(&self, d: &Delivery, now_ms: u64) -> serde_json::Result<bytes::Bytes> {
        match self.format {
            PayloadFormat::Raw => Ok(d.payload.bytes()),
            PayloadFormat::Wrapped => serde_json::to_vec(&Wrapped {
                uuid: &d.event_id,
                event: &d.event,
                resource: &d.resource,
                resource_id: d.resource_id.as_deref(),
                payload: d.payload.raw(),
                time_created: d.created_at_ms,
                time_sent: now_ms,
            })
            .map(bytes::Bytes::from),
        }
    }

    /// The configured headers plus the Standard Webhooks ones. `webhook-id`
    /// is the delivery id, the same on every retry, so receivers deduplicate.
    fn signed_headers(&self, id: &str, timestamp: u64, body: &[u8]) -> Option<HeaderMap> {
        let mut headers = self.headers.clone();
        headers.insert(WEBHOOK_ID, HeaderValue::from_str(id).ok()?);
        headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
        if !self.keys.is_empty() {
            let signatures: Vec<String> =
                self.keys.iter().map(|k| sign(k, id, timestamp, body)).collect();
            headers.insert(WEBHOOK_SIGNATURE, HeaderValue::from_str(&signatures.join(" ")).ok()?);
        }
        Some(headers)
    }

    async fn attempt(&self, d: &Delivery, timeout: Duration) -> AttemptReport {
        // `timeout` comes from config; a huge one must not overflow the clock.
        let deadline = Instant::now().checked_add(timeout).unwrap_or_else(far_future);
        let now_ms = crate::clock::now_ms();
        let Ok(body) = self.body(d, now_ms) else {
            return internal("the webhook body could not be serialized");
        };
        let Some(headers) = self.signed_headers(&d.delivery_id, now_ms / 1000, &body) else {
            return internal("the delivery id is not a valid header value");
        };
        let request =
            self.client.request(self.method.clone(), self.url.clone()).headers(headers).body(body);
        match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => retry(Outcome::Timeout, format!("no response within {timeout:?}")),
            Ok(Err(e)) => transport_failure(&e, &self.url, &self.secrets),
            Ok(Ok(response)) => read_response(response, deadline, &self.secrets).await,
        }
    }
}

impl Adapter for WebhookAdapter {
    fn deliver<'a>(
        &'a self,
        delivery: &'a Delivery,
        timeout: Duration,
    ) -> BoxFuture<'a, AttemptReport> {
        Box::pin(self.attempt(delivery, timeout))
    }
}

/// The `wrapped` body, field for field in this order (serialized straight
/// from the delivery, without a `Value` tree per attempt).
#[derive(serde::Serialize)]
struct Wrapped<'a> {
    uuid: &'a str,
    event: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    payload: &'a serde_json::value::RawValue,
    time_created: u64,
    time_sent: u64,
}

/// `resolve` fails with at least one error; this keeps `build` total anyway.
fn no_reason() -> BuildError {
    BuildError::Invalid { field: "url".into(), message: "the config could not be resolved".into() }
}

/// Reads the excerpt's bytes plus one credential's length (never the rest),
/// so a credential straddling the excerpt's end is redacted whole, then
/// classifies. A body still arriving at the deadline keeps what came so far:
/// the status already decided the outcome.
async fn read_response(
    mut response: reqwest::Response,
    deadline: Instant,
    secrets: &Secrets,
) -> AttemptReport {
    let status = response.status().as_u16();
    let after = retry_after(response.headers());
    let limit = EXCERPT_LIMIT + secrets.longest();
    // The status has decided; the excerpt is a courtesy, so a body that
    // trickles does not hold the connection's slot until the timeout.
    let deadline = deadline.min(Instant::now() + EXCERPT_GRACE);
    let (buf, complete) = crate::adapters::http::read_body(&mut response, deadline, limit).await;
    let text = secrets.excerpt(&buf, complete);
    let rejected =
        |message: String| AttemptResult::Permanent { code: Outcome::RejectedClientError, message };
    let result = match status {
        // Standard Webhooks: a redirect means the URL should be updated.
        300..=399 if status != 304 => rejected(format!(
            "HTTP {status}: the endpoint redirects; set the connection's `url` to the final URL"
        )),
        410 => {
            rejected("HTTP 410 Gone: the endpoint is gone; remove or update this connection".into())
        }
        s => classify_status(s, after, &text),
    };
    AttemptReport {
        result,
        http_status: Some(status),
        response_excerpt: (!text.is_empty()).then_some(text),
    }
}

/// Classifies a failure before any response. reqwest's own `Display` names
/// the URL, which may carry a token, so the message is built from the
/// underlying causes, with the URL's secret parts scrubbed for good measure.
fn transport_failure(e: &reqwest::Error, url: &reqwest::Url, secrets: &Secrets) -> AttemptReport {
    let causes = crate::adapters::failure::transport_causes(e);
    let detail = secrets.redact(&scrub(&causes, url));
    if e.is_builder() {
        let message = format!("the request could not be built: {detail}");
        return report(AttemptResult::Permanent { code: Outcome::InternalError, message });
    }
    let (code, what) = if e.is_timeout() {
        (Outcome::Timeout, "no response within the timeout")
    } else if e.is_connect() {
        (Outcome::NetworkError, "could not connect")
    } else {
        (Outcome::NetworkError, "the request failed")
    };
    retry(code, if detail.is_empty() { what.to_string() } else { format!("{what}: {detail}") })
}

/// Removes the URL, its userinfo and its query from an error message
/// (parts shorter than a credential stay, or `e` would scrub every word).
fn scrub(message: &str, url: &reqwest::Url) -> String {
    let mut out = message.replace(url.as_str(), "<webhook url>");
    for secret in [Some(url.username()), url.password(), url.query()].into_iter().flatten() {
        if secret.len() >= crate::adapters::redact::MIN_SECRET {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

/// A deadline no attempt reaches (about a year), for unbounded timeouts.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 86_400)
}

fn report(result: AttemptResult) -> AttemptReport {
    AttemptReport { result, http_status: None, response_excerpt: None }
}

fn retry(code: Outcome, message: String) -> AttemptReport {
    report(AttemptResult::Retry { code, after: None, message })
}

fn internal(message: &str) -> AttemptReport {
    report(AttemptResult::Permanent { code: Outcome::InternalError, message: message.into() })
}
