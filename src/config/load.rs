//! Finding and reading config files: `FILE` or `DIR` arguments.
//!
//! A problem with one file (unreadable, not UTF-8, empty, not YAML) is a
//! diagnostic of that file, reported with the other files' diagnostics;
//! only a missing argument or an unlistable directory stops the load.

use super::diagnostic::{Code, Diagnostic, Severity};
use super::yaml::{self, Kind};
use super::{CheckOptions, Report};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A config file's name (as the user wrote it) and text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in diagnostics.
    pub name: String,
    /// The YAML text.
    pub text: String,
}

/// Why the arguments could not be loaded at all (exit code 2, not 1).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path given as an argument does not exist.
    #[error("cannot read {0}: no such file or directory")]
    Missing(String),
    /// A directory could not be listed.
    #[error("cannot list {path}: {error}")]
    Dir {
        /// The directory.
        path: String,
        /// The OS error (shown in the message, so not a `source`).
        error: std::io::Error,
    },
    /// A directory holds no config and no broken file.
    #[error(
        "{0}: no meshes config found (expected *.yaml or *.yml files whose top level has a `workspace` key)"
    )]
    EmptyDir(String),
}

/// Files read from the arguments, files in directories that were skipped
/// because they are not meshes configs, and files that could not be used.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Config files, in argument order (directories sorted by name).
    pub sources: Vec<Source>,
    /// Non-config YAML files found in directories (workflows, manifests).
    pub skipped: Vec<String>,
    /// Errors of files that are not usable YAML: unreadable, not UTF-8,
    /// empty, or (in a directory) not parseable.
    pub problems: Vec<Diagnostic>,
}

impl Loaded {
    /// Checks the sources; the file problems come first.
    pub fn check(&self, opts: CheckOptions) -> Report {
        let mut report = super::check_sources(&self.sources, opts);
        report.diagnostics.splice(0..0, self.problems.iter().cloned());
        report
    }
}

/// Reads each `FILE`, and each `DIR`'s `*.yaml`/`*.yml` files that are
/// meshes configs ([`yaml::classify`]), non-recursively.
/// A file named twice (`-c conf -c conf/meshes.yaml`) is read once: read
/// twice, its workspace would clash with itself.
pub fn read_paths(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    let mut seen = HashSet::new();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LoadError::Missing(name));
            }
            Ok(meta) if meta.is_dir() => read_dir(path, name, &mut loaded, &mut seen)?,
            _ if !first_time(&mut seen, path) => {}
            _ => match read(path, name) {
                Ok(source) if yaml::is_blank(&source.text) => {
                    loaded.problems.push(empty(source.name));
                }
                Ok(source) => loaded.sources.push(source),
                Err(problem) => loaded.problems.push(problem),
            },
        }
    }
    Ok(loaded)
}

/// Whether `path` was not read before (by its canonical path).
fn first_time(seen: &mut HashSet<PathBuf>, path: &Path) -> bool {
    seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
}

fn read_dir(
    dir: &Path,
    name: String,
    loaded: &mut Loaded,
    seen: &mut HashSet<PathBuf>,
) -> Result<(), LoadError> {
    let before = (loaded.sources.len(), loaded.problems.len());
    let mut already = false;
    for (file, found) in yaml_files(dir)? {
        if let Err(problem) = found {
            loaded.problems.push(problem);
            continue;
        }
        if !first_time(seen, &file) {
            already = true;
            continue;
        }
        let source = match read(&file, file.display().to_string()) {
            Ok(source) => source,
            Err(problem) => {
                loaded.problems.push(problem);
                continue;
            }
        };
        match yaml::classify(&source.text) {
            Kind::Config => loaded.sources.push(source),
            Kind::Other => loaded.skipped.push(source.name),
            Kind::Empty => loaded.problems.push(empty(source.name)),
            Kind::Broken((issue, line, column)) => {
                let message = format!(
                    "{}; a file in a config directory that is not YAML may be a broken meshes config, so it is not skipped",
                    issue.message
                );
                loaded.problems.push(error(source.name, (line, column), issue.code, message));
            }
        }
    }
    if !already && (loaded.sources.len(), loaded.problems.len()) == before {
        return Err(LoadError::EmptyDir(name));
    }
    Ok(())
}

