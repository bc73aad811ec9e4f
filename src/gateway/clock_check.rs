//! At startup: is the wall clock behind what the store has already seen?
//!
//! Due times are stored as absolute Unix ms, so when the clock was set back
//! between two runs every pending retry and sequence step runs late by that
//! much. They are left as they are: the store cannot tell a clock that is
//! wrong now from one that was wrong before, and rewriting every due time on
//! a guess would be worse. The operator is told instead.

use crate::clock;
use crate::store::Store;

/// How far behind the newest record the clock may be before it is
/// reported: more than a busy store's writes can be ahead of a clock that
/// is right.
const TOLERANCE_MS: u64 = 60_000;

/// Logs a warning when the wall clock is more than [`TOLERANCE_MS`] behind
/// the newest event, contact or activity entry in `store`
/// ([`Store::newest_stamp`]); returns how far behind it is, in ms.
pub(super) fn warn_if_behind(store: &Store, now: u64) -> Option<u64> {
    let newest = match store.newest_stamp() {
        Ok(newest) => newest?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the newest record to check the wall clock");
            return None;
        }
    };
    let behind = behind(newest, now)?;
    tracing::warn!(
        behind_ms = behind,
        newest_record = %clock::rfc3339(newest),
        "the wall clock is {:.0} s behind the newest record (event, contact or activity) in \
         the store: it was set back since that was stored, or is wrong now; retries and \
         sequence steps already scheduled will run up to {:.0} s late",
        behind as f64 / 1000.0,
        behind as f64 / 1000.0,
    );
    Some(behind)
}

/// How far `now` is behind `newest`, when that is more than the tolerance.
fn behind(newest: u64, now: u64) -> Option<u64> {
    newest.checked_sub(now).filter(|&ms| ms > TOLERANCE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::new_event;
    use uuid::{NoContext, Timestamp, Uuid};

    const NOW: u64 = 1_795_435_200_000;

    #[test]
    fn only_more_than_a_minute_behind_counts() {
        assert_eq!(behind(NOW, NOW), None);
        assert_eq!(behind(NOW - 3_600_000, NOW), None, "ahead of the store");
        assert_eq!(behind(NOW + TOLERANCE_MS, NOW), None);
        assert_eq!(behind(NOW + TOLERANCE_MS + 1, NOW), Some(TOLERANCE_MS + 1));
        assert_eq!(behind(NOW + 7_200_000, NOW), Some(7_200_000));
    }

    #[tokio::test]
    async fn a_store_with_an_event_from_the_future_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(warn_if_behind(&store, NOW), None, "empty store");
        let mut event = new_event("ws", "a", &[("r1", "hook")], NOW, None);
        let ts = Timestamp::from_unix(NoContext, (NOW + 7_200_000) / 1000, 0);
        event.record.id = Uuid::new_v7(ts).to_string();
        store.writer().ingest(vec![event], NOW).await.unwrap();
        assert_eq!(warn_if_behind(&store, NOW), Some(7_200_000));
        assert_eq!(warn_if_behind(&store, NOW + 7_200_000 - TOLERANCE_MS), None);
        store.close().await;
    }

    /// No events at all, only a contact enrolled in a sequence that starts
    /// with a wait, written while the clock was two hours ahead.
    #[tokio::test]
    async fn a_store_with_only_a_contact_from_the_future_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ts = Timestamp::from_unix(NoContext, (NOW + 7_200_000) / 1000, 0);
        let c = crate::store::ContactRecord::new(Uuid::new_v7(ts).to_string(), "ws".into(), NOW);
        store.writer().run(move |t| t.put_contact(&c, None)).await.unwrap();
        assert_eq!(warn_if_behind(&store, NOW), Some(7_200_000));
        store.close().await;
    }
}
