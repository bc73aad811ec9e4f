//! Store reads of the API handlers, kept off the async workers.
//!
//! A read is synchronous redb work: a filtered `GET /events` examines up to
//! 5,000 events (about 100 ms). Run on a tokio worker, it stalls every
//! request queued behind it on that worker (with two cores, half of the
//! ingest traffic). So handlers read through [`read`], which runs the read
//! on the blocking pool, and `/metrics` shares one due-index scan between
//! scrapes ([`DepthCache`]).

use super::AppState;
use super::error::ApiError;
use crate::delivery::engine::Shared;
use crate::store::{QueueDepth, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinError;
use tokio::time::Instant;

/// How long one queue-depth scan answers `/metrics` scrapes.
pub const DEPTHS_MAX_AGE: Duration = Duration::from_secs(1);

/// The API's read gate and the shared queue-depth scan.
#[derive(Debug)]
pub struct Reads {
    gate: Arc<Semaphore>,
    /// The queue depths `/metrics` reports.
    pub depths: DepthCache,
}

impl Reads {
    /// At most `limit` handler reads run at once.
    pub fn new(limit: usize) -> Self {
        Reads { gate: Arc::new(Semaphore::new(limit.max(1))), depths: DepthCache::default() }
    }

    /// A permit of the gate, held by the test that needs the gate full.
    #[cfg(test)]
    pub(crate) async fn hold(&self) -> OwnedSemaphorePermit {
        #[allow(clippy::expect_used)]
        self.gate.clone().acquire_owned().await.expect("the gate is never closed")
    }
}

impl Default for Reads {
    /// Twice the cores: reads are mostly CPU over cached pages, so more of
    /// them at once only adds threads competing with the async workers for
    /// the same cores; twice leaves room for reads waiting on the disk. A
    /// crowd of listers then waits for a permit as parked futures, instead
    /// of each holding a thread of the blocking pool (which `spawn_blocking`
    /// grows to hundreds) and a share of the CPU.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Reads::new(2 * cores)
    }
}

/// Runs the store read `f` on the blocking pool, at most [`Reads`]' limit
/// at once; a store error answers 503.
pub async fn read<T, F>(st: &AppState, f: F) -> Result<T, ApiError>
where
    F: FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let permit = acquire(&st.reads.gate).await?;
    let shared = st.shared.clone();
    let task = tokio::task::spawn_blocking(move || {
        // Held until the read ends, even if the request is dropped first:
        // the read goes on, so it still counts against the limit.
        let _permit = permit;
        f(&shared)
    });
    task.await.map_err(joined)?.map_err(|e| ApiError::Unavailable(e.to_string()))
}

async fn acquire(gate: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    // Closed only if someone calls `close`, which nothing does.
    gate.clone().acquire_owned().await.map_err(|_| ApiError::Internal("read gate closed".into()))
}

/// A read that panicked is a bug: 500 (the panic hook has logged where;
/// the payload is not repeated here, as it may quote data). One cancelled
/// means the runtime is shutting down: 503, try again.
fn joined(e: JoinError) -> ApiError {
    if e.is_panic() {
        ApiError::Internal("a store read panicked (see the panic record before this one)".into())
    } else {
        ApiError::Unavailable("the server is shutting down".into())
    }
}

/// The last queue-depth scan and when it started.
type Scanned = Option<(Instant, Arc<Vec<QueueDepth>>)>;

/// Single flight with a short cache for the queue-depth scan, which walks
/// the whole due index (linear in the backlog): at most one scan runs at a
/// time, and one that started less than [`DEPTHS_MAX_AGE`] ago answers
/// every scrape, so scrapes in a loop cost at most one scan a second.
#[derive(Debug, Default)]
pub struct DepthCache {
    last: Arc<Mutex<Scanned>>,
}

impl DepthCache {
    /// The depths from a scan younger than [`DEPTHS_MAX_AGE`], or from
    /// `scan` run now on the blocking pool. A failed scan is not kept: the
    /// next scrape tries again.
    pub async fn get<F>(&self, scan: F) -> Result<Arc<Vec<QueueDepth>>, ApiError>
    where
        F: FnOnce() -> Result<Vec<QueueDepth>, StoreError> + Send + 'static,
    {
        let mut last = self.last.clone().lock_owned().await;
        if let Some((at, depths)) = last.as_ref()
            && at.elapsed() < DEPTHS_MAX_AGE
        {
            return Ok(depths.clone());
        }
        let started = Instant::now();
        // The lock moves into the scan: a scrape dropped mid-scan leaves the
        // scan holding it, so a second one cannot start beside it.
        let task = tokio::task::spawn_blocking(move || {
            let depths = Arc::new(scan()?);
            *last = Some((started, depths.clone()));
            Ok(depths)
        });
        task.await.map_err(joined)?.map_err(|e: StoreError| ApiError::Unavailable(e.to_string()))
    }
}

#[cfg(test)]
#[path = "reads_tests.rs"]
mod tests;
