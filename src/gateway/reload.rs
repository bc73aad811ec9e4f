//! Loading the config at start and on every change: read, validate fully,
//! build, then swap atomically. A bad config is rejected, logged with its
//! `file:line:col` errors, counted, shown on `/readyz`, and the old one keeps
//! serving.

use super::runtime::{self, Runtime, content_hash};
use crate::adapters::token_store::TokenStore;
use crate::clock;
use crate::config::watch::Trigger;
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
        // A diagnostic's Display escapes the config text it quotes.
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
    shared.wake.notify_one();
    outcome
}

impl Reloaded {
    /// The `result` label of `meshes_config_reloads_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Reloaded::Unchanged => "unchanged",
            Reloaded::Applied { .. } => "applied",
            Reloaded::Rejected { .. } => "rejected",
        }
    }
}

/// Counts and logs a reload `trigger` set off (a rejected one's errors are
/// logged by [`reload`], once). The check when the watcher starts, for
/// changes made while the gateway started, nearly always finds the files
/// as loaded: nobody reloaded, so that is neither counted nor logged.
pub fn report(trigger: &Trigger, outcome: &Reloaded) {
    let trigger = match trigger {
        Trigger::Startup if *outcome == Reloaded::Unchanged => return,
        Trigger::Startup => "startup",
        Trigger::Signal => "SIGHUP",
        Trigger::FileChanged(_) => "file change",
    };
    let result = outcome.result();
    metrics::counter!("meshes_config_reloads_total", "result" => result).increment(1);
    match outcome {
        Reloaded::Applied { version } => tracing::info!(trigger, result, version, "config reload"),
        Reloaded::Rejected { errors } => {
            tracing::info!(trigger, result, errors = errors.len(), "config reload");
        }
        Reloaded::Unchanged => tracing::info!(trigger, result, "config reload"),
    }
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
        Err(errors) => rejected(errors, status),
    }
}

/// Logs a rejected reload's errors and keeps them for `/readyz`.
fn rejected(errors: Vec<String>, status: &ReloadStatus) -> Reloaded {
    for e in &errors {
        // Escaped: errors quote config text, whose control characters
        // (a newline, an escape sequence) would otherwise forge log lines.
        tracing::error!(error = %config::diagnostic::shown(e), "config reload rejected; the previous config keeps serving");
    }
    status.set(Some((clock::now_ms(), errors.clone())));
    Reloaded::Rejected { errors }
}

fn apply(slot: &ArcSwap<Runtime>, mut rt: Runtime) {
    // Its cancellation grace counts from now, not from when its build
    // started: a large config takes up to a second to build.
    rt.applied = tokio::time::Instant::now();
    rt.note_shortened(&slot.load());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::delivery::observe::tests::{Logs, recorder, sample};

    /// Config text quoted in an error, crafted to look like a log line of its own.
    const FORGED: &str = "meshes.yaml:4:9: unknown connection `x\n2026-01-01T00:00:00Z  INFO meshes: \u{1b}[2Jall good`";

    #[test]
    fn a_rejected_reload_logs_each_error_once_and_escaped() {
        let (_guard, logs) = Logs::capture();
        let status = ReloadStatus::default();
        let outcome = rejected(vec![FORGED.to_string()], &status);
        report(&Trigger::FileChanged(Vec::new()), &outcome);
        let lines = logs.lines();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains("ERROR") && lines[0].contains("config reload rejected"));
        assert!(
            lines[0].ends_with(r#"error=meshes.yaml:4:9: unknown connection `x\n2026-01-01T00:00:00Z  INFO meshes: \u{1b}[2Jall good`"#),
            "{}",
            lines[0]
        );
        assert!(!lines[0].contains('\u{1b}'), "{}", lines[0]);
        // The summary says how many, not the errors again.
        assert!(
            lines[1].ends_with(" trigger=\"file change\" result=\"rejected\" errors=1"),
            "{}",
            lines[1]
        );
        assert_eq!(status.last_error().unwrap().1, vec![FORGED.to_string()], "kept as written");
    }

    #[test]
    fn the_startup_check_is_no_reload_unless_it_finds_a_change() {
        let (_logs, logs) = Logs::capture();
        let (_metrics, handle) = recorder();
        report(&Trigger::Startup, &Reloaded::Unchanged);
        assert_eq!(logs.lines(), Vec::<String>::new());
        assert_eq!(handle.render(), "");
        report(&Trigger::Startup, &Reloaded::Applied { version: 2 });
        report(&Trigger::Signal, &Reloaded::Unchanged);
        let text = handle.render();
        let count = |result: &str| {
            sample(&text, &format!("meshes_config_reloads_total{{result=\"{result}\"}}"))
        };
        assert_eq!((count("applied"), count("unchanged")), (Some(1.0), Some(1.0)), "{text}");
        let lines = logs.lines();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].ends_with(" trigger=\"startup\" result=\"applied\" version=2"),
            "{}",
            lines[0]
        );
        assert!(lines[1].ends_with(" trigger=\"SIGHUP\" result=\"unchanged\""), "{}", lines[1]);
    }
}
