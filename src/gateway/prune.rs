//! Retention: finished events older than `delivery.retention` are deleted in
//! the background, with their deliveries, attempts and payloads.
//!
//! The window is read from the config in force once a second and before
//! every step of a pass, so a reload that changes it takes effect within a
//! second, not at the next restart or the end of a pass. A pass runs every
//! tenth of the shortest window (1 s to 10 min), and at once when the window
//! shrinks, so the store holds at most about 1.1 windows of finished events.
//! Each workspace's events go after its own window.

use crate::clock;
use crate::config::model::DeliverySettings;
use crate::delivery::engine::Shared;
use crate::gateway::runtime::Runtime;
use crate::store::writer::PRUNE_STEP;
use crate::store::{Cutoffs, PruneStep, Running};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the loop looks at the config in force.
const TICK: Duration = Duration::from_secs(1);

/// Prunes until `shutdown`.
pub(super) async fn prune_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    // When the last pass started, and the shortest window it used.
    let mut last: Option<(Instant, Duration)> = None;
    loop {
        let shortest = windows(&shared.runtime.load()).0;
        // A shortened window starts a pass now, not a tenth of it later.
        if last.is_none_or(|(t, w)| t.elapsed() >= pause(shortest) || shortest < w) {
            last = Some((Instant::now(), shortest));
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

/// Looks at every event older than the shortest window once.
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
    let bound = |window: Duration| now.saturating_sub(ms(window));
    let rt = shared.runtime.load();
    let (shortest, longest) = windows(&rt);
    let cutoffs = (shortest != longest).then(|| {
        let by_workspace = rt
            .workspaces
            .values()
            .map(|w| (w.id.clone(), bound(w.config.delivery.retention.get())))
            .collect();
        Arc::new(Cutoffs { by_workspace, otherwise: bound(longest) })
    });
    let in_flight = Arc::clone(shared);
    let running = Running(Arc::new(move |event| in_flight.in_flight.has_event(event)));
    PruneStep {
        cutoffs,
        running: Some(running),
        ..PruneStep::new(bound(shortest), now, PRUNE_STEP)
    }
}

/// The shortest and longest windows of the loaded workspaces. The store is
/// shared: each event goes after its own workspace's window, and one of a
/// workspace no longer loaded after the longest.
fn windows(rt: &Runtime) -> (Duration, Duration) {
    let all = || rt.workspaces.values().map(|w| w.config.delivery.retention.get());
    let default = DeliverySettings::default().retention.get();
    (all().min().unwrap_or(default), all().max().unwrap_or(default))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
