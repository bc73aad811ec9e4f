//! One connection's lane: its concurrency limit, rate limit and circuit
//! breaker. Lanes are independent, so a slow or failing connection only
//! ever uses its own permits.

use crate::config::model::{CircuitBreaker, RateLimit};
use governor::{DefaultDirectRateLimiter, Quota};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Effective settings of a lane (workspace defaults merged with the connection's own).
#[derive(Debug, Clone, PartialEq)]
pub struct LaneSettings {
    /// Attempts in flight at once.
    pub concurrency: u32,
    /// Request budget, if any.
    pub rate_limit: Option<RateLimit>,
    /// Breaker thresholds.
    pub breaker: CircuitBreaker,
}

/// Circuit state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaker {
    /// Normal operation.
    Closed {
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Paused until this time (Unix ms); nothing is attempted.
    Open {
        /// When a probe may go.
        until: u64,
    },
    /// One probe attempt is allowed; its result closes or re-opens the circuit.
    HalfOpen,
}

/// A lane.
#[derive(Debug)]
pub struct Lane {
    /// The settings it was built with (rebuilt when they change on reload).
    pub settings: LaneSettings,
    /// Free attempt slots.
    pub permits: Arc<Semaphore>,
    /// Request pacing.
    pub limiter: Option<Arc<DefaultDirectRateLimiter>>,
    breaker: Mutex<Breaker>,
}

impl Lane {
    /// A lane with all permits free and the breaker closed.
    pub fn new(settings: LaneSettings) -> Self {
        let limiter = settings
            .rate_limit
            .as_ref()
            .and_then(quota)
            .map(|q| Arc::new(DefaultDirectRateLimiter::direct(q)));
        Lane {
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1) as usize)),
            limiter,
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            settings,
        }
    }

    /// How many deliveries may be dispatched now (0 while the breaker is open).
    pub fn capacity(&self, now_ms: u64) -> usize {
        let free = self.permits.available_permits();
        let Ok(mut b) = self.breaker.lock() else { return 0 };
        match *b {
            Breaker::Closed { .. } => free,
            Breaker::Open { until } if now_ms >= until => {
                *b = Breaker::HalfOpen;
                free.min(1)
            }
            Breaker::Open { .. } => 0,
            // One probe at a time: only when nothing else is in flight.
            Breaker::HalfOpen => usize::from(free == self.settings.concurrency.max(1) as usize),
        }
    }

    /// When an open breaker lets a probe through.
    pub fn reopens_at(&self) -> Option<u64> {
        match self.breaker.lock().map(|b| *b) {
            Ok(Breaker::Open { until }) => Some(until),
            _ => None,
        }
    }

    /// The breaker state (for metrics and tests).
    pub fn breaker(&self) -> Breaker {
        self.breaker.lock().map(|b| *b).unwrap_or(Breaker::HalfOpen)
    }

    /// Feeds an attempt's health signal: `healthy` = the destination answered
    /// sensibly (success or a per-request rejection), not a timeout/5xx/429.
    pub fn record(&self, healthy: bool, now_ms: u64) {
        let Ok(mut b) = self.breaker.lock() else { return };
        let threshold = self.settings.breaker.failure_threshold.max(1);
        *b = match (*b, healthy) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false) if failures + 1 < threshold => {
                Breaker::Closed { failures: failures + 1 }
            }
            (Breaker::Open { until }, false) => Breaker::Open { until },
            (_, false) => Breaker::Open {
                until: now_ms + self.settings.breaker.cooldown.get().as_millis() as u64,
            },
        };
    }
}

fn quota(r: &RateLimit) -> Option<Quota> {
    let n = NonZeroU32::new(r.requests)?;
    let per = r.per.get().checked_div(r.requests)?;
    Quota::with_period(per).map(|q| q.allow_burst(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::duration::Duration as D;

    fn lane(concurrency: u32, threshold: u32) -> Lane {
        Lane::new(LaneSettings {
            concurrency,
            rate_limit: None,
            breaker: CircuitBreaker {
                failure_threshold: threshold,
                cooldown: D::from_millis(1_000),
            },
        })
    }

    #[test]
    fn breaker_opens_after_threshold_and_probes_after_cooldown() {
        let l = lane(4, 3);
        l.record(false, 0);
        l.record(false, 0);
        assert_eq!(l.capacity(0), 4);
        l.record(false, 10);
        assert_eq!(l.breaker(), Breaker::Open { until: 1_010 });
        assert_eq!(l.capacity(500), 0, "paused: no attempts spent");
        assert_eq!(l.reopens_at(), Some(1_010));
        assert_eq!(l.capacity(1_010), 1, "one probe");
        l.record(false, 1_020);
        assert_eq!(l.breaker(), Breaker::Open { until: 2_020 });
        assert_eq!(l.capacity(2_020), 1);
        l.record(true, 2_030);
        assert_eq!(l.capacity(2_030), 4);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let l = lane(1, 2);
        l.record(false, 0);
        l.record(true, 0);
        l.record(false, 0);
        assert_eq!(l.breaker(), Breaker::Closed { failures: 1 });
    }

    #[test]
    fn rate_limit_quota_spreads_requests() {
        let q = quota(&RateLimit { requests: 5, per: D::from_millis(1_000) }).unwrap();
        assert_eq!(q.burst_size().get(), 5);
        assert_eq!(q.replenish_interval(), std::time::Duration::from_millis(200));
        assert!(quota(&RateLimit { requests: 0, per: D::from_millis(1_000) }).is_none());
    }
}
