//! The checks the gateway runs when it builds a connection's adapter (URLs,
//! `whsec_` secrets, header names, data centers…), run here through the
//! adapters' own functions so `validate` rejects what `serve` would.
//!
//! A value behind `${VAR}` is only known with `--check-env`: the variable
//! set, or unset with a `:-default` (the default is then the value `serve`
//! uses). Otherwise the variable gets a stand-in and any problem with a
//! field that uses it is dropped, since it would be about the stand-in.

use super::super::diagnostic::{Code, Issue, Path};
use super::super::env::{self, EnvField, EnvFields, Part};
use super::Checks;
use crate::adapters::{BuildError, ConnectionConfig};

/// Stands in for an unknown variable: non-empty and a valid header value,
/// so the checks that do not depend on it still run.
const STAND_IN: &str = "meshes-validate-unknown";

/// The fields whose value an error may quote: public settings. Any other
/// value may be a credential though not typed as one (a header value, an
/// `auth` field, a URL with a user or a token in its query) and messages
/// reach CI logs, the reload log and `/readyz`: those are named, not quoted.
const QUOTABLE: &[&str] = &["data_center"];

/// Reports what building the connection at `at` would reject.
pub(super) fn check(conn: &ConnectionConfig, at: &Path, opts: &Checks<'_>, out: &mut Vec<Issue>) {
    let mut fields = Vec::new();
    conn.env_fields(at, &mut fields);
    // With `--check-env` an unset variable resolves as `serve` resolves
    // it: to its default, or to an unset-variable error (reported by the
    // `${…}` checks, so dropped here).
    let known = |var: &str| (opts.lookup)(var).filter(|_| opts.check_env);
    let lookup = |var: &str| match opts.check_env {
        true => (opts.lookup)(var),
        false => Some(STAND_IN.to_string()),
    };
    for e in conn.check_values(&lookup) {
        let path = e.path(at);
        let field = fields.iter().find(|f| f.path == path);
        // A key is written as is; only a value can hide behind a variable.
        let about_value = !matches!(e, BuildError::Key { .. });
        if about_value && !opts.check_env && field.is_some_and(|f| !is_literal(f.template)) {
            continue;
        }
        if let Some(issue) = issue(&e, path, field, &known) {
            out.push(issue);
        }
    }
}

/// The issue for one build error. Unresolvable templates are reported by
/// the `${…}` checks already. The value is quoted only for a
/// [`QUOTABLE`] field written in the file; for any other, a control
/// character in it is described, never shown.
fn issue(
    e: &BuildError,
    path: Path,
    field: Option<&EnvField<'_>>,
    known: &dyn Fn(&str) -> Option<String>,
) -> Option<Issue> {
    let message = match e {
        BuildError::Env { .. } => return None,
        BuildError::Key { message, .. } => {
            return Some(Issue::error(Code::InvalidValue, path, message.clone()).at_key());
        }
        BuildError::Invalid { message, .. } => message,
    };
    let quotable = QUOTABLE.contains(&e.field());
    let message = match field {
        Some(f) if !f.secret && quotable && is_literal(f.template) => {
            format!("`{}`: {message}", f.template)
        }
        Some(f) => {
            match env::resolve(f.template, known).ok().and_then(|v| controls(f.template, &v, known))
            {
                Some(what) => format!("{message}: {what}"),
                None => message.clone(),
            }
        }
        None => message.clone(),
    };
    Some(Issue::error(Code::InvalidValue, path, message))
}

/// What control characters a value holds, said without the value.
fn controls(template: &str, value: &str, known: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let body = value.trim_end_matches(['\n', '\r']);
    let trailing = body.len() < value.len();
    let inner = body.chars().position(char::is_control);
    match (trailing, inner) {
        (true, None) => Some(match ends_with_variable(template, known) {
            Some(name) => format!(
                "the value of `{name}` ends with a newline: remove it where the variable is set \
                 (a file read with `$(cat …)` loses it; a secrets manager or `.env` file may keep it)"
            ),
            None => {
                "it ends with a newline (a YAML `|` block keeps it: use `|-`, or a quoted string)"
                    .to_string()
            }
        }),
        (_, Some(at)) => Some(format!(
            "it holds a control character (a line break, tab or escape) at character {}",
            at + 1
        )),
        (false, None) => None,
    }
}

/// The variable whose value (or `:-default`, which is written in the
/// file) ends the template's value with a newline: the newline came from
/// the environment, so the YAML hint would be wrong.
fn ends_with_variable<'t>(
    template: &'t str,
    known: &dyn Fn(&str) -> Option<String>,
) -> Option<&'t str> {
    let parts = env::parse(template).ok()?;
    let Some(Part::Var { name, .. }) = parts.last() else { return None };
    // Unset or empty, the default stands in: that text is the file's.
    let value = known(name).filter(|v| !v.is_empty());
    value.is_some_and(|v| v.ends_with(['\n', '\r'])).then_some(*name)
}

