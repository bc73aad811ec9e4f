//! A provider's answer and its default classification (providers.md
//! section 0), with the provider's own error message and wait hint; and the
//! reports a provider flow ends with when no answer decides it.

use super::adapter::{AttemptReport, AttemptResult, QuotaScope, classify_status};
use crate::config::model::Outcome;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body as JSON, if it is JSON.
    pub json: Option<Value>,
    /// The first `EXCERPT_LIMIT` bytes of the body, credentials redacted.
    pub excerpt: String,
    /// The connection's credentials and this call's, scrubbed from every message.
    pub(super) secrets: super::redact::Secrets,
}

impl Reply {
    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A string at a JSON pointer (`/data/id`); numbers are rendered too.
    pub fn str_at(&self, pointer: &str) -> Option<String> {
        match self.json.as_ref()?.pointer(pointer)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// `text` with the connection's credentials scrubbed (for messages
    /// built from [`Reply::json`], which is kept raw).
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }

    /// The provider's wait hint: `Retry-After`, else a reset header.
    pub fn retry_hint(&self) -> Option<Duration> {
        retry_hint(&self.headers)
    }

    /// The provider's own error message ([`error_message`]), else the excerpt.
    pub fn message(&self) -> String {
        let text = self.json.as_ref().and_then(error_message).unwrap_or_else(|| {
            self.excerpt.chars().take(200).collect::<String>().trim().to_string()
        });
        if text.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {}", self.status, self.redact(&text))
        }
    }

    /// The default classification (providers.md section 0) with the
    /// provider's message: 2xx delivered, 408/429/5xx retry with the wait
    /// hint, 401/403 `auth_failed`, other 4xx permanent.
    pub fn classify(&self) -> AttemptResult {
        match classify_status(self.status, self.retry_hint(), "") {
            r @ (AttemptResult::Delivered | AttemptResult::Deferred { .. }) => r,
            AttemptResult::Retry { code, after, .. } => {
                AttemptResult::Retry { code, after, message: self.message() }
            }
            AttemptResult::Permanent { code, .. } => {
                AttemptResult::Permanent { code, message: self.message() }
            }
        }
    }

    /// This reply's status and excerpt with `result`.
    pub fn report(&self, result: AttemptResult) -> AttemptReport {
        AttemptReport {
            result,
            http_status: Some(self.status),
            response_excerpt: (!self.excerpt.is_empty()).then(|| self.excerpt.clone()),
        }
    }

    /// [`Reply::report`] of [`Reply::classify`].
    pub fn default_report(&self) -> AttemptReport {
        self.report(self.classify())
    }

    /// A documented quota spent until `until` (Unix ms), e.g. a daily limit.
    pub fn deferred(&self, until: u64, scope: QuotaScope, why: &str) -> AttemptReport {
        let at = crate::clock::rfc3339(until);
        let message = format!("{} ({why}: next try at {at})", self.message());
        self.report(AttemptResult::Deferred { code: Outcome::RateLimited, until, scope, message })
    }

    /// An account's spent daily quota (HubSpot's, Resend's): the whole
    /// connection waits for the reset, which is the destination's own hint
    /// when it gives one within a day, and otherwise [`DAY`] from now: a
    /// midnight in an unknown time zone, or a rolling day, is never further.
    pub fn daily_quota(&self, why: &str) -> AttemptReport {
        let wait = self.retry_hint().map_or(DAY, |h| h.min(DAY));
        let until = crate::clock::after(crate::clock::now_ms(), wait);
        self.deferred(until, QuotaScope::Connection, why)
    }

    /// A throttle signalled some other way than 429 (AWeber and Mailchimp 403s).
    pub fn throttled(&self, why: &str) -> AttemptReport {
        self.report(AttemptResult::Retry {
            code: Outcome::RateLimited,
            after: self.retry_hint(),
            message: format!("HTTP {}: {why}", self.status),
        })
    }
}

/// The longest a daily quota stays spent.
pub const DAY: Duration = Duration::from_secs(86_400);

/// The next 00:00 UTC after `now_ms`, plus `margin`. A `now_ms` within
/// `margin` after a midnight gives that midnight: a daily limit reported
/// then may come from a provider whose clock is still on the day before.
pub fn next_utc_midnight(now_ms: u64, margin: Duration) -> u64 {
    let day = DAY.as_millis() as u64;
    let margin = margin.min(DAY).as_millis() as u64;
    (now_ms.saturating_sub(margin) / day + 1) * day + margin
}

