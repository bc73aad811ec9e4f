//! Configuration: parse → validate → build.
//!
//! 1. **Parse** ([`load`], serde-saphyr): YAML text into a JSON value; a
//!    [`spans::SpanIndex`] remembers where every node is.
//! 2. **Validate**: the value against the generated JSON Schema ([`schema`]),
//!    then the semantic checks ([`validate`]) on every part that decoded.
//!    All problems are collected, then placed at `file:line:col`.
//! 3. **Build**: a file with no errors becomes a [`ConfigFile`] that the
//!    gateway turns into runtime objects.

pub mod automation;
#[cfg(test)]
mod check_tests;
pub mod condition;
mod decode;
pub mod delivery;
pub mod diagnostic;
pub mod duration;
pub mod env;
pub mod load;
mod loops;
pub mod mapping;
pub mod model;
pub mod schema;
pub mod spans;
pub mod validate;
pub mod watch;
mod written;
pub mod yaml;

pub use diagnostic::{Code, Diagnostic, Issue, Path, Severity};
pub use load::{LoadError, Loaded, Source, read_paths};
pub use model::{ConfigFile, DeliveryOverride, DeliverySettings, Rule};

use serde_json::Value;
use spans::SpanIndex;
use std::time::{Duration as StdDuration, Instant};

/// Options of a check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Fail when a referenced environment variable is unset.
    pub check_env: bool,
}

/// Time spent in each phase, summed over files (`--timings`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// YAML parsing and span indexing.
    pub parse: StdDuration,
    /// JSON Schema validation.
    pub schema: StdDuration,
    /// Semantic checks.
    pub semantic: StdDuration,
}

/// The outcome of checking a set of files.
#[derive(Debug, Default)]
pub struct Report {
    /// Every diagnostic, by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
    /// The files that had no errors, built.
    pub configs: Vec<(String, ConfigFile)>,
    /// Phase timings.
    pub timings: Timings,
}

impl Report {
    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
    }
    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.diagnostics.len() - self.errors()
    }
}

struct Checked {
    spans: SpanIndex,
    issues: Vec<Issue>,
    parts: validate::Parts,
    value: Option<Value>,
}

/// Checks every source and the constraints between them (unique workspace
/// ids and publishable keys).
pub fn check_sources(sources: &[Source], opts: CheckOptions) -> Report {
    let mut report = Report::default();
    let t = Instant::now();
    let schema = schema::Checker::new();
    report.timings.schema += t.elapsed();
    let checked: Vec<Checked> =
        sources.iter().map(|s| check_one(s, &schema, opts, &mut report.timings)).collect();
    drop(schema);
    let mut placed: Vec<Vec<Issue>> = checked.iter().map(|c| c.issues.clone()).collect();
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    cross_file(&names, &checked, &mut placed);
    validate::retention::across(
        &names,
        &checked.iter().map(|c| c.parts.retention).collect::<Vec<_>>(),
        &mut placed,
    );
    for ((source, c), issues) in sources.iter().zip(checked).zip(placed) {
        let mut mine: Vec<Diagnostic> =
            issues.into_iter().map(|i| place(&source.name, &c.spans, i)).collect();
        mine.sort_by_key(|d| (d.line, d.column, d.severity));
        mine.dedup_by(said_twice);
        let has_errors = mine.iter().any(|d| d.severity == Severity::Error);
        report.diagnostics.extend(mine);
        if let (false, Some(value)) = (has_errors, c.value) {
            build(source, &c.spans, value, &mut report);
        }
    }
    report
}

/// Whether `later` repeats `kept` (same place, field and code, one message
/// the start of the other: the schema and a value check both saw an empty
/// credential); `kept` then keeps the longer message.
fn said_twice(later: &mut Diagnostic, kept: &mut Diagnostic) -> bool {
    let same = (later.line, later.column, later.code, &later.path, later.severity)
        == (kept.line, kept.column, kept.code, &kept.path, kept.severity);
    if !same {
        return false;
    }
    if later.message.starts_with(&kept.message) {
        std::mem::swap(&mut later.message, &mut kept.message);
        return true;
    }
    kept.message.starts_with(&later.message)
}

/// Places `issue` at its `file:line:col` in the document `spans` indexes.
pub fn place(file: &str, spans: &SpanIndex, issue: Issue) -> Diagnostic {
    let (line, column) = issue.pinned.unwrap_or_else(|| {
        let pos = spans.locate(&issue.path, issue.anchor);
        (pos.line, pos.column)
    });
    Diagnostic {
        file: file.to_string(),
        line,
        column,
        severity: issue.severity,
        code: issue.code,
        // Every output (text, GitHub annotations, JSON, the reload log,
        // `/readyz`) shows these, so config text is escaped once, here.
        path: diagnostic::shown(&issue.path.to_string()).into_owned(),
        message: diagnostic::shown(&issue.message).into_owned(),
    }
}

