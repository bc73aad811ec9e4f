//! Loading the config at start and on every change: read, validate fully,
//! build, then swap atomically. A bad config is rejected, logged with its
//! `file:line:col` errors, counted, shown on `/readyz`, and the old one keeps
//! serving.

use super::runtime::{self, Runtime, content_hash};
use crate::adapters::token_store::TokenStore;
use crate::clock;
use crate::config::{self, CheckOptions, Severity};
use crate::delivery::{self, cleanup::Swept, engine::Shared};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The last rejected reload, for `/readyz`.
#[derive(Debug, Default)]
pub struct ReloadStatus {
    last_error: Mutex<Option<(u64, Vec<String>)>>,
    /// Whether the config files are watched (else changes wait for SIGHUP).
    watched: std::sync::atomic::AtomicBool,
}

impl ReloadStatus {
    /// Records whether the config files are watched.
    pub fn set_watched(&self, watched: bool) {
        self.watched.store(watched, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the config files are watched: `false` with `--no-watch` or
    /// when the watcher could not start (changes then apply on SIGHUP).
    pub fn watched(&self) -> bool {
        self.watched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the last reload was rejected and why (cleared by a good one).
    pub fn last_error(&self) -> Option<(u64, Vec<String>)> {
        self.last_error.lock().ok().and_then(|g| g.clone())
    }
    fn set(&self, value: Option<(u64, Vec<String>)>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = value;
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The files are byte-for-byte what is in force.
    Unchanged,
    /// A new config is in force.
    Applied {
        /// Its version.
        version: u64,
    },
    /// The files are invalid; the old config keeps serving.
    Rejected {
        /// `file:line:col: error[code]: …` lines, or build errors.
        errors: Vec<String>,
    },
}

/// The config in force, as a reload compares against it.
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// Its content hash.
    pub hash: String,
    /// The files its workspaces came from.
    pub files: Vec<String>,
}

impl Serving {
    fn of(rt: &Runtime) -> Self {
        let files = rt.workspaces.values().map(|w| w.file.clone()).collect();
        Self { hash: rt.hash.clone(), files }
    }
}

/// Reads, checks and builds the config at `paths` (`version` for the result);
/// OAuth connections persist rotated refresh tokens in `tokens` when given.
pub fn load(
    paths: &[PathBuf],
    version: u64,
    client: &reqwest::Client,
    serving: Option<&Serving>,
    tokens: Option<&Arc<TokenStore>>,
) -> Result<Option<Runtime>, Vec<String>> {
    let loaded = config::read_paths(paths).map_err(|e| vec![e.to_string()])?;
    if !loaded.problems.is_empty() {
        return Err(loaded.problems.iter().map(ToString::to_string).collect());
    }
    if let Some(serving) = serving {
        no_longer_configs(&loaded, serving)?;
    }
    let hash = content_hash(&loaded.sources);
    if serving.is_some_and(|s| s.hash == hash) {
        return Ok(None);
    }
    // Unset variables are reported by the build step, which knows which
    // ones are fatal (credentials of connections) and which are not.
    let report = config::check_sources(&loaded.sources, CheckOptions { check_env: false });
    for d in report.diagnostics.iter().filter(|d| d.severity == Severity::Warning) {
        tracing::warn!(diagnostic = %d, "config warning");
    }
    if report.errors() > 0 {
        return Err(report
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect());
    }
    runtime::build(
        &report.configs,
        version,
        hash,
        clock::now_ms(),
        &config::env::process_env,
        client,
        tokens,
    )
    .map(Some)
}

/// A file that served a workspace and is still there but no longer reads as
/// a meshes config is a broken edit, not a removal: dropping its workspace
/// would cancel that workspace's pending deliveries. Deleting the file is
/// how a workspace is removed.
fn no_longer_configs(loaded: &config::Loaded, serving: &Serving) -> Result<(), Vec<String>> {
    let errors: Vec<String> = loaded
        .skipped
        .iter()
        .filter(|f| serving.files.contains(f))
        .map(|f| {
            format!(
                "{f}: no longer a meshes config (its top level has no `workspace` key), but it configures a workspace in force; fix the file, or delete it to remove the workspace"
            )
        })
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Re-reads the config and swaps it in if it is valid and different.
pub async fn reload(
    paths: &[PathBuf],
    shared: &Arc<Shared>,
    status: &ReloadStatus,
    client: &reqwest::Client,
    tokens: Option<&Arc<TokenStore>>,
) -> Reloaded {
    let current = shared.runtime.load_full();
    // Parsing and building a large config takes a while (0.4–1 s for 10,000
    // rules): keep it off the async workers that serve requests.
    let (paths, client, serving) = (paths.to_vec(), client.clone(), Serving::of(&current));
    let tokens = tokens.cloned();
    let version = current.version + 1;
    let result = tokio::task::spawn_blocking(move || {
        load(&paths, version, &client, Some(&serving), tokens.as_ref())
    })
    .await
    .unwrap_or_else(|e| Err(vec![format!("config reload task failed: {e}")]));
    let outcome = settle(result, shared, status);
    let result = match &outcome {
        Reloaded::Unchanged => "unchanged",
        Reloaded::Applied { .. } => "applied",
        Reloaded::Rejected { .. } => "rejected",
    };
    metrics::counter!("meshes_config_reloads_total", "result" => result).increment(1);
    shared.wake.notify_one();
    outcome
}

/// Puts a successful load in force and records what happened.
fn settle(
    result: Result<Option<Runtime>, Vec<String>>,
    shared: &Arc<Shared>,
    status: &ReloadStatus,
) -> Reloaded {
    match result {
        Ok(None) => {
            // The files match the config in force again (a reverted bad
            // edit): whatever was wrong with the rejected version is gone.
            status.set(None);
            Reloaded::Unchanged
        }
        Ok(Some(rt)) => {
            let version = rt.version;
            apply(&shared.runtime, rt);
            status.set(None);
            let (shared, stop) = (shared.clone(), shared.cleanups.begin());
            tokio::spawn(async move { cleanup(&shared, &stop).await });
            Reloaded::Applied { version }
        }
        Err(errors) => {
            for e in &errors {
                tracing::error!(error = %e, "config reload rejected; the previous config keeps serving");
            }
            status.set(Some((clock::now_ms(), errors.clone())));
            Reloaded::Rejected { errors }
        }
    }
}

fn apply(slot: &ArcSwap<Runtime>, mut rt: Runtime) {
    // Its cancellation grace counts from now, not from when its build
    // started: a large config takes up to a second to build.
    rt.applied = tokio::time::Instant::now();
    tracing::info!(version = rt.version, hash = %rt.hash, workspaces = rt.workspaces.len(), "config applied");
    slot.store(Arc::new(rt));
}

/// Moves the deliveries whose rule now targets another connection and,
/// once the config in force has been in force for its grace
/// ([`delivery::route::CANCEL_GRACE`]), cancels those it can no longer
/// make, until done or `stop` (a newer reload stops it, grace included, so
/// a config replaced within its grace cancels nothing).
pub async fn cleanup(shared: &Shared, stop: &CancellationToken) {
    match delivery::cleanup::run(shared, stop).await {
        None => tracing::debug!("reload cleanup stopped (a newer reload, or shutdown)"),
        Some(Swept { canceled: 0, moved: 0, .. }) => {}
        Some(Swept { canceled, moved, .. }) => tracing::info!(
            canceled,
            moved,
            "settled deliveries of rules or connections the config changed or removed"
        ),
    }
}
