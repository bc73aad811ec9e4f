//! Config hot reload: directory watch (debounced) and SIGHUP.
//!
//! We watch the *directories* holding the config, not the files: editors
//! save by writing a temporary file and renaming it over the original (the
//! watched inode disappears), and Kubernetes ConfigMap volumes publish by
//! swapping a `..data` symlink. Both show up as events in the directory.
//!
//! A path through a symlinked directory (git-sync's `current ->
//! .worktrees/<rev>`, a `releases/current` link) is published by swapping
//! that link: its parent is watched too, for the link's own entry, and the
//! watched directories are resolved again after every change, so edits in
//! the new target are seen as well.
//!
//! This module only says "something changed"; the receiver re-reads and
//! validates the config.

use arc_swap::ArcSwap;
use notify::RecommendedWatcher;
use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a reload was requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Relevant entries in a watched directory changed (deduplicated). Empty
    /// when the OS dropped events (queue overflow) and which files changed is
    /// unknown: reload anyway.
    FileChanged(Vec<PathBuf>),
    /// SIGHUP.
    Signal,
}

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A config path's directory could not be resolved.
    #[error("cannot resolve the directory of {path}: {source}")]
    Path {
        /// The config path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The OS watcher could not be created.
    #[error("cannot start the file watcher: {0}")]
    Init(#[source] notify::Error),
    /// A directory could not be watched.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: notify::Error,
    },
}

/// Keeps the OS watcher alive; dropping it stops watching.
pub struct ConfigWatcher {
    _watching: Arc<Watching>,
    tx: mpsc::Sender<Trigger>,
}

/// The OS watcher and what it watches, shared with the task that resolves
/// the paths again after each change.
struct Watching {
    paths: Vec<PathBuf>,
    debouncer: Mutex<Debouncer<RecommendedWatcher, RecommendedCache>>,
    interest: Arc<ArcSwap<Interest>>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher").finish_non_exhaustive()
    }
}

/// What a change must touch to matter, as canonical paths: a config file,
/// a `..data` entry (ConfigMaps), or any YAML file in a directory given as
/// config.
#[derive(Debug, Default, PartialEq)]
struct Interest {
    files: BTreeSet<PathBuf>,
    yaml_dirs: BTreeSet<PathBuf>,
    /// The directories to watch.
    dirs: BTreeSet<PathBuf>,
}

impl Interest {
    /// Directories are canonicalized because macOS reports events under the
    /// real path (`/private/var/…`); on Linux events carry the watched path,
    /// so either way they compare equal to what we store.
    fn of(config_paths: &[PathBuf]) -> Result<Self, WatchError> {
        let mut interest = Interest::default();
        for given in config_paths {
            let fail = |source| WatchError::Path { path: given.clone(), source };
            let abs = std::path::absolute(given).map_err(fail)?;
            if abs.is_dir() {
                interest.symlinked_ancestors(&abs);
                let dir = std::fs::canonicalize(&abs).map_err(fail)?;
                interest.yaml_dirs.insert(dir.clone());
                interest.dirs.insert(dir);
                continue;
            }
            interest.symlinked_ancestors(&abs);
            // The file's directory, not the file: it may be a symlink into `..data`.
            let not_a_file = || fail(std::io::Error::other("not a file path"));
            let (parent, name) = abs.parent().zip(abs.file_name()).ok_or_else(not_a_file)?;
            let dir = std::fs::canonicalize(parent).map_err(fail)?;
            interest.files.insert(dir.join(name));
            interest.dirs.insert(dir);
        }
        Ok(interest)
    }

    /// Each directory on the way to `abs` that is a symlink: its entry, in
    /// its (real) parent, is a path of interest, as swapping the link is
    /// how a new revision is published.
    fn symlinked_ancestors(&mut self, abs: &Path) {
        for link in abs.ancestors() {
            let is_link = std::fs::symlink_metadata(link).is_ok_and(|m| m.is_symlink());
            let (Some(parent), Some(name)) = (link.parent(), link.file_name()) else { continue };
            if let (true, Ok(dir)) = (is_link, std::fs::canonicalize(parent)) {
                self.files.insert(dir.join(name));
                self.dirs.insert(dir);
            }
        }
    }

    fn matches(&self, path: &Path) -> bool {
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        self.files.contains(path)
            || path.file_name().is_some_and(|n| n == "..data")
            || (yaml && path.parent().is_some_and(|p| self.yaml_dirs.contains(p)))
    }
}

/// Whether an event kind can mean new content. Opens, reads and read-only
/// closes cannot, and must be ignored: notify's inotify backend reports
/// `IN_OPEN`, so the reload reading the file would otherwise trigger the
/// next reload, forever.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The changed paths of one debounced batch; empty when the OS dropped
/// events and we cannot know which files changed.
type Batch = BTreeSet<PathBuf>;

