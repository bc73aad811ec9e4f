//! Attempts that failed for this process's own reason: it was out of file
//! descriptors (EMFILE, ENFILE) when it opened the connection. Nothing was
//! sent and the destination did nothing wrong, so such an attempt spends
//! none of the delivery's retry budget and tells the connection's breaker
//! nothing: the delivery waits a moment and is tried again (as long as it
//! takes: running out of descriptors is the operator's to fix, and a
//! delivery acknowledged with a `201` must not fail for it).
//!
//! Adapters turn transport errors into messages; the `io::Error` underneath
//! is only in their hands, so they report it through [`note`], and the
//! attempt, run inside [`watch`], hears of it.

use crate::adapters::adapter::AttemptResult;
use crate::config::model::Outcome;
use crate::store::{AttemptDone, DueKey, Next};
use std::cell::Cell;
use std::error::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a delivery waits after such an attempt (±50 %): descriptors come
/// back as connections close, within seconds. It doubles with each such
/// attempt in a row, server-wide, up to [`MAX_WAIT`]: a shortage that lasts
/// (a hard limit too low) must not turn the backlog into a busy loop.
pub const WAIT: Duration = Duration::from_secs(2);
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Attempts in a row, server-wide, that found no descriptor.
static STREAK: AtomicU32 = AtomicU32::new(0);

tokio::task_local! {
    static OUT_OF_DESCRIPTORS: Cell<bool>;
}

/// Runs an attempt; also says whether it ran out of descriptors.
pub async fn watch<F: Future>(attempt: F) -> (F::Output, bool) {
    OUT_OF_DESCRIPTORS
        .scope(Cell::new(false), async {
            let out = attempt.await;
            (out, OUT_OF_DESCRIPTORS.with(Cell::get))
        })
        .await
}

/// Tells the attempt running on this task (if any) that a request of it
/// failed with `e`: called where adapters classify transport errors.
pub fn note(e: &(dyn Error + 'static)) {
    if out_of_descriptors(e) {
        let _ = OUT_OF_DESCRIPTORS.try_with(|seen| seen.set(true));
    }
}

/// Whether `e`, or an error under it, is EMFILE or ENFILE.
pub fn out_of_descriptors(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.raw_os_error().is_some_and(is_descriptor_limit)
        {
            return true;
        }
        next = e.source();
    }
    false
}

#[cfg(unix)]
fn is_descriptor_limit(code: i32) -> bool {
    use rustix::io::Errno;
    code == Errno::MFILE.raw_os_error() || code == Errno::NFILE.raw_os_error()
}

#[cfg(not(unix))]
fn is_descriptor_limit(_: i32) -> bool {
    false
}

/// Whether the attempt failed for lack of descriptors (`seen`) and for that
/// alone: a connection not made. An answer, or a failure after sending,
/// is the destination's and is judged as usual.
pub fn is_local(seen: bool, result: &AttemptResult) -> bool {
    seen && matches!(result, AttemptResult::Retry { code: Outcome::NetworkError, .. })
}

/// The end of such an attempt: tried again shortly, and nothing written
/// but the new due time. Its number goes to the next try, so a row of its
/// own would be replaced by that try's; the postponement is counted and
/// logged instead ([`short_of_descriptors`]).
pub fn postpone(key: &DueKey, now_ms: u64) -> AttemptDone {
    AttemptDone {
        key: key.clone(),
        attempt: None,
        next: postponed(now_ms, short_of_descriptors(), rand::random()),
        at: now_ms,
    }
}

/// The next step after such an attempt, the `streak`-th in a row (from 0);
/// `unit` in [0, 1) spreads the wait.
pub fn postponed(now_ms: u64, streak: u32, unit: f64) -> Next {
    let wait = WAIT.saturating_mul(1 << streak.min(16)).min(MAX_WAIT);
    Next::Postponed { at: crate::clock::after(now_ms, super::retry::jittered(wait, 0.5, unit)) }
}

/// Counts an attempt that found no descriptor; returns the streak before it.
/// The first of a streak is logged (a log line per attempt would flood).
pub fn short_of_descriptors() -> u32 {
    metrics::counter!("meshes_deliveries_postponed_total").increment(1);
    let streak = STREAK.fetch_add(1, Ordering::Relaxed);
    if streak == 0 {
        tracing::warn!(
            "out of file descriptors: deliveries wait and are tried again (raise the open-file limit)"
        );
    }
    streak
}

/// An attempt that got a descriptor ends the streak.
pub fn had_descriptors() {
    STREAK.store(0, Ordering::Relaxed);
}

#[cfg(all(test, unix))]
#[path = "local_tests.rs"]
mod tests;
