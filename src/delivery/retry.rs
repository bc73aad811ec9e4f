//! When the next attempt happens: the schedule, jitter and `Retry-After`.

use crate::adapters::adapter::{AttemptReport, AttemptResult};
use crate::config::model::{Outcome, RetryPolicy};
use crate::store::Next;
use std::time::Duration;

/// What a delivery has used of its retry policy since it was created or
/// last retried by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// Attempts that count against `schedule`, this one included.
    pub attempts: u32,
    /// Quota resets already waited for, this attempt's not included.
    pub deferrals: u32,
}

/// Final outcomes `retry_on` can make retried: the destination's own
/// refusals, which a later attempt may see lifted.
const RETRIABLE_WHEN_LISTED: [Outcome; 3] =
    [Outcome::AuthFailed, Outcome::RejectedClientError, Outcome::MappingError];

/// Decides what follows an attempt; `unit` is a number in [0, 1) drawn for
/// jitter.
pub fn next_step(
    result: &AttemptResult,
    policy: &RetryPolicy,
    spent: Spent,
    now_ms: u64,
    unit: f64,
) -> Next {
    match result {
        AttemptResult::Delivered => Next::Completed,
        // The adapter judged that retrying cannot help, but `retry_on` is the
        // user's word: one listing `auth_failed` while credentials are being
        // rotated, or `rejected_client_error` for a receiver not deployed
        // yet, gets the schedule. Only those answers, though: a message sent
        // without an answer is final as `timeout` or `network_error` because
        // it may have been acted on (retrying could send it twice), and those
        // two are retried by default.
        AttemptResult::Permanent { code, .. }
            if RETRIABLE_WHEN_LISTED.contains(code) && policy.retry_on.contains(code) =>
        {
            scheduled(policy, spent, now_ms, unit, None)
        }
        AttemptResult::Permanent { .. } => Next::Failed,
        AttemptResult::Retry { code, after, .. } => {
            if !policy.retry_on.contains(code) {
                return Next::Failed;
            }
            scheduled(policy, spent, now_ms, unit, *after)
        }
        // The reset is the provider's documented one, not a header guess, so
        // `max_retry_after` does not cap it: capped, the delivery was sent
        // again every hour into the same spent quota until the reset. And
        // the try does not spend the retry budget (the store moves the
        // budget's start past it): it could not have succeeded, and a
        // delivery blocked in its last scheduled try would otherwise fail
        // hours before the quota it waits for comes back. The schedule
        // resumes where it was. At most one such try per reset, and at most
        // `max_deferrals` resets: a quota spent day after day needs a person.
        AttemptResult::Deferred { code, until, .. } => {
            if !policy.retry_on.contains(code) || spent.deferrals >= policy.max_deferrals {
                return Next::Failed;
            }
            Next::Deferred { at: (*until).max(now_ms) }
        }
    }
}

/// [`next_step`] for an attempt's report. A `410 Gone` is final whatever
/// `retry_on` lists: by the Standard Webhooks contract the receiver asks
/// never to be sent it again.
pub fn next_for(
    report: &AttemptReport,
    policy: &RetryPolicy,
    spent: Spent,
    now_ms: u64,
    unit: f64,
) -> Next {
    let gone = report.http_status == Some(410);
    if gone && !matches!(report.result, AttemptResult::Delivered) {
        return Next::Failed;
    }
    next_step(&report.result, policy, spent, now_ms, unit)
}

/// The schedule's next attempt, or `Failed` when it is spent; `after` is
/// the destination's hint, capped by `max_retry_after`.
fn scheduled(
    policy: &RetryPolicy,
    spent: Spent,
    now_ms: u64,
    unit: f64,
    after: Option<Duration>,
) -> Next {
    let Some(base) = policy.schedule.get(spent.attempts as usize) else {
        return Next::Failed;
    };
    let delay = jittered(base.get(), policy.jitter, unit);
    let delay = match after {
        Some(hint) => delay.max(hint.min(policy.max_retry_after.get())),
        None => delay,
    };
    Next::Retry { at: crate::clock::after(now_ms, delay) }
}