/// The debouncer callback (on the debouncer's thread): passes on each
/// debounced batch that touched something of interest.
fn on_events(
    interest: &ArcSwap<Interest>,
    raw: &mpsc::UnboundedSender<Batch>,
    result: DebounceEventResult,
) {
    let interest = interest.load();
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "config watcher error");
            }
            return;
        }
    };
    // The OS dropped events: we cannot know what changed, so reload.
    let rescan = events.iter().any(|e| e.need_rescan());
    let paths: Batch = events
        .iter()
        .filter(|e| is_change(&e.kind))
        .flat_map(|e| e.paths.iter())
        .filter(|p| interest.matches(p))
        .cloned()
        .collect();
    if rescan || !paths.is_empty() {
        // Unbounded is fine: the debouncer calls us at most once per tick.
        let _ = raw.send(paths);
    }
}

/// Merges batches until `quiet` passes without one, then sends one trigger.
///
/// notify-debouncer-full expires each event on its own (`debounce` after it
/// arrived) and emits whatever expired at every tick, so a burst longer than
/// a tick (ConfigMap swap, editor write + rename + chmod) arrives as several
/// batches. This trailing edge turns them back into one reload. Ends when
/// the watcher is dropped or nobody listens any more.
async fn coalesce(
    mut raw: mpsc::UnboundedReceiver<Batch>,
    tx: mpsc::Sender<Trigger>,
    quiet: Duration,
    watching: std::sync::Weak<Watching>,
) {
    while let Some(mut paths) = raw.recv().await {
        let still_watching = loop {
            tokio::select! {
                more = tokio::time::timeout(quiet, raw.recv()) => match more {
                    Ok(Some(more)) => paths.extend(more),
                    Ok(None) => break false,
                    Err(_) => break true,
                },
                () = tx.closed() => return,
            }
        };
        // A swapped link may point the config's directories elsewhere now.
        if let Some(w) = watching.upgrade() {
            w.refresh();
        }
        // Full means a reload is already pending, which covers this change.
        let _ = tx.try_send(Trigger::FileChanged(paths.into_iter().collect()));
        if !still_watching {
            return;
        }
    }
}

impl ConfigWatcher {
    /// Watches the parent directory of every config path (a path that is a
    /// directory is watched itself), non-recursively, and sends one
    /// [`Trigger::FileChanged`] once relevant changes have been quiet for
    /// about `debounce` (between one and two `debounce` after the last one).
    ///
    /// The channel holds one trigger: a pending trigger already means
    /// "reload", so further ones are dropped until it is received. Must be
    /// called inside a Tokio runtime.
    pub fn start(
        config_paths: &[PathBuf],
        debounce: Duration,
    ) -> Result<(Self, mpsc::Receiver<Trigger>), WatchError> {
        let first = Interest::of(config_paths)?;
        let dirs = first.dirs.clone();
        let interest = Arc::new(ArcSwap::from_pointee(first));
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let seen = interest.clone();
        let handler = move |result: DebounceEventResult| on_events(&seen, &raw_tx, result);
        let mut debouncer = new_debouncer(debounce, None, handler).map_err(WatchError::Init)?;
        for dir in dirs {
            debouncer
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch { path: dir.clone(), source })?;
        }
        let watching = Arc::new(Watching {
            paths: config_paths.to_vec(),
            debouncer: Mutex::new(debouncer),
            interest,
        });
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(coalesce(raw_rx, tx.clone(), debounce, Arc::downgrade(&watching)));
        Ok((ConfigWatcher { _watching: watching, tx }, rx))
    }

    /// A sender into the same channel, for other triggers (SIGHUP).
    pub fn sender(&self) -> mpsc::Sender<Trigger> {
        self.tx.clone()
    }
}

impl Watching {
    /// Resolves the config paths again and moves the OS watches to the
    /// directories they lead to now. A path that cannot be resolved (a
    /// link mid-swap) keeps the old watches: the reload reports the error.
    fn refresh(&self) {
        let Ok(now) = Interest::of(&self.paths) else { return };
        let before = self.interest.load_full();
        if *before == now {
            return;
        }
        let Ok(mut debouncer) = self.debouncer.lock() else { return };
        for dir in now.dirs.difference(&before.dirs) {
            if let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config's new directory");
            }
        }
        for dir in before.dirs.difference(&now.dirs) {
            // The old revision may be gone already: nothing to unwatch then.
            let _ = debouncer.unwatch(dir);
        }
        self.interest.store(Arc::new(now));
    }
}

/// Sends [`Trigger::Signal`] on every SIGHUP (unix; elsewhere the task does
/// nothing). Must be called inside a Tokio runtime. The task ends when every
/// receiver is gone; the handler stays installed, so SIGHUP no longer
/// terminates the process after the first call.
pub fn forward_sighup(tx: mpsc::Sender<Trigger>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Installed here, before returning: a SIGHUP sent after this call
        // is seen even if the task has not been polled yet.
        let mut hup = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = hup.recv() => received,
                    () = tx.closed() => None,
                };
                if received.is_none() {
                    break;
                }
                // Full means a reload is already pending.
                let _ = tx.try_send(Trigger::Signal);
            }
        }))
    }
    #[cfg(not(unix))]
    {
        drop(tx);
        Ok(tokio::spawn(async {}))
    }
}

#[cfg(test)]
#[cfg(unix)]
#[path = "watch_tests.rs"]
mod tests;
