//! Retention: finished events older than `delivery.retention` are deleted in
//! the background, with their deliveries, attempts and payloads.
//!
//! The window is read from the config in force once a second and before
//! every step of a pass, so a reload that changes it takes effect within a
//! second, not at the next restart or the end of a pass. A pass runs every
//! tenth of the window (1 s to 10 min), and at once when the window shrinks,
//! so the store holds at most about 1.1 windows of finished events.
//!
//! With several workspaces the longest window applies to all: events carry
//! no per-workspace index, so pruning one workspace's events at a shorter
//! window would read every event of the others younger than their window
//! on every pass (a pass every tenth of the short window), not only the old
//! ones, and a per-workspace index would cost every ingest an insert.

use crate::clock;
use crate::config::model::DeliverySettings;
use crate::delivery::engine::Shared;
use crate::gateway::runtime::Runtime;
use crate::store::writer::PRUNE_STEP;
use crate::store::{PruneStep, Running};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the loop looks at the config in force.
const TICK: Duration = Duration::from_secs(1);

/// Prunes until `shutdown`.
pub(super) async fn prune_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    // When the last pass started, and the window it used.
    let mut last: Option<(Instant, Duration)> = None;
    loop {
        let window = retention_of(&shared.runtime.load());
        // A shortened window starts a pass now, not a tenth of it later.
        if last.is_none_or(|(t, w)| t.elapsed() >= pause(window) || window < w) {
            last = Some((Instant::now(), window));
            tokio::select! {
                () = pass(&shared) => {}
                () = shutdown.cancelled() => return,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Looks at every event older than the window once.
async fn pass(shared: &Arc<Shared>) {
    let step = || policy(shared);
    match shared.store.prune_all_with(step).await {
        Ok(p) if p.removed == 0 && p.writer_steps == 0 => {}
        Ok(p) => tracing::debug!(
            pruned = p.removed,
            writer_steps = p.writer_steps,
            skipped_steps = p.skipped_steps,
            "retention"
        ),
        Err(e) => tracing::warn!(error = %e, "retention pruning failed; will try again"),
    }
}

/// What may go now, asked before every step of a pass: the config in force
/// then, the clock then, and the attempts running then.
fn policy(shared: &Arc<Shared>) -> PruneStep {
    // Ids carry the wall clock (`Uuid::now_v7`) and `now_ms` follows its
    // steps to within a second, so these bounds and the ids agree. After a
    // step back, the uuid crate holds ids at their newest time until the
    // clock catches up: those events are kept longer, never pruned early.
    let now = clock::now_ms();
    let before = now.saturating_sub(clock::millis(retention_of(&shared.runtime.load())));
    let in_flight = Arc::clone(shared);
    let running = Running(Arc::new(move |event| in_flight.in_flight.has_event(event)));
    PruneStep { running: Some(running), ..PruneStep::new(before, now, PRUNE_STEP) }
}

/// The longest window of the loaded workspaces: the store is shared, and an
/// event is never deleted before its own workspace's window has passed.
fn retention_of(rt: &Runtime) -> Duration {
    rt.workspaces
        .values()
        .map(|w| w.config.delivery.retention.get())
        .max()
        .unwrap_or_else(|| DeliverySettings::default().retention.get())
}

/// Time between passes: a tenth of the window, from 1 s to 10 min.
fn pause(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_run_every_tenth_of_the_window_within_bounds() {
        assert_eq!(pause(Duration::from_secs(120)), Duration::from_secs(12));
        assert_eq!(pause(Duration::from_secs(3)), Duration::from_secs(1));
        let default = DeliverySettings::default().retention.get();
        assert_eq!(pause(default), Duration::from_secs(600));
    }
}
