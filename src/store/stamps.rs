//! Times stamped on records before their write commits, so a read "as of"
//! a time can leave out the window that may still change.
//!
//! An unsubscribe stamps `unsubscribed_at` when the request arrives, then
//! waits for the writer. A suppression-list page read meanwhile with an
//! `as_of` at or past the stamp would not show the contact, and the same
//! page read after the commit would: the page shifts. While a stamp is
//! pending, reads are therefore "as of" just before it.

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
    pub fn hold(&self, at: u64) -> StampGuard {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(at).or_default() += 1;
        }
        StampGuard { stamps: self.clone(), at }
    }

    /// The latest time at or before `as_of` that no pending stamp can still
    /// land at or before: `as_of`, or just before the oldest pending stamp.
    pub fn settled(&self, as_of: u64) -> u64 {
        let oldest = self.0.lock().ok().and_then(|m| m.keys().next().copied());
        match oldest {
            Some(at) if at <= as_of => at.saturating_sub(1),
            _ => as_of,
        }
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
}