/// `base` spread by ±`jitter` (0.2 = ±20 %); `unit` in [0, 1) picks the point.
pub fn jittered(base: Duration, jitter: f64, unit: f64) -> Duration {
    let factor = 1.0 + jitter.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    base.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::Duration as D;
    use crate::config::model::Outcome;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![D::from_millis(0), D::from_millis(5_000), D::from_millis(300_000)],
            jitter: 0.2,
            ..RetryPolicy::default()
        }
    }

    fn n(attempts: u32) -> Spent {
        Spent { attempts, deferrals: 0 }
    }

    fn retry(code: Outcome, after: Option<Duration>) -> AttemptResult {
        AttemptResult::Retry { code, after, message: String::new() }
    }

    #[test]
    fn follows_the_schedule_then_fails() {
        let p = policy();
        let r = retry(Outcome::RejectedServerError, None);
        assert_eq!(next_step(&r, &p, n(1), 1_000, 0.5), Next::Retry { at: 6_000 });
        assert_eq!(next_step(&r, &p, n(2), 1_000, 0.5), Next::Retry { at: 301_000 });
        assert_eq!(next_step(&r, &p, n(3), 1_000, 0.5), Next::Failed);
        assert_eq!(next_step(&AttemptResult::Delivered, &p, n(1), 0, 0.5), Next::Completed);
        let permanent =
            AttemptResult::Permanent { code: Outcome::RejectedClientError, message: String::new() };
        assert_eq!(next_step(&permanent, &p, n(1), 0, 0.5), Next::Failed);
    }

    #[test]
    fn retry_on_retries_what_an_adapter_called_permanent_but_not_a_410() {
        let mut p = policy();
        p.retry_on = vec![Outcome::AuthFailed, Outcome::RejectedClientError];
        let auth = AttemptResult::Permanent { code: Outcome::AuthFailed, message: String::new() };
        assert_eq!(next_step(&auth, &p, n(1), 1_000, 0.5), Next::Retry { at: 6_000 });
        assert_eq!(next_step(&auth, &p, n(3), 1_000, 0.5), Next::Failed, "schedule spent");
        let mapping =
            AttemptResult::Permanent { code: Outcome::MappingError, message: String::new() };
        assert_eq!(next_step(&mapping, &p, n(1), 1_000, 0.5), Next::Failed, "not listed");
        let report = |status| AttemptReport {
            result: AttemptResult::Permanent {
                code: Outcome::RejectedClientError,
                message: String::new(),
            },
            http_status: Some(status),
            response_excerpt: None,
        };
        assert_eq!(next_for(&report(404), &p, n(1), 1_000, 0.5), Next::Retry { at: 6_000 });
        assert_eq!(next_for(&report(410), &p, n(1), 1_000, 0.5), Next::Failed);
    }

    #[test]
    fn a_send_that_may_have_been_acted_on_stays_final_whatever_retry_on_lists() {
        let p = RetryPolicy::default();
        assert!(
            p.retry_on.contains(&Outcome::Timeout) && p.retry_on.contains(&Outcome::NetworkError)
        );
        for code in [Outcome::Timeout, Outcome::NetworkError, Outcome::InternalError] {
            let unanswered = AttemptResult::Permanent { code, message: String::new() };
            assert_eq!(next_step(&unanswered, &p, n(1), 1_000, 0.5), Next::Failed, "{code:?}");
        }
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let base = Duration::from_secs(100);
        assert_eq!(jittered(base, 0.2, 0.0), Duration::from_secs(80));
        assert_eq!(jittered(base, 0.2, 0.5), base);
        assert!(jittered(base, 0.2, 0.999_999) <= Duration::from_secs(120));
        assert_eq!(jittered(base, 0.0, 0.9), base);
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let mut p = policy();
        let r = retry(Outcome::RateLimited, Some(Duration::from_secs(60)));
        assert_eq!(next_step(&r, &p, n(1), 0, 0.5), Next::Retry { at: 60_000 });
        p.max_retry_after = D::from_millis(10_000);
        assert_eq!(next_step(&r, &p, n(1), 0, 0.5), Next::Retry { at: 10_000 });
        // A hint shorter than the schedule does not shorten it.
        let short = retry(Outcome::RateLimited, Some(Duration::from_secs(1)));
        assert_eq!(next_step(&short, &p, n(2), 0, 0.5), Next::Retry { at: 300_000 });
    }

    #[test]
    fn an_ordinary_retry_after_is_capped_by_max_retry_after() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retry_after.get(), Duration::from_secs(3_600), "the default cap");
        let two_hours = retry(Outcome::RateLimited, Some(Duration::from_secs(7_200)));
        assert_eq!(next_step(&two_hours, &p, n(1), 1_000, 0.5), Next::Retry { at: 3_601_000 });
    }

    #[test]
    fn a_quota_reset_is_waited_for_past_the_cap_and_the_schedule() {
        use crate::adapters::reply::next_utc_midnight;
        let p = RetryPolicy::default();
        // 2026-03-10T09:15:00Z: a Zoom daily limit lifts at 00:00 UTC, 14 h 45 min away.
        let now = 1_773_134_100_000;
        let midnight = next_utc_midnight(now, Duration::ZERO);
        assert_eq!(crate::clock::rfc3339(midnight), "2026-03-11T00:00:00.000Z");
        let daily = AttemptResult::Deferred {
            code: Outcome::RateLimited,
            until: midnight,
            scope: crate::adapters::adapter::QuotaScope::Delivery,
            message: "".into(),
        };
        assert_eq!(next_step(&daily, &p, n(1), now, 0.5), Next::Deferred { at: midnight });
        // Even as the last try of the budget: it does not spend one.
        let last = p.schedule.len() as u32;
        assert_eq!(next_step(&daily, &p, n(last), now, 0.5), Next::Deferred { at: midnight });
        // A reset already past is tried now; a user who does not retry
        // `rate_limited` gets a failure, as for any other 429.
        assert_eq!(
            next_step(&daily, &p, n(1), midnight + 5, 0.5),
            Next::Deferred { at: midnight + 5 }
        );
        let mut no_429 = p.clone();
        no_429.retry_on = vec![Outcome::Timeout];
        assert_eq!(next_step(&daily, &no_429, n(1), now, 0.5), Next::Failed);
    }

    #[test]
    fn a_delivery_waits_for_at_most_max_deferrals_resets() {
        let p = RetryPolicy { max_deferrals: 2, ..RetryPolicy::default() };
        assert_eq!(RetryPolicy::default().max_deferrals, 7, "the default: a week of daily resets");
        let daily = AttemptResult::Deferred {
            code: Outcome::RateLimited,
            until: 86_400_000,
            scope: crate::adapters::adapter::QuotaScope::Connection,
            message: "".into(),
        };
        let waited = |deferrals| Spent { attempts: 1, deferrals };
        assert_eq!(next_step(&daily, &p, waited(0), 0, 0.5), Next::Deferred { at: 86_400_000 });
        assert_eq!(next_step(&daily, &p, waited(1), 0, 0.5), Next::Deferred { at: 86_400_000 });
        assert_eq!(next_step(&daily, &p, waited(2), 0, 0.5), Next::Failed, "the third reset");
        let never = RetryPolicy { max_deferrals: 0, ..RetryPolicy::default() };
        assert_eq!(next_step(&daily, &never, waited(0), 0, 0.5), Next::Failed);
        // An ordinary failure after the waits still has its schedule.
        let error = retry(Outcome::RejectedServerError, None);
        assert_eq!(next_step(&error, &p, waited(2), 0, 0.5), Next::Retry { at: 5_000 });
    }

    #[test]
    fn outcomes_outside_retry_on_are_terminal() {
        let mut p = policy();
        p.retry_on = vec![Outcome::Timeout];
        assert_eq!(
            next_step(&retry(Outcome::RejectedServerError, None), &p, n(1), 0, 0.5),
            Next::Failed
        );
        assert_eq!(
            next_step(&retry(Outcome::Timeout, None), &p, n(1), 0, 0.5),
            Next::Retry { at: 5_000 }
        );
    }
}
