//! Finding and reading config files: `FILE` or `DIR` arguments.

use std::path::{Path, PathBuf};

/// A config file's name (as the user wrote it) and text.
#[derive(Debug, Clone)]
pub struct Source {
    /// Shown in diagnostics.
    pub name: String,
    /// The YAML text.
    pub text: String,
}

/// Why files could not be found or read (exit code 2, not 1).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A directory holds no config.
    #[error(
        "{0}: no meshes config found (expected *.yaml or *.yml files with a top-level `version:` key)"
    )]
    EmptyDir(String),
}

/// Files read from the arguments, and files in directories that were
/// skipped because they are not meshes configs.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Config files, in argument order (directories sorted by name).
    pub sources: Vec<Source>,
    /// Non-config YAML files found in directories (workflows, manifests).
    pub skipped: Vec<String>,
}

/// Reads each `FILE`, and each `DIR`'s `*.yaml`/`*.yml` files that look like
/// meshes configs (a top-level `version:` line), non-recursively.
pub fn read_paths(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for path in paths {
        let name = path.display().to_string();
        if !path.is_dir() {
            loaded.sources.push(read(path, name)?);
            continue;
        }
        let before = loaded.sources.len();
        for file in yaml_files(path)? {
            let source = read(&file, file.display().to_string())?;
            if looks_like_config(&source.text) {
                loaded.sources.push(source);
            } else {
                loaded.skipped.push(source.name);
            }
        }
        if loaded.sources.len() == before {
            return Err(LoadError::EmptyDir(name));
        }
    }
    Ok(loaded)
}

fn read(path: &Path, name: String) -> Result<Source, LoadError> {
    let bytes =
        std::fs::read(path).map_err(|source| LoadError::Read { path: name.clone(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| LoadError::Read {
        path: name.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 ({e})")),
    })?;
    Ok(Source { name, text })
}

fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let err = |source| LoadError::Read { path: dir.display().to_string(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let path = entry.map_err(err)?.path();
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if yaml && !hidden && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A meshes config has `version:` at the top level; GitHub workflows and
/// Kubernetes manifests living beside configs do not.
pub fn looks_like_config(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("version:"))
}
