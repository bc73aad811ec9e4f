//! Retention: finished events older than `delivery.retention` are deleted in
//! the background, with their deliveries, attempts and payloads.
//!
//! The window is read from the config in force once a second, so a reload
//! that shortens it takes effect within a second, not at the next restart.
//! A pass runs every tenth of the window (1 s to 10 min), so the store holds
//! at most about 1.1 windows of finished events.

use crate::clock;
use crate::config::model::DeliverySettings;
use crate::delivery::engine::Shared;
use crate::gateway::runtime::Runtime;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the loop looks at the config in force.
const TICK: Duration = Duration::from_secs(1);

/// Prunes until `shutdown`.
pub(super) async fn prune_loop(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut last: Option<Instant> = None;
    loop {
        let retention = retention_of(&shared.runtime.load());
        if last.is_none_or(|t| t.elapsed() >= pause(retention)) {
            last = Some(Instant::now());
            tokio::select! {
                () = pass(&shared, retention) => {}
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
async fn pass(shared: &Shared, retention: Duration) {
    // Ids carry the wall clock (`Uuid::now_v7`) and `now_ms` follows its
    // steps to within a second, so this bound and the ids agree. After a
    // step back, the uuid crate holds ids at their newest time until the
    // clock catches up: those events are kept longer, never pruned early.
    let now = clock::now_ms();
    let before = now.saturating_sub(u64::try_from(retention.as_millis()).unwrap_or(u64::MAX));
    match shared.store.prune_all(before, now).await {
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
