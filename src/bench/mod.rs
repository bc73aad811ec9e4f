//! Reproducible benchmarks behind `meshes bench …` (never part of `cargo test`).
//!
//! Every server under test runs as its own process: the real `meshes serve`
//! (this same binary), a minimal hyper "ceiling" server that does only what
//! any JSON ingest must do (read, parse, answer 201), and a minimal webhook
//! receiver. The load generator ([`load`]) measures all of them the same
//! way, so each figure can be reported as a ratio to the ceiling of the
//! machine it ran on. Server CPU and memory come from `/proc/<pid>`, so the
//! benchmarks need Linux.
//!
//! - [`load`]: the closed-loop HTTP/1.1 load generator; [`hist`]: latencies.
//! - [`servers`]: the ceiling server and the webhook receiver.
//! - [`process`]: child processes, `/proc` readings, readiness polling.
//! - [`configs`]: the generated `meshes.yaml` files.
//! - [`ingest`], [`e2e`], [`backlog`], [`config`]: the scenarios; [`soak`]
//!   (with [`soak_report`] and [`soak_window`]): a long sampled run,
//!   separate from `all`.
//! - [`report`]: the machine description and the Markdown table.

pub mod backlog;
pub mod config;
pub mod configs;
pub mod e2e;
pub mod hist;
pub mod ingest;
pub mod load;
pub mod process;
pub mod report;
pub mod servers;
pub mod soak;
pub mod soak_report;
pub mod soak_window;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A control request (readiness, stats) failed.
    #[error("{what}: {source}")]
    Http {
        /// What was being asked.
        what: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The system under test misbehaved (did not start, did not drain…).
    #[error("{0}")]
    Failed(String),
}

/// Result of a benchmark step.
pub type Result<T> = std::result::Result<T, BenchError>;

/// Wraps an I/O error with what was being done.
pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Wraps a client error with what was being asked.
pub fn http(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Http { what, source }
}

/// Timing shared by every load run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Excluded from every figure (connections open, caches warm).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
}

impl Timing {
    /// The defaults: 2 s warm-up, 10 s measured; `quick`: 1 s and 3 s.
    pub fn new(quick: bool) -> Self {
        if quick {
            Timing { warmup: Duration::from_secs(1), duration: Duration::from_secs(3) }
        } else {
            Timing { warmup: Duration::from_secs(2), duration: Duration::from_secs(10) }
        }
    }
}

/// A scratch directory for configs and data dirs, removed on drop unless kept.
#[derive(Debug)]
pub struct WorkDir {
    /// Its path.
    pub path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// Creates `<parent>/meshes-bench-<uuid>`. The parent should be on the
    /// disk being measured (not a tmpfs: fsync would be free).
    pub fn create(parent: &Path, keep: bool) -> Result<WorkDir> {
        let path = parent.join(format!("meshes-bench-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
        Ok(WorkDir { path, keep })
    }

    /// A fresh, empty sub-directory (one per server start that needs a new store).
    pub fn fresh(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(format!("{name}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&p).map_err(io(format!("create {}", p.display())))?;
        Ok(p)
    }

    /// Removes a [`WorkDir::fresh`] directory once its case is measured
    /// (unless kept), so `bench all` needs the disk of its largest case (the
    /// 1,000,000-delivery backlog), not of all of them together.
    pub fn discard(&self, dir: &Path) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Progress goes to stderr; results go to stdout.
pub fn progress(msg: &str) {
    eprintln!("[bench] {msg}");
}