fn is_literal(template: &str) -> bool {
    env::parse(template).is_ok_and(|parts| parts.iter().all(|p| matches!(p, Part::Text(_))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Checks, Parts};

    const WS: &str = "version: 1\nworkspace: { id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: w, publishable_key: pk }\nconnections:\n";
    const RULES: &str = "rules:\n  - { id: r, event: e, connection: hook, metadata: { action: send_webhook } }\n  - { id: m, event: e, connection: mc, metadata: { action: add_to_list, id: a } }\n";

    /// `path: message` of every issue, with or without `--check-env`.
    fn found(connections: &str, check_env: bool, vars: &[(&str, &str)]) -> Vec<String> {
        let doc = crate::config::yaml::parse(&format!("{WS}{connections}{RULES}")).unwrap();
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
        let issues =
            super::super::check(&Parts::decode(&doc), &Checks { check_env, lookup: &lookup });
        issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect()
    }

    const HOOK: &str = "  hook:\n    type: webhook\n    url: https://example.com/h\n    signing_secret: ${S}\n    headers:\n      X-Api-Key: |\n        sk_live_abc123\n    auth: { type: basic, username: \"sk:user\", password: \"${P}\" }\n  mc: { type: mailchimp, api_key: \"${MC}\", data_center: us6 }\n";

    /// A header value may be a credential: an error says what is wrong
    /// with it, never what it is (messages reach CI logs and `/readyz`).
    #[test]
    fn header_values_and_auth_fields_are_never_quoted() {
        let vars = [("S", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), ("P", "pw"), ("MC", "k-us6")];
        for check_env in [false, true] {
            let found = found(HOOK, check_env, &vars);
            assert_eq!(
                found,
                [
                    "connections.hook.headers.X-Api-Key: the value is not a valid HTTP header value (no control characters): it ends with a newline (a YAML `|` block keeps it: use `|-`, or a quoted string)",
                    "connections.hook.auth.username: a Basic auth user name cannot contain `:`",
                ],
                "check_env: {check_env}"
            );
        }
        let inner = HOOK.replace("|\n        sk_live_abc123", "\"sk_\\elive\"");
        let found = found(&inner, true, &vars);
        assert!(
            found[0].ends_with("a control character (a line break, tab or escape) at character 4"),
            "{found:?}"
        );
        assert!(found.iter().all(|l| !l.contains("sk_") && !l.contains("live")), "{found:?}");
    }

    /// `serve` uses the default of an unset variable: `--check-env` checks it.
    #[test]
    fn check_env_checks_the_default_of_an_unset_variable() {
        let conns = "  hook: { type: webhook, url: \"${HOOK_URL:-ftp://not-http}\", signing_secret: \"${S}\" }\n  mc: { type: mailchimp, api_key: \"${RK:-}\", data_center: us6 }\n";
        let vars = [("S", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        assert_eq!(
            found(conns, true, &vars),
            [
                "connections.hook.url: expected an http:// or https:// URL with a host",
                "connections.mc.api_key: the value is empty",
            ]
        );
        assert!(found(conns, false, &vars).is_empty(), "unknown without --check-env");
        let set = [vars[0], ("HOOK_URL", "https://example.com/h"), ("RK", "k-us6")];
        assert!(found(conns, true, &set).is_empty());
    }

    /// A newline from the environment is the variable's, not YAML's: the
    /// hint names the variable, never its value.
    #[test]
    fn a_newline_from_a_variable_names_the_variable() {
        let conns = "  hook: { type: webhook, url: https://example.com/h, headers: { X-Key: \"k-${KEY}\" } }\n  mc: { type: mailchimp, api_key: \"${MC}\", data_center: us6 }\n";
        let found = found(conns, true, &[("KEY", "sk_live_abc123\n"), ("MC", "k-us6")]);
        assert_eq!(
            found,
            [
                "connections.hook.headers.X-Key: the value is not a valid HTTP header value (no control characters): the value of `KEY` ends with a newline: remove it where the variable is set (a file read with `$(cat …)` loses it; a secrets manager or `.env` file may keep it)"
            ]
        );
    }

    /// One problem, one error: the schema's own bound on an empty secret or
    /// a rotation list's size is left to the webhook's check, which says
    /// what to do instead.
    #[test]
    fn signing_secret_bounds_are_reported_once() {
        let report = |secret: &str| {
            let text = format!(
                "{WS}  hook: {{ type: webhook, url: https://example.com/h, signing_secret: {secret} }}\nrules:\n  - {{ id: r, event: e, connection: hook, metadata: {{ action: send_webhook }} }}\n"
            );
            let source = crate::config::Source { name: "c.yaml".into(), text };
            let report = crate::config::check_sources(&[source], Default::default());
            report
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}", d.path, d.message))
                .collect::<Vec<_>>()
        };
        let unsigned = "remove the key to send unsigned requests";
        assert_eq!(
            report("\"\""),
            [format!(
                "connections.hook.signing_secret: the value is empty: expected a Standard Webhooks secret (`whsec_` followed by base64), or {unsigned}"
            )]
        );
        assert_eq!(
            report("[]"),
            [format!(
                "connections.hook.signing_secret: expected at least one secret, found an empty list; {unsigned}"
            )]
        );
        let eleven = ["\"${S}\""; 11].join(", ");
        let found = report(&format!("[{eleven}]"));
        assert!(
            found.len() == 1 && found[0].contains("expected at most 10 secrets, found 11"),
            "{found:?}"
        );
        let found = report("[\"${S}\", \"\"]");
        assert!(
            found.len() == 1
                && found[0].starts_with("connections.hook.signing_secret[1]: the value is empty"),
            "{found:?}"
        );
    }

    #[test]
    fn a_variable_set_but_empty_is_said_so() {
        let conns = "  hook: { type: webhook, url: \"${U}\", signing_secret: \"${S}\" }\n  mc: { type: mailchimp, api_key: \"${MC}\", data_center: us6 }\n";
        let found = found(conns, true, &[("U", "https://example.com/h"), ("S", "")]);
        assert_eq!(
            found,
            [
                "connections.hook.signing_secret: environment variable `S` is set but empty (and has no `:-default`)",
                "connections.mc.api_key: environment variable `MC` is not set (and has no `:-default`)",
            ]
        );
    }
}
