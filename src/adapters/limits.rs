//! Provider rate limits and concurrency caps applied by default, and the
//! request budget that enforces a rate limit.
//!
//! A connection's own `delivery.rate_limit` / `delivery.concurrency`
//! replaces these; the workspace-wide `delivery.concurrency` still caps the
//! provider default (a workspace asking for less is obeyed).
//!
//! Providers document their limits per HTTP request, and one attempt may
//! send several (look up, then add; or a token refresh first), so the budget
//! is spent per request: every [`super::http::Call`] sent inside
//! [`paced`] waits for its turn.

use super::ConnectionConfig;
use crate::config::duration::Duration;
use crate::config::model::{DeliveryOverride, RateLimit};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// A provider's documented limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderLimits {
    /// Most attempts in flight (Mailchimp: 10 simultaneous connections).
    pub concurrency: Option<u32>,
    /// Request budget (Resend: 2 per second).
    pub rate_limit: Option<RateLimit>,
}

fn per(requests: u32, ms: u64) -> Option<RateLimit> {
    Some(RateLimit { requests, per: Duration::from_millis(ms) })
}

impl ConnectionConfig {
    /// The provider's documented limits (providers.md, "Rate limits").
    pub fn default_limits(&self) -> ProviderLimits {
        let rate = |rate_limit| ProviderLimits { concurrency: None, rate_limit };
        match self {
            ConnectionConfig::Resend(_) => rate(per(2, 1_000)),
            ConnectionConfig::Activecampaign(_) => rate(per(5, 1_000)),
            ConnectionConfig::Mailchimp(_) => {
                ProviderLimits { concurrency: Some(10), rate_limit: None }
            }
            ConnectionConfig::Mailerlite(_) | ConnectionConfig::Aweber(_) => rate(per(120, 60_000)),
            // Free/Starter private-app burst: 100 per 10 s.
            ConnectionConfig::Hubspot(_) => rate(per(100, 10_000)),
            ConnectionConfig::CustomerIo(_) => rate(per(100, 1_000)),
            // About one message per second per webhook or channel.
            ConnectionConfig::Slack(_) => rate(per(1, 1_000)),
            ConnectionConfig::Discord(_) => rate(per(5, 2_000)),
            _ => ProviderLimits::default(),
        }
    }

    /// The concurrency and rate limit in force: the connection's override,
    /// else the provider default (capped by `workspace_concurrency`), else
    /// the workspace's settings.
    pub fn effective_limits(&self, workspace_concurrency: u32) -> (u32, Option<RateLimit>) {
        let own = self.delivery().cloned().unwrap_or_else(DeliveryOverride::default);
        let defaults = self.default_limits();
        let concurrency = own.concurrency.unwrap_or_else(|| {
            defaults.concurrency.map_or(workspace_concurrency, |c| c.min(workspace_concurrency))
        });
        (concurrency, own.rate_limit.or(defaults.rate_limit))
    }
}

/// One connection's request budget: `requests` per `per`, all of them at
/// once after an idle window, then one every `per / requests` (GCRA).
///
/// Each request reserves its turn when it asks, so waiters go in order and
/// a request late in an attempt is not overtaken indefinitely. Time is
/// tokio's, so tests pace it with a paused clock.
#[derive(Debug)]
pub struct RequestBudget {
    /// Time between two requests once the burst is spent.
    interval: std::time::Duration,
    /// How far ahead of its even spacing a request may go (the burst).
    burst: std::time::Duration,
    /// When the request after the last reserved one is due at the even
    /// spacing; `None` before the first.
    next: Mutex<Option<Instant>>,
}

impl RequestBudget {
    /// The budget for `limit`; `None` when it allows everything (no requests
    /// or a zero window cannot express a rate, validation rejects both).
    pub fn new(limit: &RateLimit) -> Option<Self> {
        let interval = limit.per.get().checked_div(limit.requests)?;
        if interval.is_zero() {
            return None;
        }
        let burst = interval.saturating_mul(limit.requests - 1);
        Some(RequestBudget { interval, burst, next: Mutex::new(None) })
    }

    /// Waits for the next request's turn; returns how long it waited.
    pub async fn take(&self) -> std::time::Duration {
        let now = Instant::now();
        let at = self.reserve(now);
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        at.saturating_duration_since(now)
    }

    /// How long a request asking now would wait (nothing is reserved).
    pub fn wait_now(&self) -> std::time::Duration {
        let now = Instant::now();
        let next = self.next.lock().map(|n| *n).unwrap_or_else(|e| *e.into_inner());
        next.map_or(now, |t| self.turn(t, now)).saturating_duration_since(now)
    }

