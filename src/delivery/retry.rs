//! When the next attempt happens: the schedule, jitter and `Retry-After`.

use crate::adapters::adapter::AttemptResult;
use crate::config::model::RetryPolicy;
use crate::store::Next;
use std::time::Duration;

/// Decides what follows an attempt. `attempts_in_budget` counts the attempts
/// made since the delivery was created or last retried by hand, including
/// this one; `unit` is a number in [0, 1) drawn for jitter.
pub fn next_step(
    result: &AttemptResult,
    policy: &RetryPolicy,
    attempts_in_budget: u32,
    now_ms: u64,
    unit: f64,
) -> Next {
    match result {
        AttemptResult::Delivered => Next::Completed,
        AttemptResult::Permanent { .. } => Next::Failed,
        AttemptResult::Retry { code, after, .. } => {
            if !policy.retry_on.contains(code) {
                return Next::Failed;
            }
            let Some(base) = policy.schedule.get(attempts_in_budget as usize) else {
                return Next::Failed;
            };
            let delay = jittered(base.get(), policy.jitter, unit);
            let delay = match after {
                Some(hint) => delay.max((*hint).min(policy.max_retry_after.get())),
                None => delay,
            };
            Next::Retry { at: now_ms + delay.as_millis() as u64 }
        }
    }
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

    fn retry(code: Outcome, after: Option<Duration>) -> AttemptResult {
        AttemptResult::Retry { code, after, message: String::new() }
    }

    #[test]
    fn follows_the_schedule_then_fails() {
        let p = policy();
        let r = retry(Outcome::RejectedServerError, None);
        assert_eq!(next_step(&r, &p, 1, 1_000, 0.5), Next::Retry { at: 6_000 });
        assert_eq!(next_step(&r, &p, 2, 1_000, 0.5), Next::Retry { at: 301_000 });
        assert_eq!(next_step(&r, &p, 3, 1_000, 0.5), Next::Failed);
        assert_eq!(next_step(&AttemptResult::Delivered, &p, 1, 0, 0.5), Next::Completed);
        let permanent =
            AttemptResult::Permanent { code: Outcome::RejectedClientError, message: String::new() };
        assert_eq!(next_step(&permanent, &p, 1, 0, 0.5), Next::Failed);
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
        assert_eq!(next_step(&r, &p, 1, 0, 0.5), Next::Retry { at: 60_000 });
        p.max_retry_after = D::from_millis(10_000);
        assert_eq!(next_step(&r, &p, 1, 0, 0.5), Next::Retry { at: 10_000 });
        // A hint shorter than the schedule does not shorten it.
        let short = retry(Outcome::RateLimited, Some(Duration::from_secs(1)));
        assert_eq!(next_step(&short, &p, 2, 0, 0.5), Next::Retry { at: 300_000 });
    }

    #[test]
    fn outcomes_outside_retry_on_are_terminal() {
        let mut p = policy();
        p.retry_on = vec![Outcome::Timeout];
        assert_eq!(
            next_step(&retry(Outcome::RejectedServerError, None), &p, 1, 0, 0.5),
            Next::Failed
        );
        assert_eq!(
            next_step(&retry(Outcome::Timeout, None), &p, 1, 0, 0.5),
            Next::Retry { at: 5_000 }
        );
    }
}