fn error(file: String, (line, column): (usize, usize), code: Code, message: String) -> Diagnostic {
    let path = "(root)".into();
    Diagnostic { file, line, column, severity: Severity::Error, code, path, message }
}

fn empty(file: String) -> Diagnostic {
    let message = "the file is empty (nothing but whitespace and comments): a config cut short or half written; write the config, or delete the file to remove its workspace".to_string();
    error(file, (1, 1), Code::EmptyFile, message)
}

/// Reads a file as UTF-8 text, without a byte order mark.
fn read(path: &Path, name: String) -> Result<Source, Diagnostic> {
    let bytes = std::fs::read(path).map_err(|e| {
        error(name.clone(), (1, 1), Code::UnreadableFile, format!("cannot read the file: {e}"))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| not_utf8(&name, e))?;
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    Ok(Source { name, text })
}

/// Points at the first byte that is not UTF-8 (the column counts characters).
fn not_utf8(name: &str, e: std::string::FromUtf8Error) -> Diagnostic {
    let bytes = e.as_bytes();
    let valid = e.utf8_error().valid_up_to();
    let good = String::from_utf8_lossy(&bytes[..valid]);
    // The byte order mark is dropped from the text, so not a column.
    let good = good.strip_prefix('\u{feff}').unwrap_or(&good);
    let line = good.matches('\n').count() + 1;
    let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let message = format!(
        "the file is not UTF-8 (byte 0x{:02x} here); save it as UTF-8",
        bytes.get(valid).copied().unwrap_or_default()
    );
    error(name.to_string(), (line, column), Code::UnreadableFile, message)
}

/// A directory entry to read, or the problem that stops it from being read.
type Entry = (PathBuf, Result<(), Diagnostic>);

/// The `*.yaml`/`*.yml` entries of `dir` that are files, by name.
fn yaml_files(dir: &Path) -> Result<Vec<Entry>, LoadError> {
    let err = |error| LoadError::Dir { path: dir.display().to_string(), error };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if !yaml || hidden {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push((path, Ok(()))),
            // A directory or a device named like a config: not a config file.
            Ok(_) => {}
            // Deleted since the listing: a removal, like a file not listed.
            Err(_) if std::fs::symlink_metadata(&path).is_err_and(is_gone) => {}
            // Still there but not readable (a dangling link, an I/O error):
            // skipping it would remove its workspace.
            Err(e) => {
                let problem = unstatable(&path, &e);
                files.push((path, Err(problem)));
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn is_gone(e: std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// A directory entry that exists but cannot be looked at through.
fn unstatable(path: &Path, e: &std::io::Error) -> Diagnostic {
    let name = path.display().to_string();
    let message = match std::fs::read_link(path) {
        Ok(target) => format!(
            "cannot read the file through its symbolic link to {}: {e}; restore the link's target, or delete the link to remove its workspace",
            target.display()
        ),
        Err(_) => format!("cannot read the file: {e}"),
    };
    error(name, (1, 1), Code::UnreadableFile, message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "version: 1\nworkspace: { id: a, name: A, publishable_key: pk_a }\n";

    fn dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_directory_sorts_configs_skips_other_yaml_and_rejects_empty_files() {
        let compose = b"version: \"3.8\"\nservices: {}\n";
        let d = dir(&[("a.yaml", A.as_bytes()), ("b.yaml", b"  \n"), ("compose.yml", compose)]);
        let loaded = read_paths(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<&str> = loaded.sources.iter().map(|s| s.name.as_str()).collect();
        assert!(names.len() == 1 && names[0].ends_with("a.yaml"), "{names:?}");
        assert!(loaded.skipped[0].ends_with("compose.yml"), "{:?}", loaded.skipped);
        let p = &loaded.problems[0];
        assert!(p.file.ends_with("b.yaml") && p.code == Code::EmptyFile, "{p}");
    }

    #[test]
    fn unparseable_and_non_utf8_files_are_located_problems() {
        let d = dir(&[
            ("a.yaml", A.as_bytes()),
            ("b.yaml", b"x: 1\ny: [\n"),
            ("c.yml", b"ok\nab\xffc"),
        ]);
        let loaded = read_paths(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(loaded.sources.len(), 1);
        let (b, c) = (&loaded.problems[0], &loaded.problems[1]);
        assert_eq!(b.code, Code::YamlSyntax, "{b}");
        assert!(b.message.contains("may be a broken meshes config"), "{b}");
        assert_eq!((c.code, c.line, c.column), (Code::UnreadableFile, 2, 3), "{c}");
        assert!(c.message.contains("0xff"), "{c}");
    }

    #[test]
    fn a_bad_byte_after_a_bom_is_located_without_counting_the_bom() {
        let d = dir(&[("a.yaml", b"\xef\xbb\xbfab\xff\n")]);
        let p = read_paths(&[d.path().join("a.yaml")]).unwrap().problems.remove(0);
        assert_eq!((p.code, p.line, p.column), (Code::UnreadableFile, 1, 3), "{p}");
    }

    /// A config with a second document (even a bare `---` at its end) is
    /// refused, in a directory as given alone; never skipped as other YAML.
    #[test]
    fn a_config_of_several_documents_is_an_error_in_a_directory_and_alone() {
        let d = dir(&[
            ("a.yaml", format!("{A}---\n").as_bytes()),
            ("b.yaml", b"kind: A\n---\nname: b\n"),
        ]);
        let file = d.path().join("a.yaml");
        for paths in [vec![d.path().to_path_buf()], vec![file.clone()]] {
            let loaded = read_paths(&paths).unwrap();
            let report = loaded.check(CheckOptions::default());
            let errors: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
            let expected = format!(
                "{}:3:1: error[yaml-syntax]: (root): the file holds 2 YAML documents; a meshes config file is one document: remove the `---` at line 3 (move any other document to a file of its own)",
                file.display()
            );
            assert_eq!(errors, [expected], "{paths:?}");
            assert!(report.configs.is_empty());
        }
    }

    /// A link whose target moved away is a file still there, not a removal.
    #[cfg(unix)]
    #[test]
    fn a_dangling_link_in_a_directory_is_a_problem_naming_it() {
        let d = dir(&[("a.yaml", A.as_bytes())]);
        let link = d.path().join("b.yaml");
        std::os::unix::fs::symlink("../gone/b.yaml", &link).unwrap();
        let loaded = read_paths(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(loaded.sources.len(), 1);
        let p = &loaded.problems[0];
        assert_eq!(
            (p.file.as_str(), p.code),
            (link.to_str().unwrap(), Code::UnreadableFile),
            "{p}"
        );
        assert!(p.message.contains("symbolic link to ../gone/b.yaml"), "{p}");
    }

    #[test]
    fn a_bom_is_dropped_and_a_missing_argument_is_a_load_error() {
        let d = dir(&[("a.yaml", format!("\u{feff}{A}").as_bytes())]);
        let loaded = read_paths(&[d.path().to_path_buf()]).unwrap();
        assert!(loaded.sources[0].text.starts_with("version"));
        let missing = read_paths(&[d.path().join("nope.yaml")]).unwrap_err();
        assert!(matches!(missing, LoadError::Missing(_)), "{missing}");
        let only_other = dir(&[("ci.yml", b"on: push\njobs: {}\n")]);
        let none = read_paths(&[only_other.path().to_path_buf()]).unwrap_err();
        assert!(matches!(none, LoadError::EmptyDir(_)), "{none}");
    }

    /// `-c conf -c conf/a.yaml` (or the other way round) reads `a.yaml`
    /// once: twice, its workspace clashed with itself.
    #[test]
    fn a_file_named_beside_its_directory_is_read_once() {
        let d = dir(&[("a.yaml", A.as_bytes())]);
        let file = d.path().join("a.yaml");
        let sub = d.path().join(".").join("a.yaml");
        for paths in [
            vec![d.path().to_path_buf(), file.clone()],
            vec![sub, d.path().to_path_buf()],
            vec![file.clone(), file.clone()],
        ] {
            let loaded = read_paths(&paths).unwrap();
            assert_eq!(loaded.sources.len(), 1, "{paths:?}");
            let report = loaded.check(CheckOptions::default());
            let clash = [Code::DuplicateId, Code::DuplicatePublishableKey];
            let clashes = report.diagnostics.iter().filter(|d| clash.contains(&d.code));
            assert_eq!(clashes.count(), 0, "{paths:?}: {:?}", report.diagnostics);
        }
    }
}
