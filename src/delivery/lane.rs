//! One connection's lane: its concurrency limit, rate limit and circuit
//! breaker. Lanes are independent, so a slow or failing connection only
//! ever uses its own permits.

use crate::adapters::limits::RequestBudget;
use crate::config::model::{CircuitBreaker, RateLimit};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts per request slot that may wait for their outcome to be written.
/// An answered attempt frees its request slot at once (the next delivery
/// need not wait for the writer's fsync) but keeps one of these until its
/// outcome is on disk, so the attempts queued for the writer stay bounded.
const RECORDING_PER_SLOT: usize = 4;

/// Effective settings of a lane (workspace defaults merged with the connection's own).
#[derive(Debug, Clone, PartialEq)]
pub struct LaneSettings {
    /// Attempts in flight at once.
    pub concurrency: u32,
    /// Request budget (HTTP requests to the destination), if any.
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
        /// When it was set (Unix ms). A reading before it means the wall
        /// clock stepped back since: the wait is moved back with it, or
        /// the connection would stay paused for the step's length too.
        since: u64,
    },
    /// One probe attempt is allowed; its result closes or re-opens the circuit.
    HalfOpen,
}

/// A change of the breaker that the log reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It opened, or a probe failed and it opened again: no sends until
    /// this time (Unix ms).
    Opened {
        /// When a probe may go.
        until: u64,
    },
    /// It closed: the connection is sent to as usual again.
    Closed,
}

/// A lane.
#[derive(Debug)]
pub struct Lane {
    /// The settings it was built with (rebuilt when they change on reload).
    pub settings: LaneSettings,
    /// Free request slots: attempts talking to the destination.
    permits: Arc<Semaphore>,
    /// Free recording slots: attempts not yet written, answered or not.
    recording: Arc<Semaphore>,
    /// Request pacing: one turn per HTTP request an attempt sends; the
    /// connection's, which its discovery calls spend too.
    pub budget: Option<Arc<RequestBudget>>,
    /// Shared with the lane's successors under new settings (see [`Lane::resized`]).
    breaker: Arc<Mutex<Breaker>>,
}

impl Lane {
    /// A lane with all permits free, the breaker closed and its own budget.
    pub fn new(settings: LaneSettings) -> Self {
        let budget = settings.rate_limit.as_ref().and_then(RequestBudget::new).map(Arc::new);
        Self::with_budget(settings, budget)
    }

