//! Which directories the config watcher watches, and which changes in them
//! matter, resolved from the config paths as they are now.

use super::WatchError;
use notify::event::{EventKind, ModifyKind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A directory's identity: a directory replaced under the same path (`rm
/// -rf` and recreated, or another one renamed over it) is another
/// directory, which must be watched again.
type DirId = Option<(u64, u64)>;

/// What a change must touch to matter, as canonical paths: a config file,
/// a link's entry, a `..data` entry (ConfigMaps), or any YAML file in a
/// directory given as config.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Interest {
    files: BTreeSet<PathBuf>,
    yaml_dirs: BTreeSet<PathBuf>,
    /// The directories to watch.
    pub(super) dirs: BTreeMap<PathBuf, DirId>,
    /// Watched only for one entry (a config directory's parent): when one
    /// cannot be watched, the rest still works, so that is a warning.
    optional: BTreeSet<PathBuf>,
}

impl Interest {
    /// Directories are canonicalized because macOS reports events under the
    /// real path (`/private/var/…`); on Linux events carry the watched path,
    /// so either way they compare equal to what we store.
    pub(super) fn of(config_paths: &[PathBuf]) -> Result<Self, WatchError> {
        let mut interest = Interest::default();
        for given in config_paths {
            let fail = |source| WatchError::Path { path: given.clone(), source };
            // Rebuilt from its components to drop a trailing separator:
            // `current/` would be looked up through the link, not as one.
            let abs: PathBuf = std::path::absolute(given).map_err(fail)?.components().collect();
            interest.symlinked_ancestors(&abs);
            if abs.is_dir() {
                interest.config_dir(&abs).map_err(fail)?;
            } else {
                interest.config_file(&abs).map_err(fail)?;
            }
        }
        Ok(interest)
    }

    /// Whether a watch on `dir` may fail without stopping the watcher.
    pub(super) fn is_optional(&self, dir: &Path) -> bool {
        self.optional.contains(dir)
    }

    fn watch(&mut self, dir: PathBuf) {
        self.optional.remove(&dir);
        let id = identity(&dir);
        self.dirs.insert(dir, id);
    }

    fn watch_optionally(&mut self, dir: PathBuf) {
        if !self.dirs.contains_key(&dir) {
            self.watch(dir.clone());
            self.optional.insert(dir);
        }
    }

    fn config_dir(&mut self, abs: &Path) -> std::io::Result<()> {
        let dir = std::fs::canonicalize(abs)?;
        // Its own entry: a directory deleted and made again, or replaced by
        // a rename, shows only in its parent.
        if let Some(parent) = dir.parent() {
            self.files.insert(dir.clone());
            self.watch_optionally(parent.to_path_buf());
        }
        // The listing is the load's to report; here a failure only means
        // no targets to follow.
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if is_yaml(&path) && entry.file_type().is_ok_and(|t| t.is_symlink()) {
                self.link_target(&path);
            }
        }
        self.yaml_dirs.insert(dir.clone());
        self.watch(dir);
        Ok(())
    }

    /// The file's directory, not the file: it may be a symlink into `..data`.
    fn config_file(&mut self, abs: &Path) -> std::io::Result<()> {
        let not_a_file = || std::io::Error::other("not a file path");
        let (parent, name) = abs.parent().zip(abs.file_name()).ok_or_else(not_a_file)?;
        let dir = std::fs::canonicalize(parent)?;
        self.files.insert(dir.join(name));
        self.watch(dir);
        self.link_target(abs);
        Ok(())
    }

    /// A config file that links into another directory is edited there:
    /// that directory is watched too, for the target's entry. A link that
    /// does not resolve has nothing to follow (the load reports it).
    fn link_target(&mut self, link: &Path) {
        let Ok(real) = std::fs::canonicalize(link) else { return };
        if let Some(dir) = real.parent().map(Path::to_path_buf)
            && !self.files.contains(&real)
        {
            self.files.insert(real);
            if !self.dirs.contains_key(&dir) {
                self.watch(dir);
            }
        }
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
                self.watch(dir);
            }
        }
    }

    /// Whether a change of `kind` to `path` matters.
    pub(super) fn matches(&self, path: &Path, kind: &EventKind) -> bool {
        self.files.contains(path)
            || path.file_name().is_some_and(|n| n == "..data")
            || (is_yaml(path) && path.parent().is_some_and(|p| self.yaml_dirs.contains(p)))
            // A watched directory moved away or deleted: what its path
            // names now must be watched instead.
            || (self.dirs.contains_key(path) && gone(kind))
    }
}

fn gone(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)))
}

fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

#[cfg(unix)]
fn identity(dir: &Path) -> DirId {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(_dir: &Path) -> DirId {
    None
}