    fn reserve(&self, now: Instant) -> Instant {
        // A poisoned lock only means another waiter panicked mid-update of a
        // plain `Instant`; the value is still usable.
        let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = next.map_or(now, |t| t.max(now));
        *next = Some(due + self.interval);
        self.turn(due, now)
    }

    /// When a request due at `due` at the even spacing may go.
    fn turn(&self, due: Instant, now: Instant) -> Instant {
        due.checked_sub(self.burst).map_or(now, |t| t.max(now))
    }
}

/// Every connection's request budget by `<workspace>/<connection>`, shared
/// by its deliveries and its discovery calls (`GET /connections/{id}/actions`),
/// so both count against the one provider quota. A changed rate limit (a
/// reload) starts a fresh budget.
#[derive(Debug, Default)]
pub struct Budgets(Mutex<HashMap<String, (RateLimit, Arc<RequestBudget>)>>);

impl Budgets {
    /// The budget of `conn_key` under `limit` (`None` without a limit).
    pub fn get(&self, conn_key: &str, limit: Option<&RateLimit>) -> Option<Arc<RequestBudget>> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(limit) = limit else {
            map.remove(conn_key);
            return None;
        };
        if let Some((known, budget)) = map.get(conn_key)
            && known == limit
        {
            return Some(budget.clone());
        }
        let budget = Arc::new(RequestBudget::new(limit)?);
        map.insert(conn_key.to_string(), (limit.clone(), budget.clone()));
        Some(budget)
    }

    /// Forgets the budgets of connections no longer configured.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|k, _| live(k));
    }
}

/// One attempt's use of its connection's budget.
#[derive(Debug)]
struct Turns {
    budget: Arc<RequestBudget>,
    /// The engine took a turn before the attempt began; the first request uses it.
    prepaid: AtomicBool,
    /// Nanoseconds this attempt's requests have waited for turns so far.
    waited: AtomicU64,
}

tokio::task_local! {
    // Task-local rather than a parameter: the budget belongs to the
    // connection's lane (rebuilt when a reload changes the limit), while
    // requests are built deep inside each provider's flow and its token
    // refreshes, all of which go through `http::Call::send`.
    static TURNS: Arc<Turns>;
}

/// Runs one delivery attempt so that every provider request it sends takes a
/// turn from `budget`. `prepaid`: the caller already took one turn, which the
/// first request uses (an adapter sending no [`super::http::Call`], like the
/// generic webhook, is paced by that turn alone). Also returns how long its
/// requests waited for turns in all, which is not the attempt's own time.
pub async fn paced<F: Future>(
    budget: Arc<RequestBudget>,
    prepaid: bool,
    attempt: F,
) -> (F::Output, std::time::Duration) {
    let turns =
        Arc::new(Turns { budget, prepaid: AtomicBool::new(prepaid), waited: AtomicU64::new(0) });
    let output = TURNS.scope(turns.clone(), attempt).await;
    (output, std::time::Duration::from_nanos(turns.waited.load(Ordering::Relaxed)))
}

/// Waits for this request's turn (nothing outside [`paced`]); returns how
/// long the attempt's requests have waited for turns in all, by which its
/// deadline moves: the timeout bounds talking to the provider, not queueing
/// for the connection's budget (as for the attempt's first turn).
pub(crate) async fn request_turn() -> std::time::Duration {
    let Ok(turns) = TURNS.try_with(Arc::clone) else {
        return std::time::Duration::ZERO;
    };
    if !turns.prepaid.swap(false, Ordering::Relaxed) {
        let waited = turns.budget.take().await;
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        turns.waited.fetch_add(nanos, Ordering::Relaxed);
    }
    std::time::Duration::from_nanos(turns.waited.load(Ordering::Relaxed))
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod budget_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(yaml: &str) -> ConnectionConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn provider_defaults_apply_when_not_overridden() {
        let resend = conn("type: resend\napi_key: ${K}\n");
        assert_eq!(resend.effective_limits(8), (8, per(2, 1_000)));
        let mailchimp = conn("type: mailchimp\napi_key: ${K}\n");
        assert_eq!(mailchimp.effective_limits(64), (10, None));
        // The workspace asking for fewer is obeyed.
        assert_eq!(mailchimp.effective_limits(4), (4, None));
        let webhook = conn("type: webhook\nurl: https://example.com\n");
        assert_eq!(webhook.effective_limits(8), (8, None));
    }

    #[test]
    fn connection_overrides_win() {
        let c = conn(
            "type: mailchimp\napi_key: ${K}\ndelivery:\n  concurrency: 20\n  rate_limit: { requests: 3, per: 1s }\n",
        );
        assert_eq!(c.effective_limits(8), (20, per(3, 1_000)));
    }
}