fn build(source: &Source, spans: &SpanIndex, value: Value, report: &mut Report) {
    match decode::decode(value) {
        Ok(config) => report.configs.push((source.name.clone(), config)),
        // The schema accepted what the types reject: a bug, but never a silent pass.
        Err(issue) => report.diagnostics.push(place(&source.name, spans, issue)),
    }
}

fn check_one(
    source: &Source,
    schema: &schema::Checker,
    opts: CheckOptions,
    timings: &mut Timings,
) -> Checked {
    let t = Instant::now();
    let parsed = yaml::parse(&source.text);
    let mut value = match parsed {
        Ok(v) => v,
        Err((issue, line, column)) => {
            timings.parse += t.elapsed();
            let mut spans = SpanIndex::default();
            spans.pin_root(line, column);
            let parts = validate::Parts::default();
            return Checked { spans, issues: vec![issue], parts, value: None };
        }
    };
    // Indexed only once parsed: the parser's limits have bounded the file.
    let spans = SpanIndex::build(&source.text);
    timings.parse += t.elapsed();
    let mut issues = index_issues(&spans);
    written::keep_metadata_text(&mut value, &spans);
    decode::integral_floats(&mut value);
    let t = Instant::now();
    issues.extend(schema.check(&value));
    written::yaml11_booleans(&value, &spans, &mut issues);
    timings.schema += t.elapsed();
    let t = Instant::now();
    let parts = validate::Parts::decode(&value);
    let checks = validate::Checks { check_env: opts.check_env, lookup: &env::process_env };
    issues.extend(validate::check(&parts, &checks));
    timings.semantic += t.elapsed();
    Checked { spans, issues, parts, value: Some(value) }
}

/// Repeated keys, and an index that could not follow the whole document.
fn index_issues(spans: &SpanIndex) -> Vec<Issue> {
    let mut issues: Vec<Issue> = spans
        .duplicates
        .iter()
        .map(|d| {
            let message = format!(
                "`{}` is defined twice in this mapping (first at line {}): the second would silently replace the first; remove or rename one",
                last_key(&d.path),
                d.first.line
            );
            Issue {
                pinned: Some((d.at.line, d.at.column)),
                ..Issue::error(Code::DuplicateKey, d.path.clone(), message).at_key()
            }
        })
        .collect();
    if let Some(stopped) = &spans.stopped {
        let message = format!(
            "meshes could not follow the YAML from here ({}), so positions and the text of numbers as written (a metadata `id: 0123`) would be lost after it; please report this, and quote the value here meanwhile",
            stopped.reason
        );
        issues.push(Issue {
            pinned: Some((stopped.at.line, stopped.at.column)),
            ..Issue::error(Code::YamlSyntax, Path::root(), message)
        });
    }
    issues
}

fn last_key(path: &Path) -> String {
    match path.0.last() {
        Some(diagnostic::Seg::Key(k)) => k.clone(),
        _ => path.to_string(),
    }
}

/// Workspace ids, publishable keys and machine access keys identify a
/// workspace at run time, so each must be unique across all files.
fn cross_file(names: &[&str], checked: &[Checked], issues: &mut [Vec<Issue>]) {
    let mut seen: Vec<(Code, String, usize, Path)> = Vec::new();
    for (i, c) in checked.iter().enumerate() {
        let parts = &c.parts;
        let mut claims: Vec<(Code, Path, String)> = Vec::new();
        if let Some(ws) = &parts.workspace {
            let at = Path::root().key("workspace");
            claims.push((Code::DuplicateId, at.key("id"), ws.id.clone()));
            claims.push((
                Code::DuplicatePublishableKey,
                at.key("publishable_key"),
                effective(&ws.publishable_key),
            ));
        }
        for (j, key) in &parts.machine_keys {
            let at = Path::root().key("machine_keys").index(*j).key("access_key");
            claims.push((Code::DuplicateId, at, effective(&key.access_key)));
        }
        // A blank key is reported as blank, not also as a duplicate.
        for (code, path, value) in claims.into_iter().filter(|(_, _, v)| !v.is_empty()) {
            let clash = seen.iter().find(|(c, v, f, _)| *c == code && *v == value && *f != i);
            // Named by place, not value: the value may have come from the environment.
            if let Some((_, _, first, at)) = clash {
                let what = last_key(&path).replace('_', " ");
                let message = format!(
                    "{what} is already used by the workspace in {} (at `{at}`); expected a value unique across workspaces",
                    names[*first]
                );
                issues[i].push(Issue::error(code, path.clone(), message));
            }
            seen.push((code, value, i, path));
        }
    }
}

/// The key an env string holds now, as serving compares it (surrounding
/// whitespace dropped), or its template when a variable is unset.
fn effective(s: &env::EnvString) -> String {
    model::key_text(&env::effective(&s.0, env::process_env)).to_string()
}
