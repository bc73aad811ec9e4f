//! Config hot reload: directory watch (debounced) and SIGHUP.
//!
//! We watch the *directories* holding the config, not the files: editors
//! save by writing a temporary file and renaming it over the original (the
//! watched inode disappears), and Kubernetes ConfigMap volumes publish by
//! swapping a `..data` symlink. Both show up as events in the directory.
//!
//! This module only says "something changed"; the receiver re-reads and
//! validates the config.

use notify::RecommendedWatcher;
use notify::RecursiveMode;
use notify::event::{AccessKind, AccessMode, EventKind};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
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
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    tx: mpsc::Sender<Trigger>,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher").finish_non_exhaustive()
    }
}

/// What a change must touch to matter, as canonical paths: a config file,
/// a `..data` entry (ConfigMaps), or any YAML file in a directory given as
/// config.
#[derive(Debug, Default)]
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
                let dir = std::fs::canonicalize(&abs).map_err(fail)?;
                interest.yaml_dirs.insert(dir.clone());
                interest.dirs.insert(dir);
                continue;
            }
            // The file's directory, not the file: it may be a symlink into `..data`.
            let not_a_file = || fail(std::io::Error::other("not a file path"));
            let (parent, name) = abs.parent().zip(abs.file_name()).ok_or_else(not_a_file)?;
            let dir = std::fs::canonicalize(parent).map_err(fail)?;
            interest.files.insert(dir.join(name));
            interest.dirs.insert(dir);
        }
        Ok(interest)
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
fn on_events(interest: &Interest, raw: &mpsc::UnboundedSender<Batch>, result: DebounceEventResult) {
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
        let interest = Interest::of(config_paths)?;
        let dirs = interest.dirs.clone();
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let handler = move |result: DebounceEventResult| on_events(&interest, &raw_tx, result);
        let mut debouncer = new_debouncer(debounce, None, handler).map_err(WatchError::Init)?;
        for dir in dirs {
            debouncer
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Watch { path: dir.clone(), source })?;
        }
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(coalesce(raw_rx, tx.clone(), debounce));
        Ok((ConfigWatcher { _debouncer: debouncer, tx }, rx))
    }

    /// A sender into the same channel, for other triggers (SIGHUP).
    pub fn sender(&self) -> mpsc::Sender<Trigger> {
        self.tx.clone()
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
mod tests {
    use super::*;
    use std::fs;

    const DEBOUNCE: Duration = Duration::from_millis(100);
    const WAIT: Duration = Duration::from_secs(5);

    async fn next(rx: &mut mpsc::Receiver<Trigger>) -> Trigger {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("no trigger within 5 s")
            .expect("channel closed")
    }

    /// A bounded negative check: no trigger within the debounce window plus
    /// a generous margin. It cannot prove "never", only "not promptly".
    async fn assert_quiet(rx: &mut mpsc::Receiver<Trigger>, why: &str) {
        let got = tokio::time::timeout(DEBOUNCE * 6, rx.recv()).await;
        assert!(got.is_err(), "{why}: {got:?}");
    }

    /// A temporary directory holding `meshes.yaml` (canonical path).
    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = fs::canonicalize(dir.path()).unwrap().join("meshes.yaml");
        fs::write(&file, "version: 1\n").unwrap();
        (dir, file)
    }

    fn watch(path: &Path) -> (ConfigWatcher, mpsc::Receiver<Trigger>) {
        ConfigWatcher::start(&[path.to_path_buf()], DEBOUNCE).unwrap()
    }

    #[tokio::test]
    async fn writing_in_place_triggers_once() {
        let (_dir, file) = setup();
        let (_w, mut rx) = watch(&file);
        fs::write(&file, "version: 1\n# edit\n").unwrap();
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file.clone()]));
        assert_quiet(&mut rx, "one write produced a second trigger").await;
    }

    #[tokio::test]
    async fn rename_over_save_triggers() {
        let (_dir, file) = setup();
        let (_w, mut rx) = watch(&file);
        let tmp = file.with_extension("yaml.tmp");
        fs::write(&tmp, "version: 1\n# saved\n").unwrap();
        fs::rename(&tmp, &file).unwrap();
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
    }

    #[tokio::test]
    async fn configmap_symlink_swap_triggers() {
        let dir = tempfile::tempdir().unwrap();
        let d = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(d.join("..2024_a")).unwrap();
        fs::write(d.join("..2024_a/meshes.yaml"), "version: 1\n").unwrap();
        std::os::unix::fs::symlink("..2024_a", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/meshes.yaml", d.join("meshes.yaml")).unwrap();
        let (_w, mut rx) = watch(&d.join("meshes.yaml"));
        fs::create_dir(d.join("..2024_b")).unwrap();
        fs::write(d.join("..2024_b/meshes.yaml"), "version: 1\n# new\n").unwrap();
        std::os::unix::fs::symlink("..2024_b", d.join("..data_tmp")).unwrap();
        fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("..data")]));
        assert_eq!(fs::read_to_string(d.join("meshes.yaml")).unwrap(), "version: 1\n# new\n");
    }

    #[tokio::test]
    async fn unrelated_files_do_not_trigger() {
        let (dir, file) = setup();
        let (_w, mut rx) = watch(&file);
        fs::write(dir.path().join("notes.txt"), "hello").unwrap();
        fs::write(dir.path().join("other.yaml"), "not ours").unwrap();
        assert_quiet(&mut rx, "an unrelated file triggered a reload").await;
        // The watcher is alive, so the quiet above meant something.
        fs::write(&file, "version: 1\n# edit\n").unwrap();
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
    }

    #[tokio::test]
    async fn reading_the_config_does_not_trigger() {
        let (_dir, file) = setup();
        let (_w, mut rx) = watch(&file);
        // What the reload does: a trigger here would loop forever.
        assert_eq!(fs::read_to_string(&file).unwrap(), "version: 1\n");
        assert_quiet(&mut rx, "reading the config triggered a reload").await;
        fs::write(&file, "version: 1\n# edit\n").unwrap();
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
    }

    #[tokio::test]
    async fn a_burst_of_writes_yields_one_trigger() {
        let (_dir, file) = setup();
        let (_w, mut rx) = watch(&file);
        for i in 0..5 {
            fs::write(&file, format!("version: 1\n# {i}\n")).unwrap();
        }
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
        assert_quiet(&mut rx, "a burst produced more than one trigger").await;
    }

    #[tokio::test]
    async fn a_burst_longer_than_a_tick_yields_one_trigger() {
        // A longer window than the other tests: the gaps below are real
        // sleeps, and on a loaded CI machine a 30 ms sleep once took over
        // 100 ms, which rightly split the burst.
        const WINDOW: Duration = Duration::from_millis(400);
        let (_dir, file) = setup();
        let (_w, mut rx) = ConfigWatcher::start(std::slice::from_ref(&file), WINDOW).unwrap();
        // Gaps under the window but over the debouncer's tick (window / 4),
        // which notify-debouncer-full alone reports as several batches.
        let mut last = std::time::Instant::now();
        let mut stalls = 0;
        for i in 0..5 {
            fs::write(&file, format!("version: 1\n# {i}\n")).unwrap();
            // A gap the machine stretched past the window may split the burst.
            stalls += usize::from(i > 0 && last.elapsed() >= WINDOW);
            last = std::time::Instant::now();
            tokio::time::sleep(WINDOW * 3 / 10).await;
        }
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
        let mut extra = 0;
        while let Ok(Some(_)) = tokio::time::timeout(WINDOW * 3, rx.recv()).await {
            extra += 1;
        }
        assert!(
            extra <= stalls,
            "a spread-out burst produced {} triggers ({stalls} gaps over the window)",
            extra + 1
        );
    }

    #[tokio::test]
    async fn yaml_files_in_a_config_directory_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let d = fs::canonicalize(dir.path()).unwrap();
        let (_w, mut rx) = watch(&d);
        fs::write(d.join("README.md"), "not config").unwrap();
        assert_quiet(&mut rx, "a non-YAML file in a config directory triggered").await;
        fs::write(d.join("extra.yml"), "version: 1\n").unwrap();
        assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("extra.yml")]));
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error() {
        let err =
            ConfigWatcher::start(&[PathBuf::from("/nonexistent-meshes-dir/meshes.yaml")], DEBOUNCE)
                .unwrap_err();
        assert!(matches!(err, WatchError::Path { .. }), "{err}");
    }

    #[tokio::test]
    async fn sighup_is_forwarded() {
        let (tx, mut rx) = mpsc::channel(1);
        // Installs tokio's handler first: the signal no longer terminates us.
        let _task = forward_sighup(tx).unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(next(&mut rx).await, Trigger::Signal);
    }
}
