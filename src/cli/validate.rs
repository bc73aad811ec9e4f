//! `meshes validate`: human, GitHub Actions and JSON output.

use super::output::{self, say};
use crate::config::{self, CheckOptions, Diagnostic, Report, Severity};
use clap::ValueEnum;
use serde_json::json;
use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `meshes validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config files, or directories of them (default: meshes.yaml). In a
    /// directory, a *.yaml/*.yml file is a config when its top level has a
    /// `workspace` key, or `version` and a meshes section (rules,
    /// connections, …); other YAML is skipped with a note, and an empty or
    /// unparseable file is an error.
    #[arg(value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
    /// Also fail when a referenced environment variable is unset.
    #[arg(long)]
    check_env: bool,
    /// After a clean check, ask each referenced connection's provider for its
    /// lists, tags, templates, … and fail on a `metadata.id` the account does
    /// not have (implies `--check-env`; needs the credentials and network).
    #[arg(long)]
    check_remote: bool,
    /// With `--check-remote`: the gateway's data directory, whose OAuth token
    /// store keeps the refresh tokens providers rotate. Connections with a
    /// refresh token are skipped without one (refreshing would revoke the
    /// gateway's token).
    #[arg(long, env = "MESHES_DATA_DIR", default_value = "./.meshes")]
    data_dir: PathBuf,
    #[command(flatten)]
    trust: super::Trust,
    /// Print how long each phase took (to stderr).
    #[arg(long)]
    timings: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `file:line:col: error[code]: path: message`.
    Human,
    /// GitHub Actions `::error file=…,line=…,col=…::` annotations.
    Github,
    /// One JSON document with every diagnostic.
    Json,
}

/// Runs the check; `Err` only for usage problems (exit 2): a missing
/// argument, an unlistable directory. A file that cannot be read is a
/// diagnostic like any other (exit 1).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let paths =
        if args.paths.is_empty() { vec![PathBuf::from("meshes.yaml")] } else { args.paths.clone() };
    let mut loaded = config::read_paths(&paths)?;
    read_once(&mut loaded);
    let check_env = args.check_env || args.check_remote;
    let mut report = loaded.check(CheckOptions { check_env });
    remote(args, &loaded, &mut report)?;
    let failed = report.errors() > 0 || (args.deny_warnings && report.warnings() > 0);
    let written = match args.format {
        Format::Human => human(&report, &loaded, failed),
        Format::Github => {
            let lines = report.diagnostics.iter().map(|d| github(d, args.deny_warnings) + "\n");
            output::out(&lines.collect::<String>())
        }
        Format::Json => {
            let json = json_report(&report, &loaded, failed);
            output::out(&(serde_json::to_string_pretty(&json)? + "\n"))
        }
    };
    if args.timings {
        timings(&report, start);
    }
    Ok(output::finish(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }, written))
}

/// Drops the files read twice (`meshes.yaml ./meshes.yaml`, a directory
/// and a file in it): each would report its ids as duplicates of its own.
fn read_once(loaded: &mut config::Loaded) {
    let mut seen = HashSet::new();
    let mut first = |name: &str| {
        seen.insert(std::fs::canonicalize(name).unwrap_or_else(|_| PathBuf::from(name)))
    };
    loaded.sources.retain(|s| first(&s.name));
    loaded.problems.retain(|d| first(&d.file));
    loaded.skipped.retain(|name| first(name));
}

/// `--check-remote`, once the config is clean.
fn remote(args: &Args, loaded: &config::Loaded, report: &mut Report) -> anyhow::Result<()> {
    if !args.check_remote {
        if let Some(pem) = &args.trust.ca_file {
            say!(
                "note: --ca-file {} ignored: only --check-remote calls destinations",
                pem.display()
            );
        }
        return Ok(());
    }
    if report.errors() > 0 {
        say!("note: --check-remote skipped: the config has errors");
        return Ok(());
    }
    args.trust.install()?;
    let remote = check_remote(loaded, report, &super::data_dir(&args.data_dir))?;
    report.diagnostics.extend(remote.diagnostics);
    for note in remote.notes {
        say!("note: {note}");
    }
    Ok(())
}

/// Lists each referenced connection's account (`--check-remote`).
fn check_remote(
    loaded: &config::Loaded,
    report: &Report,
    data_dir: &std::path::Path,
) -> anyhow::Result<super::remote::Remote> {
    let client = crate::adapters::http::client_builder().build()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let lookup = &config::env::process_env;
    let tokens = super::remote::gateway_tokens(data_dir);
    let checking = super::remote::check(&loaded.sources, &report.configs, lookup, &client, &tokens);
    Ok(runtime.block_on(checking))
}

/// Diagnostics on stdout, the verdict on stderr (written whatever became of stdout).
fn human(report: &Report, loaded: &config::Loaded, failed: bool) -> std::io::Result<()> {
    let written =
        output::out(&report.diagnostics.iter().map(|d| format!("{d}\n")).collect::<String>());
    // File names and workspace names are config text: escaped as diagnostics are.
    use crate::config::diagnostic::shown;
    for name in &loaded.skipped {
        let name = shown(name);
        say!(
            "note: skipped {name}: not a meshes config (no top-level `workspace` key, nor `version` with a meshes section)"
        );
    }
    let files = files(loaded).len();
    let (errors, warnings) = (report.errors(), report.warnings());
    if failed {
        say!("invalid: {errors} error(s), {warnings} warning(s) in {files} file(s)");
        return written;
    }
    for (name, c) in &report.configs {
        let name = shown(name);
        say!(
            "ok: {name}: workspace `{}`: {} connection(s), {} rule(s), {} automation(s), {} sequence(s)",
            shown(&c.workspace.name),
            c.connections.len(),
            c.rules.len(),
            c.automations.len(),
            c.sequences.len()
        );
    }
    if warnings > 0 {
        say!("valid with {warnings} warning(s)");
    }
    written
}

/// Every file checked: the configs, and those that could not be read or were empty.
fn files(loaded: &config::Loaded) -> Vec<&str> {
    let mut files: Vec<&str> = loaded.sources.iter().map(|s| s.name.as_str()).collect();
    for problem in &loaded.problems {
        if !files.contains(&problem.file.as_str()) {
            files.push(&problem.file);
        }
    }
    files
}

/// A GitHub Actions workflow command; `%`, CR, LF, `:` and `,` escaped as
/// the runner expects. With `--deny-warnings` a warning fails the run, so
/// it is annotated as the error it then is.
fn github(d: &Diagnostic, deny_warnings: bool) -> String {
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning if deny_warnings => "error",
        Severity::Warning => "warning",
    };
    let prop = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    format!(
        "::{level} file={},line={},col={},title={}::{}: {}",
        prop(&d.file),
        d.line,
        d.column,
        prop(&format!("meshes {kind}[{}]", d.code)),
        escape(&d.path),
        escape(&d.message)
    )
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn json_report(report: &Report, loaded: &config::Loaded, failed: bool) -> serde_json::Value {
    json!({
        "valid": !failed,
        "errors": report.errors(),
        "warnings": report.warnings(),
        "files": files(loaded),
        "skipped": loaded.skipped,
        "diagnostics": report.diagnostics,
    })
}

fn timings(report: &Report, start: Instant) {
    let t = report.timings;
    let rules: usize = report.configs.iter().map(|(_, c)| c.rules.len()).sum();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    say!(
        "timings: parse {:.1} ms, schema {:.1} ms, semantic {:.1} ms, total {:.1} ms ({} rule(s))",
        ms(t.parse),
        ms(t.schema),
        ms(t.semantic),
        ms(start.elapsed()),
        rules
    );
}