/// The provider's error text from common JSON error shapes: `message`,
/// `detail`/`title` (problem+json), `error` (string or `{message}`),
/// `errors[0].message|detail|title`. `name`/`code` prefix it when present.
pub fn error_message(json: &Value) -> Option<String> {
    // Salesforce answers with an array of errors: the first one speaks.
    if let Some(first) = json.as_array().and_then(|a| a.first()) {
        return error_message(first);
    }
    // Empty strings count as absent (`"detail": ""` must not hide a title).
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty()).map(str::to_string)
    };
    let titled = |o: &Value| match (s(o.get("title")), s(o.get("detail"))) {
        (Some(t), Some(d)) => Some(format!("{t}: {d}")),
        (t, d) => t.or(d),
    };
    let first = json.get("errors").and_then(|e| e.get(0));
    let nested = json.get("error").filter(|e| e.is_object());
    let text = s(json.get("message"))
        .or_else(|| s(nested.and_then(|e| e.get("message"))))
        .or_else(|| titled(json))
        .or_else(|| first.and_then(|f| s(f.get("message")).or_else(|| titled(f))))
        .or_else(|| s(json.get("error")))?;
    let label = |v: Option<&Value>| match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let name = label(json.get("name"))
        .or_else(|| label(json.get("code")))
        .or_else(|| label(json.get("errorCode")));
    Some(match name {
        Some(n) if !text.contains(&n) => format!("{n}: {text}"),
        _ => text,
    })
}

/// `Retry-After`, else the reset headers providers use instead:
/// `ratelimit-reset` / `x-ratelimit-reset-after` (seconds from now) and
/// `x-ratelimit-reset` (seconds from now, or a Unix time when it is past
/// 2001, as SendGrid and Intercom send).
pub fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(d) = super::adapter::retry_after(headers) {
        return Some(d);
    }
    let number = |name: &str| -> Option<f64> {
        headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite())
    };
    let delta = |secs: f64| Duration::try_from_secs_f64(secs.max(0.0)).ok();
    if let Some(v) = number("x-ratelimit-reset-after").or_else(|| number("ratelimit-reset")) {
        return delta(v);
    }
    let reset = number("x-ratelimit-reset")?;
    if reset >= 1e9 {
        #[allow(clippy::cast_precision_loss)]
        let now = crate::clock::now_ms() as f64 / 1000.0;
        return delta(reset - now);
    }
    delta(reset)
}

/// The report of a provider flow written with `?` on `Result<_, AttemptReport>`.
pub fn settle(flow: Result<AttemptReport, AttemptReport>) -> AttemptReport {
    match flow {
        Ok(report) | Err(report) => report,
    }
}

/// Delivered without a final call (the desired state already holds).
pub fn delivered() -> AttemptReport {
    AttemptReport { result: AttemptResult::Delivered, http_status: None, response_excerpt: None }
}

/// A permanent failure with no HTTP answer (bad payload, missing metadata).
pub fn permanent(code: Outcome, message: impl Into<String>) -> AttemptReport {
    let result = AttemptResult::Permanent { code, message: message.into() };
    AttemptReport { result, http_status: None, response_excerpt: None }
}

/// The rule's `metadata.id` as text, or a permanent `mapping_error`.
pub fn metadata_id(d: &super::adapter::Delivery) -> Result<String, AttemptReport> {
    match d.metadata.id.as_ref().map(crate::config::model::Scalar::to_text) {
        Some(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => Err(permanent(
            Outcome::MappingError,
            format!("the rule's `metadata.id` is required for `{}`", d.metadata.action),
        )),
    }
}

/// A permanent failure for an action this integration does not have
/// (validation prevents it; a hand-edited store could still carry one).
pub fn unknown_action(kind: &str, action: &str) -> AttemptReport {
    permanent(Outcome::MappingError, format!("`{kind}` has no action `{action}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339;

    #[test]
    fn the_next_utc_midnight_allows_for_a_provider_clock_behind_ours() {
        let margin = Duration::from_secs(60);
        let at = |rfc: &str| {
            let t = httpdate::parse_http_date(rfc).unwrap();
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
        };
        let evening = at("Tue, 10 Mar 2026 23:59:59 GMT");
        assert_eq!(rfc3339(next_utc_midnight(evening, margin)), "2026-03-11T00:01:00.000Z");
        assert_eq!(rfc3339(next_utc_midnight(evening, Duration::ZERO)), "2026-03-11T00:00:00.000Z");
        // Just past midnight by our clock: the limit is still the old day's.
        let just_after = at("Wed, 11 Mar 2026 00:00:30 GMT");
        assert_eq!(rfc3339(next_utc_midnight(just_after, margin)), "2026-03-11T00:01:00.000Z");
        let later = at("Wed, 11 Mar 2026 00:01:30 GMT");
        assert_eq!(rfc3339(next_utc_midnight(later, margin)), "2026-03-12T00:01:00.000Z");
        let exact = at("Wed, 11 Mar 2026 00:00:00 GMT");
        assert_eq!(rfc3339(next_utc_midnight(exact, Duration::ZERO)), "2026-03-12T00:00:00.000Z");
    }
}