    /// A lane spending `budget` (the connection's, shared with its other users).
    pub fn with_budget(settings: LaneSettings, budget: Option<Arc<RequestBudget>>) -> Self {
        Lane {
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1) as usize)),
            recording: Arc::new(Semaphore::new(
                settings.concurrency.max(1) as usize * RECORDING_PER_SLOT,
            )),
            budget,
            breaker: Arc::new(Mutex::new(Breaker::Closed { failures: 0 })),
            settings,
        }
    }

    /// This lane under new `settings` (a reload changed them): the same
    /// slots, resized, and the same breaker. A fresh lane would let the
    /// attempts still running on this one go uncounted, so a connection
    /// limited to 2 could have 2 more in flight, and it would close an open
    /// breaker. Slots in use when it shrinks are taken out as they come back.
    pub fn resized(&self, settings: LaneSettings, budget: Option<Arc<RequestBudget>>) -> Lane {
        let (from, to) = (self.settings.concurrency.max(1), settings.concurrency.max(1));
        resize(&self.permits, from as usize, to as usize);
        resize(
            &self.recording,
            from as usize * RECORDING_PER_SLOT,
            to as usize * RECORDING_PER_SLOT,
        );
        Lane {
            settings,
            permits: self.permits.clone(),
            recording: self.recording.clone(),
            budget,
            breaker: self.breaker.clone(),
        }
    }

    /// How many deliveries may be dispatched now (0 while the breaker is open).
    pub fn capacity(&self, now_ms: u64) -> usize {
        let sending = self.permits.available_permits();
        let free = sending.min(self.recording.available_permits());
        let Ok(mut b) = self.breaker.lock() else { return 0 };
        match *b {
            Breaker::Closed { .. } => free,
            Breaker::Open { until, since } if now_ms < since => {
                *b = Breaker::Open { until: until.saturating_sub(since - now_ms), since: now_ms };
                0
            }
            Breaker::Open { until, .. } if now_ms >= until => {
                *b = Breaker::HalfOpen;
                free.min(1)
            }
            Breaker::Open { .. } => 0,
            // One probe at a time: only when no other request is out.
            Breaker::HalfOpen => {
                usize::from(free > 0 && sending == self.settings.concurrency.max(1) as usize)
            }
        }
    }

    /// Both slots of one attempt, or `None` when either kind is taken.
    pub fn slots(&self) -> Option<Slots> {
        let recording = self.recording.clone().try_acquire_owned().ok()?;
        let request = self.permits.clone().try_acquire_owned().ok()?;
        Some(Slots { request, recording })
    }

    /// Recording slots free now, and in all (tests check none leaks).
    #[cfg(test)]
    pub fn free_recording(&self) -> usize {
        self.recording.available_permits()
    }
    #[cfg(test)]
    pub fn recording_slots(&self) -> usize {
        self.settings.concurrency.max(1) as usize * RECORDING_PER_SLOT
    }

    /// When an open breaker lets a probe through.
    pub fn reopens_at(&self) -> Option<u64> {
        match self.breaker.lock().map(|b| *b) {
            Ok(Breaker::Open { until, .. }) => Some(until),
            _ => None,
        }
    }

    /// Whether the connection is paused or probing: not closed (tests).
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        !matches!(self.breaker(), Breaker::Closed { .. })
    }

    /// Whether the breaker holds sends back at `now_ms`: open and its
    /// cooldown (or quota wait) not over. Half open is not: a probe may go,
    /// even if nothing is due to be it.
    pub fn pausing(&self, now_ms: u64) -> bool {
        matches!(self.breaker(), Breaker::Open { until, .. } if now_ms < until)
    }

    /// The breaker state (for metrics and tests).
    pub fn breaker(&self) -> Breaker {
        self.breaker.lock().map(|b| *b).unwrap_or(Breaker::HalfOpen)
    }

    /// Feeds an attempt's health signal: `healthy` = the destination answered
    /// sensibly (success or a per-request rejection), not a timeout/5xx/429.
    /// Says whether the breaker opened or closed, for the log: decided
    /// under the lock, as attempts finishing together would both see it.
    pub fn record(&self, healthy: bool, now_ms: u64) -> Option<Change> {
        let Ok(mut b) = self.breaker.lock() else { return None };
        let threshold = self.settings.breaker.failure_threshold.max(1);
        let before = *b;
        *b = match (before, healthy) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false) if failures + 1 < threshold => {
                Breaker::Closed { failures: failures + 1 }
            }
            (open @ Breaker::Open { .. }, false) => open,
            (_, false) => Breaker::Open {
                until: crate::clock::after(now_ms, self.settings.breaker.cooldown.get()),
                since: now_ms,
            },
        };
        match (before, *b) {
            (Breaker::Open { .. }, Breaker::Open { .. })
            | (Breaker::Closed { .. }, Breaker::Closed { .. }) => None,
            (_, Breaker::Open { until, .. }) => Some(Change::Opened { until }),
            (_, Breaker::Closed { .. }) => Some(Change::Closed),
            (_, Breaker::HalfOpen) => None,
        }
    }

    /// Pauses the connection until `until` (Unix ms): an account-wide quota
    /// is spent, and every attempt before its reset would only be refused.
    /// Then one probe goes, as after any open breaker. A longer pause
    /// already set stays.
    pub fn pause_until(&self, until: u64, now_ms: u64) {
        let Ok(mut b) = self.breaker.lock() else { return };
        let later = match *b {
            Breaker::Open { until: set, .. } => set.max(until),
            _ => until,
        };
        *b = Breaker::Open { until: later, since: now_ms };
    }
}

/// What one dispatched attempt holds: `request` until the destination has
/// answered, `recording` until its outcome is written.
#[derive(Debug)]
pub struct Slots {
    /// Released when the attempt's call returns.
    pub request: OwnedSemaphorePermit,
    /// Released when its outcome is on disk.
    pub recording: OwnedSemaphorePermit,
}

