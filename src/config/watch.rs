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
//! the new target are seen as well. The same resolving follows a config
//! file that links into another directory (its target's directory is
//! watched too) and a config directory replaced as a whole (its parent is
//! watched for its entry, and a directory that is another one now, by
//! device and inode, is watched again).
//!
//! This module only says "something changed"; the receiver re-reads and
//! validates the config.

use arc_swap::ArcSwap;
use notify::RecommendedWatcher;
use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

#[path = "watch_interest.rs"]
mod interest;
use interest::Interest;

/// Why a reload was requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Relevant entries in a watched directory changed (deduplicated). Empty
    /// when the OS dropped events (queue overflow) and which files changed is
    /// unknown: reload anyway.
    FileChanged(Vec<PathBuf>),
    /// SIGHUP.
    Signal,
    /// The watcher has just started: the config may have changed between
    /// the first load and the first watch (opening the store can take
    /// seconds after a crash).
    Startup,
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
        .flat_map(|e| e.paths.iter().filter(|p| interest.matches(p, &e.kind)))
        .cloned()
        .collect();
    if rescan || !paths.is_empty() {
        // Unbounded is fine: the debouncer calls us at most once per tick.
        let _ = raw.send(paths);
    }
}

/// How many `quiet` periods a burst of changes may last before it reloads
/// anyway: a file rewritten more often than `quiet` (a generator every
/// 150 ms) would otherwise never reload while it runs.
const BURST_QUIETS: u32 = 20;

/// Merges batches until `quiet` passes without one, then sends one trigger
/// (or once the burst has lasted [`BURST_QUIETS`] × `quiet`).
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
        let burst_ends = tokio::time::Instant::now() + quiet * BURST_QUIETS;
        let still_watching = loop {
            let wait = quiet.min(burst_ends.saturating_duration_since(tokio::time::Instant::now()));
            tokio::select! {
                more = tokio::time::timeout(wait, raw.recv()) => match more {
                    Ok(Some(more)) => paths.extend(more),
                    Ok(None) => break false,
                    Err(_) => break true,
                },
                () = tx.closed() => return,
            }
        };
        // A swapped link may point the config's directories elsewhere now.
        if let Some(w) = watching.upgrade() {
            w.refresh(&paths);
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
        let interest = Arc::new(ArcSwap::from_pointee(Interest::of(config_paths)?));
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let seen = interest.clone();
        let handler = move |result: DebounceEventResult| on_events(&seen, &raw_tx, result);
        let mut debouncer = new_debouncer(debounce, None, handler).map_err(WatchError::Init)?;
        watch_all(&mut debouncer, &interest.load())?;
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

/// The first watches: any failure stops the watcher, but for a config
/// directory's parent, which only serves to see the directory replaced.
fn watch_all(
    debouncer: &mut Debouncer<RecommendedWatcher, RecommendedCache>,
    interest: &Interest,
) -> Result<(), WatchError> {
    for dir in interest.dirs.keys() {
        match debouncer.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {}
            Err(e) if interest.is_optional(dir) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config directory's parent: a replaced directory will not be seen");
            }
            Err(source) => return Err(WatchError::Watch { path: dir.clone(), source }),
        }
    }
    Ok(())
}

impl Watching {
    /// Resolves the config paths again and moves the OS watches to the
    /// directories they lead to now. A path that cannot be resolved (a
    /// link mid-swap) keeps the old watches: the reload reports the error.
    ///
    /// A directory among the `changed` paths (deleted, renamed, or its
    /// entry changed) is watched again even when its device and inode look
    /// the same: a directory deleted and made again often gets the old
    /// inode number back.
    fn refresh(&self, changed: &Batch) {
        let Ok(now) = Interest::of(&self.paths) else { return };
        let before = self.interest.load_full();
        let stale: BTreeSet<&PathBuf> = (before.dirs.iter())
            .filter(|(dir, id)| changed.contains(*dir) || now.dirs.get(*dir) != Some(id))
            .map(|(dir, _)| dir)
            .collect();
        if *before == now && stale.is_empty() {
            return;
        }
        let Ok(mut debouncer) = self.debouncer.lock() else { return };
        // Unwatched first: a path that names another directory now needs a
        // new watch, and the old directory (renamed away) must go quiet.
        for dir in &stale {
            // The old revision may be gone already: nothing to unwatch then.
            let _ = debouncer.unwatch(dir);
        }
        for (dir, id) in &now.dirs {
            if (stale.contains(dir) || before.dirs.get(dir) != Some(id))
                && let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive)
            {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the config's new directory");
            }
        }
        self.interest.store(Arc::new(now));
    }
}

/// SIGHUP, caught from [`listen_sighup`] on: signals that arrive before
/// [`forward_sighup`] runs are remembered (as one), not lost or fatal.
#[derive(Debug)]
pub struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

/// Installs the SIGHUP handler (unix; elsewhere nothing): from here on a
/// SIGHUP no longer terminates the process, for the life of the process.
/// Must be called inside a Tokio runtime.
pub fn listen_sighup() -> std::io::Result<Hangup> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Hangup { signal: signal(SignalKind::hangup())? })
    }
    #[cfg(not(unix))]
    Ok(Hangup {})
}

/// Sends [`Trigger::Signal`] for a SIGHUP received since `hup` was made,
/// then on every SIGHUP. Must be called inside a Tokio runtime. The task
/// ends when every receiver is gone; the handler stays installed.
pub fn forward_sighup(hup: Hangup, tx: mpsc::Sender<Trigger>) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        let mut hup = hup.signal;
        tokio::spawn(async move {
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
        })
    }
    #[cfg(not(unix))]
    {
        drop((hup, tx));
        tokio::spawn(async {})
    }
}

#[cfg(test)]
#[cfg(unix)]
#[path = "watch_tests.rs"]
mod tests;
