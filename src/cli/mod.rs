//! The `meshes` command line. Exit codes: 0 success, 1 invalid config,
//! 2 usage or I/O error (a missing path, a bad flag or variable, the store,
//! the data directory, a `--ca-file`, output that cannot be written).
//! `serve` also exits 1 when a second signal stopped it without draining.
//! A closed output pipe (`| head`) keeps the command's own code.

mod actions;
mod bench;
mod bench_tools;
mod logging;
mod openapi;
mod output;
mod remote;
mod serve;
mod token;
mod validate;

use clap::{Parser, Subcommand};
use output::say;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--ca-file`, for the commands that call destinations over HTTPS.
#[derive(Debug, clap::Args)]
pub struct Trust {
    /// PEM file of extra certificate authorities for outbound HTTPS (a
    /// private CA of internal destinations), trusted besides the built-in
    /// Mozilla roots.
    #[arg(long, env = "MESHES_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

impl Trust {
    /// Trusts the file's authorities for every client built after this, and
    /// logs the environment's proxies (reqwest follows them silently).
    pub fn install(&self) -> Result<(), crate::adapters::trust::TrustError> {
        if let Some(proxies) = crate::adapters::proxy::in_force() {
            tracing::info!(%proxies, "outbound requests go through a proxy set by the environment");
        }
        let Some(path) = &self.ca_file else { return Ok(()) };
        let count = crate::adapters::trust::trust_ca_file(path)?;
        tracing::info!(path = %path.display(), certificates = count, "trusting extra certificate authorities");
        Ok(())
    }
}

/// meshes: a self-hosted, GitOps event gateway.
#[derive(Debug, Parser)]
#[command(name = "meshes", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check config files: YAML, schema, references, catalog, CEL and `${VAR}`s.
    Validate(validate::Args),
    /// Print the JSON Schema (draft 2020-12) of `meshes.yaml`.
    Schema,
    /// Print the OpenAPI 3.1 document of the HTTP API.
    Openapi,
    /// Run the gateway: accept events over HTTP and deliver them.
    Serve(serve::Args),
    /// Reproducible benchmarks (see BENCHMARKS.md); never part of `cargo test`.
    Bench(bench::Args),
    /// List a connection's live action data (lists, tags, templates, …) for rules.
    Actions(actions::Args),
    /// Print a machine JWT (60 s) for curl, signed like the Meshes SDKs do.
    Token(token::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help, version and usage errors: clap's own `exit` ignores a
        // failed write, so `--help > /dev/full` said nothing and exited 0.
        Err(e) => {
            let code = ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
            let written = e.print().and_then(|()| std::io::Write::flush(&mut std::io::stdout()));
            return output::finish(code, written);
        }
    };
    let result = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Actions(args) => actions::run(&args),
        Command::Token(args) => token::run(&args),
        Command::Openapi => Ok(openapi::run()),
        Command::Schema => Ok(output::print(&crate::config::schema::schema_text())),
    };
    result.unwrap_or_else(|e| {
        say!("error: {e:#}");
        ExitCode::from(2)
    })
}

/// `--data-dir` (`serve`, `actions`, `validate --check-remote`) without the spaces around it (`MESHES_DATA_DIR=" "` made
/// a directory named by a space), or the default when nothing is left.
pub fn data_dir(flag: &std::path::Path) -> PathBuf {
    match flag.to_str().map(str::trim) {
        Some("") => PathBuf::from("./.meshes"),
        Some(trimmed) => PathBuf::from(trimmed),
        None => flag.to_path_buf(),
    }
}

/// The config paths of `serve` and `actions`: the `-c` flags as written (a
/// comma is part of a file name there), else `MESHES_CONFIG` split on
/// commas (empty entries, as a trailing comma leaves, are dropped), else
/// `meshes.yaml`; a path named twice is read once. A missing one is a
/// usage error (exit 2), as in `validate`.
pub fn config_paths(flags: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let paths = choose_config(flags, std::env::var_os("MESHES_CONFIG").as_deref());
    for path in &paths {
        if std::fs::metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            let missing = crate::config::load::LoadError::Missing(path.display().to_string());
            return Err(missing.into());
        }
    }
    Ok(paths)
}

fn choose_config(flags: &[PathBuf], env: Option<&OsStr>) -> Vec<PathBuf> {
    let listed: Vec<PathBuf> = if flags.is_empty() {
        match env.map(|v| (v, v.to_str())) {
            Some((_, Some(text))) => text
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
            Some((raw, None)) => vec![PathBuf::from(raw)],
            None => vec![],
        }
    } else {
        flags.to_vec()
    };
    if listed.is_empty() {
        return vec![PathBuf::from("meshes.yaml")];
    }
    let mut seen = HashSet::new();
    listed
        .into_iter()
        .filter(|p| seen.insert(std::fs::canonicalize(p).unwrap_or(p.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_data_dir_means_the_default_and_spaces_are_trimmed() {
        assert_eq!(data_dir(std::path::Path::new(" ")), PathBuf::from("./.meshes"));
        assert_eq!(data_dir(std::path::Path::new(" /var/lib/m ")), PathBuf::from("/var/lib/m"));
        assert_eq!(data_dir(std::path::Path::new("data")), PathBuf::from("data"));
    }

    fn chosen(flags: &[&str], env: Option<&str>) -> Vec<PathBuf> {
        let flags: Vec<PathBuf> = flags.iter().map(PathBuf::from).collect();
        choose_config(&flags, env.map(OsStr::new))
    }

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_comma_in_a_flag_is_part_of_the_name() {
        assert_eq!(chosen(&["my,conf.yaml"], None), paths(&["my,conf.yaml"]));
    }

    #[test]
    fn the_variable_is_split_and_its_empty_entries_dropped() {
        assert_eq!(chosen(&[], Some("a.yaml, b.yaml,")), paths(&["a.yaml", "b.yaml"]));
        assert_eq!(chosen(&[], Some("")), paths(&["meshes.yaml"]));
        assert_eq!(chosen(&[], Some(" , ")), paths(&["meshes.yaml"]));
        assert_eq!(chosen(&[], None), paths(&["meshes.yaml"]));
    }

    #[test]
    fn flags_win_over_the_variable() {
        assert_eq!(chosen(&["x.yaml"], Some("a.yaml,b.yaml")), paths(&["x.yaml"]));
    }

    #[test]
    fn a_path_named_twice_is_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        std::fs::write(&file, "").unwrap();
        let again = dir.path().join(".").join("m.yaml");
        let kept = choose_config(&[file.clone(), again], None);
        assert_eq!(kept, vec![file]);
    }
}
