//! The `delivery:` sections of the config file (the workspace's and each
//! connection's own): retries, the circuit breaker, rate limits, and the
//! attempt outcomes they are written in terms of.

use super::duration::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Delivery settings shared by every connection; each connection may
/// override them under its own `delivery:` key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// When failed deliveries are attempted again.
    pub retry: RetryPolicy,
    /// Time allowed for one attempt, connect to last byte; at least `100ms`
    /// (a shorter one fails every attempt before the destination answers).
    #[schemars(extend("format" = "meshes-timeout"))]
    pub timeout: Duration,
    /// Attempts in flight at once, per connection.
    #[schemars(range(min = 1, max = 1024))]
    pub concurrency: u32,
    /// Pause a connection after this many consecutive failed attempts
    /// (without spending the deliveries' attempts), then probe it.
    pub circuit_breaker: CircuitBreaker,
    /// How long finished events, their payloads and attempts are kept before
    /// background pruning (events with a delivery still pending are kept
    /// whatever their age). Each workspace's events go after its own
    /// window; contact activity, and events of a workspace no longer
    /// served, after the longest window of all workspaces.
    pub retention: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_millis(30_000),
            concurrency: 8,
            circuit_breaker: CircuitBreaker::default(),
            retention: Duration::from_millis(30 * 86_400_000),
        }
    }
}

/// The retry schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Delay before each attempt: the first entry is the first attempt's
    /// delay, so the length is the maximum number of attempts.
    #[schemars(length(min = 1, max = 50))]
    pub schedule: Vec<Duration>,
    /// Random spread applied to each delay, as a fraction (0.2 = ±20 %).
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter: f64,
    /// Attempt outcomes that are retried; any other failure is terminal.
    /// Outcomes meshes treats as final by default (`auth_failed`,
    /// `rejected_client_error`, `mapping_error`) are retried too when listed;
    /// a `410 Gone` never is.
    pub retry_on: Vec<Outcome>,
    /// Upper bound for a destination's `Retry-After` request. A documented
    /// quota reset (Zoom's, HubSpot's and Resend's daily limits) is waited for
    /// in full, up to `max_deferrals` times.
    pub max_retry_after: Duration,
    /// How many documented quota resets one delivery may wait for (Zoom's
    /// per-registrant and HubSpot's and Resend's daily limits) before it
    /// fails. Such a wait spends none of `schedule`; a quota still spent
    /// after this many resets needs a plan change or a person, not more
    /// waiting. A manual retry starts the count again; 0 fails at once.
    pub max_deferrals: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let schedule = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]
            .map(|s| Duration::from_millis(s * 1_000))
            .to_vec();
        Self {
            schedule,
            jitter: 0.2,
            retry_on: vec![
                Outcome::RejectedServerError,
                Outcome::RateLimited,
                Outcome::Timeout,
                Outcome::NetworkError,
                Outcome::InternalError,
            ],
            max_retry_after: Duration::from_millis(3_600_000),
            max_deferrals: 7,
        }
    }
}

/// The circuit breaker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Consecutive failed attempts that open the breaker.
    #[schemars(range(min = 1))]
    pub failure_threshold: u32,
    /// How long the connection stays paused before a probe attempt.
    pub cooldown: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self { failure_threshold: 20, cooldown: Duration::from_millis(30_000) }
    }
}

/// The outcome of one delivery attempt (as shown in the attempts API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The destination accepted it.
    Delivered,
    /// A 4xx answer other than 408/429.
    RejectedClientError,
    /// A 5xx answer.
    RejectedServerError,
    /// 429 or a provider's own throttle signal.
    RateLimited,
    /// 401/403 or a failed token refresh.
    AuthFailed,
    /// No answer within the timeout.
    Timeout,
    /// Connection refused, reset, DNS or TLS failure.
    NetworkError,
    /// The payload could not be mapped to the provider's fields.
    MappingError,
    /// A bug or unexpected state in meshes itself.
    InternalError,
}

impl Outcome {
    /// The wire name (as serialized), without allocating.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::RejectedClientError => "rejected_client_error",
            Outcome::RejectedServerError => "rejected_server_error",
            Outcome::RateLimited => "rate_limited",
            Outcome::AuthFailed => "auth_failed",
            Outcome::Timeout => "timeout",
            Outcome::NetworkError => "network_error",
            Outcome::MappingError => "mapping_error",
            Outcome::InternalError => "internal_error",
        }
    }
}

/// A connection's own delivery settings; each unset field inherits the
/// workspace's `delivery:` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryOverride {
    /// Attempts in flight at once for this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub concurrency: Option<u32>,
    /// Most HTTP requests this connection may send to the provider in a
    /// window (the provider's API limit). Every request counts, not every
    /// attempt: an action that looks a contact up before writing, or
    /// refreshes an OAuth token first, spends one per request. Unset: the
    /// provider's documented default, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Time allowed for one attempt; at least `100ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "meshes-timeout"))]
    pub timeout: Option<Duration>,
    /// Retry settings for this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryOverride>,
    /// Circuit breaker for this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// Retry settings that replace the workspace's, field by field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryOverride {
    /// Delay before each attempt (its length is the maximum number of attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub schedule: Option<Vec<Duration>>,
    /// Random spread applied to each delay (0.2 = ±20 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter: Option<f64>,
    /// Attempt outcomes that are retried (any other failure is terminal).
    /// Outcomes meshes treats as final by default (`auth_failed`,
    /// `rejected_client_error`, `mapping_error`) are retried too when listed;
    /// a `410 Gone` never is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<Vec<Outcome>>,
    /// Upper bound for a destination's `Retry-After` request. A documented
    /// quota reset (Zoom's, HubSpot's and Resend's daily limits) is waited for
    /// in full, up to `max_deferrals` times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_after: Option<Duration>,
    /// How many documented quota resets one delivery may wait for before
    /// it fails (a manual retry starts the count again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deferrals: Option<u32>,
}

/// A request budget: at most `requests` HTTP requests per `per`, all of
/// them at once after an idle window, then one every `per / requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// HTTP requests allowed in each window.
    #[schemars(range(min = 1))]
    pub requests: u32,
    /// The window, e.g. `1s` or `1m`; longer than `0s` (a zero window
    /// expresses no rate).
    #[schemars(extend("format" = "meshes-window"))]
    pub per: Duration,
}
