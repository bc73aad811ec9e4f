//! Times stamped on records before their write commits, so a read "as of"
//! a time can leave out the window that may still change.
//!
//! An unsubscribe stamps `unsubscribed_at` when the request arrives, then
//! waits for the writer. A suppression-list page read meanwhile with an
//! `as_of` at or past the stamp would not show the contact, and the same
//! page read after the commit would: the page shifts. While a stamp is
//! pending, reads are therefore "as of" just before it.
//!
//! Both sides read the clock under one lock: a stamp is held from the
//! moment its time is read ([`PendingStamps::hold_now`]), and a read is never
//! "as of" the current millisecond ([`PendingStamps::settled_now`]), which
//! a stamp taken after the read could still land in.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Stamps whose writes have not committed yet (a multiset).
#[derive(Debug, Clone, Default)]
pub struct PendingStamps(Arc<Mutex<BTreeMap<u64, usize>>>);

/// Holds a stamp pending; dropping it (after the commit, or once the write
/// failed) releases it.
#[derive(Debug)]
pub struct StampGuard {
    stamps: PendingStamps,
    at: u64,
}

impl PendingStamps {
    /// Marks `at` pending until the guard drops.
    #[cfg(test)]
    fn hold(&self, at: u64) -> StampGuard {
        self.hold_with(|| at)
    }

    /// Reads the clock and marks that time pending, both under the lock:
    /// a read between the two could otherwise settle at that time with
    /// nothing held. The time is [`StampGuard::at`].
    pub fn hold_now(&self) -> StampGuard {
        self.hold_with(crate::clock::now_ms)
    }

    fn hold_with(&self, now: impl FnOnce() -> u64) -> StampGuard {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = now();
        *m.entry(at).or_default() += 1;
        StampGuard { stamps: self.clone(), at }
    }

    /// [`PendingStamps::settled`] for a read now: at most the millisecond
    /// before the clock's (read under the lock), which is past for good.
    pub fn settled_now(&self, as_of: u64) -> u64 {
        self.settled_with(crate::clock::now_ms, as_of)
    }

    /// The latest time at or before `as_of` and before `now()` that no
    /// pending stamp can still land at or before.
    fn settled_with(&self, now: impl FnOnce() -> u64, as_of: u64) -> u64 {
        let m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        before_oldest(&m, as_of.min(now().saturating_sub(1)))
    }

    /// The latest time at or before `as_of` that no pending stamp can still
    /// land at or before, whatever the clock says.
    #[cfg(test)]
    pub(crate) fn settled(&self, as_of: u64) -> u64 {
        before_oldest(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner), as_of)
    }
}

/// `as_of`, or just before the oldest pending stamp when that is not later.
fn before_oldest(pending: &BTreeMap<u64, usize>, as_of: u64) -> u64 {
    match pending.keys().next() {
        Some(&at) if at <= as_of => at.saturating_sub(1),
        _ => as_of,
    }
}

impl StampGuard {
    /// The time held.
    pub fn at(&self) -> u64 {
        self.at
    }
}

impl Drop for StampGuard {
    fn drop(&mut self) {
        let Ok(mut m) = self.stamps.0.lock() else { return };
        if let Some(n) = m.get_mut(&self.at) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_before_the_oldest_pending_stamp() {
        let s = PendingStamps::default();
        assert_eq!(s.settled(1_000), 1_000, "nothing pending");
        let a = s.hold(500);
        let b = s.hold(500);
        let c = s.hold(700);
        assert_eq!(s.settled(1_000), 499);
        assert_eq!(s.settled(400), 400, "a time before every pending stamp stands");
        drop(a);
        assert_eq!(s.settled(1_000), 499, "the other write stamped 500 is still pending");
        drop(b);
        assert_eq!(s.settled(1_000), 699);
        drop(c);
        assert_eq!(s.settled(1_000), 1_000);
    }

    /// The clock is read while the lock is held, so a concurrent read
    /// cannot settle between reading the time and holding it.
    #[test]
    fn the_clock_is_read_under_the_lock() {
        let s = PendingStamps::default();
        let g = s.hold_with(|| {
            assert!(s.0.try_lock().is_err(), "hold read the clock before locking");
            500
        });
        assert_eq!((g.at(), s.settled(1_000)), (500, 499));
        let as_of = s.settled_with(
            || {
                assert!(s.0.try_lock().is_err(), "settled read the clock before locking");
                700
            },
            u64::MAX,
        );
        assert_eq!(as_of, 499);
    }

    /// A read in the same millisecond as a later stamp stops before it.
    #[test]
    fn a_read_never_settles_at_the_current_millisecond() {
        let s = PendingStamps::default();
        let as_of = s.settled_with(|| 500, u64::MAX);
        let g = s.hold_with(|| 500);
        assert!(as_of < g.at(), "a stamp taken after the read lands after its as_of");
        assert_eq!(s.settled_with(|| 500, 400), 400, "a past as_of stands");
    }
}