/// Moves `sem` from `from` permits in all to `to`. Permits in use when it
/// shrinks are taken as they are released, then forgotten: the acquire is
/// queued here, before returning (a queued acquire is served before any
/// later `try_acquire`, so no attempt starts in between), and a task waits
/// for the rest of it.
fn resize(sem: &Arc<Semaphore>, from: usize, to: usize) {
    use std::future::Future as _;
    if to >= from {
        sem.add_permits(to - from);
        return;
    }
    let excess = from - to;
    let rest = excess - sem.forget_permits(excess);
    let (Ok(rest), Ok(rt)) = (u32::try_from(rest), tokio::runtime::Handle::try_current()) else {
        return;
    };
    if rest == 0 {
        return;
    }
    let mut taking = Box::pin(sem.clone().acquire_many_owned(rest));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match taking.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(taken) => taken.map(|t| t.forget()).unwrap_or_default(),
        std::task::Poll::Pending => drop(rt.spawn(async move {
            if let Ok(taken) = taking.await {
                taken.forget();
            }
        })),
    }
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

    #[tokio::test]
    async fn a_resized_lane_counts_the_attempts_still_running_and_keeps_its_breaker() {
        let old = lane(2, 1);
        let running = (old.slots().unwrap(), old.slots().unwrap());
        old.record(false, 10);
        let grown = old.resized(lane(3, 1).settings, None);
        assert_eq!(grown.breaker(), old.breaker(), "still open");
        let third = grown.slots().expect("one more than the two running");
        assert!(grown.slots().is_none(), "3 in all, not 3 more");
        // All three running: the two taken out come from those returning,
        // even before the task that waits for them has run.
        let shrunk = grown.resized(lane(1, 1).settings, None);
        drop(running);
        assert!(shrunk.slots().is_none(), "a returned slot goes to the shrink first");
        tokio::task::yield_now().await;
        assert!(shrunk.slots().is_none(), "the one still running is the one allowed");
        drop(third);
        let only = shrunk.slots().expect("one slot");
        assert!(shrunk.slots().is_none());
        drop(only);
        assert_eq!(shrunk.permits.available_permits(), 1);
        assert_eq!(shrunk.free_recording(), shrunk.recording_slots());
    }

    #[test]
    fn breaker_opens_after_threshold_and_probes_after_cooldown() {
        let l = lane(4, 3);
        l.record(false, 0);
        l.record(false, 0);
        assert_eq!(l.capacity(0), 4);
        l.record(false, 10);
        assert_eq!(l.breaker(), Breaker::Open { until: 1_010, since: 10 });
        assert_eq!(l.capacity(500), 0, "paused: no attempts spent");
        assert_eq!(l.reopens_at(), Some(1_010));
        assert_eq!(l.capacity(1_010), 1, "one probe");
        l.record(false, 1_020);
        assert_eq!(l.breaker(), Breaker::Open { until: 2_020, since: 1_020 });
        assert_eq!(l.capacity(2_020), 1);
        l.record(true, 2_030);
        assert_eq!(l.capacity(2_030), 4);
    }

    #[test]
    fn a_spent_account_quota_pauses_the_lane_until_its_reset() {
        let l = lane(4, 20);
        l.pause_until(5_000, 0);
        assert_eq!(l.breaker(), Breaker::Open { until: 5_000, since: 0 });
        assert_eq!(l.capacity(4_999), 0, "nothing goes before the reset");
        // Attempts already out come back refused: the pause stays as set,
        // and a shorter one does not cut it.
        l.record(false, 100);
        l.pause_until(3_000, 100);
        assert_eq!(l.reopens_at(), Some(5_000));
        l.pause_until(8_000, 100);
        assert_eq!(l.reopens_at(), Some(8_000), "a later reset extends it");
        assert_eq!(l.capacity(8_000), 1, "then one probe");
        l.record(true, 8_100);
        assert_eq!(l.capacity(8_100), 4, "the quota is back: all slots");
    }

    #[test]
    fn a_wall_clock_stepped_back_does_not_add_its_length_to_the_pause() {
        let l = lane(4, 1);
        l.record(false, 10_000_000);
        assert_eq!(l.reopens_at(), Some(10_001_000));
        // An hour back, half-way through the cooldown. The time already
        // waited is unknown, so the cooldown runs again from the step,
        // where it would otherwise wait an hour more.
        let back = 10_000_500 - 3_600_000;
        assert_eq!(l.capacity(back), 0);
        assert_eq!(l.reopens_at(), Some(back + 1_000));
        assert_eq!(l.capacity(back + 999), 0);
        assert_eq!(l.capacity(back + 1_000), 1, "then the probe");
        // A quota reset already past when it was set, then a step back
        // longer than the time since: moved back, it stays in the past.
        let l = lane(4, 1);
        l.pause_until(9_000, 10_000);
        assert_eq!(l.capacity(500), 0, "the step is noted first");
        assert_eq!(l.capacity(500), 1, "then the probe: the reset is past");
    }

    #[test]
    fn an_answered_attempt_frees_its_request_slot_and_unwritten_ones_stay_bounded() {
        let l = lane(2, 3);
        let (a, b) = (l.slots().unwrap(), l.slots().unwrap());
        assert_eq!(l.capacity(0), 0, "both request slots taken");
        assert!(l.slots().is_none());
        let mut unwritten = vec![a.recording, b.recording];
        drop((a.request, b.request));
        assert_eq!(l.capacity(0), 2, "answered: the next attempts may start");
        // Answered attempts whose outcomes the writer has not taken yet: at
        // most RECORDING_PER_SLOT per request slot, then dispatch stops.
        while let Some(s) = l.slots() {
            unwritten.push(s.recording);
        }
        assert_eq!(unwritten.len(), 2 * RECORDING_PER_SLOT);
        assert_eq!(l.capacity(0), 0);
        unwritten.pop();
        assert_eq!(l.capacity(0), 1, "one outcome written: one more attempt");
    }

    #[test]
    fn a_half_open_breaker_waits_for_the_request_not_for_the_write() {
        let l = lane(2, 1);
        l.record(false, 0);
        assert_eq!(l.capacity(1_000), 1, "the cooldown is over: one probe");
        let probe = l.slots().unwrap();
        assert_eq!(l.capacity(1_000), 0, "half open while the probe is talking");
        drop(probe.request);
        assert_eq!(l.capacity(1_000), 1, "answered, its outcome not yet written");
        drop(probe.recording);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let l = lane(1, 2);
        l.record(false, 0);
        l.record(true, 0);
        l.record(false, 0);
        assert_eq!(l.breaker(), Breaker::Closed { failures: 1 });
    }
}
