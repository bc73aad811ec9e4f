//! The writer thread's death, noticed at once.
//!
//! Every write goes through one thread. If it panics (a bug, or redb
//! meeting a damaged page) every later write fails, for ever, while the
//! process lives on: readiness would say "ready" and no supervisor would
//! restart it. So the thread's end by a panic is caught and made known:
//! [`crate::store::Store::writable`] (and `/readyz`) fail naming it, and
//! the gateway stops so that it is restarted (every 201 is on disk already).

use tokio_util::sync::CancellationToken;

/// What callers are told once the writer has died.
pub const WRITER_DIED: &str = "the store writer thread stopped after a panic (a bug in meshes, or \
     a damaged store file): nothing more can be written; meshes is stopping so that it can be \
     restarted";

/// Set once, when the writer thread ends by a panic (not by a shutdown).
#[derive(Debug, Clone, Default)]
pub struct WriterDeath(CancellationToken);

impl WriterDeath {
    /// Whether the writer has died.
    pub fn is_dead(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once the writer has died (never, while it lives).
    pub async fn wait(&self) {
        self.0.cancelled().await;
    }

    pub(super) fn died(&self, file: &std::path::Path) {
        tracing::error!(
            path = %file.display(),
            "the store writer thread panicked (see the line above): writes get 503 from now on; \
             meshes is stopping, and exits 2 so that a supervisor restarts it (every acknowledged \
             event is on disk; if it happens again at the next start, the store file may be damaged)"
        );
        self.0.cancel();
    }
}
