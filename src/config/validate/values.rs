//! The checks the gateway runs when it builds a connection's adapter (URLs,
//! `whsec_` secrets, header names, data centers…), run here through the
//! adapters' own functions so `validate` rejects what `serve` would.
//!
//! A value behind `${VAR}` is only known with `--check-env` and the variable
//! set; otherwise the variable gets a stand-in and any problem with a field
//! that uses it is dropped, since it would be about the stand-in.

use super::super::diagnostic::{Code, Issue, Path};
use super::super::env::{self, EnvField, EnvFields, Part};
use super::Checks;
use crate::adapters::{BuildError, ConnectionConfig};

/// Stands in for an unknown variable: non-empty and a valid header value,
/// so the checks that do not depend on it still run.
const STAND_IN: &str = "meshes-validate-unknown";

/// Reports what building the connection at `at` would reject.
pub(super) fn check(conn: &ConnectionConfig, at: &Path, opts: &Checks<'_>, out: &mut Vec<Issue>) {
    let mut fields = Vec::new();
    conn.env_fields(at, &mut fields);
    let known = |var: &str| {
        if !opts.check_env {
            return None;
        }
        (opts.lookup)(var).filter(|v| !v.is_empty())
    };
    let lookup = |var: &str| Some(known(var).unwrap_or_else(|| STAND_IN.to_string()));
    for e in conn.check_values(&lookup) {
        let path = e.path(at);
        let field = fields.iter().find(|f| f.path == path);
        // A key is written as is; only a value can hide behind a variable.
        let about_value = !matches!(e, BuildError::Key { .. });
        if about_value && field.is_some_and(|f| uses_unknown(f, &known)) {
            continue;
        }
        if let Some(issue) = issue(&e, path, field) {
            out.push(issue);
        }
    }
}

/// True when the field's value depends on a variable that is not known.
fn uses_unknown(field: &EnvField<'_>, known: &dyn Fn(&str) -> Option<String>) -> bool {
    let Ok(parts) = env::parse(field.template) else { return true };
    let mut vars = parts.into_iter().filter_map(|p| match p {
        Part::Var { name, .. } => Some(name),
        Part::Text(_) => None,
    });
    vars.any(|v| known(v).is_none())
}

/// The issue for one build error. Unresolvable templates are reported by
/// the `${…}` checks already. The value is quoted only when it is neither
/// a credential nor a URL (URLs can carry tokens in their query).
fn issue(e: &BuildError, path: Path, field: Option<&EnvField<'_>>) -> Option<Issue> {
    let message = match e {
        BuildError::Env { .. } => return None,
        BuildError::Key { message, .. } => {
            return Some(Issue::error(Code::InvalidValue, path, message.clone()).at_key());
        }
        BuildError::Invalid { message, .. } => message,
    };
    let message = match field {
        Some(f) if !f.secret && !e.field().ends_with("url") && is_literal(f.template) => {
            format!("`{}`: {message}", f.template)
        }
        _ => message.clone(),
    };
    Some(Issue::error(Code::InvalidValue, path, message))
}

fn is_literal(template: &str) -> bool {
    env::parse(template).is_ok_and(|parts| parts.iter().all(|p| matches!(p, Part::Text(_))))
}
