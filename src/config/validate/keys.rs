//! Workspace and machine keys: never blank, and access keys unique, both
//! judged on the text serving uses (resolved, surrounding whitespace
//! dropped). Values are never printed: they may come from the environment.

use super::{Checks, Parts, duplicates};
use crate::config::diagnostic::{Code, Issue, Path};
use crate::config::env;
use crate::config::model::key_text;

pub(super) fn check(parts: &Parts, opts: &Checks<'_>, out: &mut Vec<Issue>) {
    let root = Path::root();
    if let Some(ws) = &parts.workspace {
        let at = root.key("workspace").key("publishable_key");
        blank(&ws.publishable_key.0, "publishable key", at, opts, out);
    }
    for (i, key) in &parts.machine_keys {
        let at = root.key("machine_keys").index(*i);
        blank(&key.access_key.0, "access key", at.key("access_key"), opts, out);
        blank(key.secret.template(), "secret", at.key("secret"), opts, out);
    }
    // A blank key is reported as blank, not also as a duplicate of another blank one.
    let keys = parts.machine_keys.iter().filter_map(|(i, k)| {
        let resolved = env::effective(&k.access_key.0, opts.lookup);
        Some((*i, key_text(&resolved).to_string())).filter(|(_, key)| !key.is_empty())
    });
    duplicates("machine_keys", "access_key", "access key", keys, out);
}

/// An error when `template` resolves to nothing but whitespace. An empty
/// template is left to the schema (`minLength`), an unset variable to the
/// `${…}` checks.
fn blank(template: &str, what: &str, at: Path, opts: &Checks<'_>, out: &mut Vec<Issue>) {
    if template.is_empty() {
        return;
    }
    let Ok(resolved) = env::resolve(template, opts.lookup) else { return };
    if key_text(&resolved).is_empty() {
        let expanded = env::parse(template)
            .is_ok_and(|parts| parts.iter().any(|p| matches!(p, env::Part::Var { .. })));
        let how = if expanded { "is blank once `${…}` is expanded" } else { "is blank" };
        let message = format!(
            "the {what} {how} (surrounding whitespace is dropped when serving): no credential could ever match it; expected a non-blank value"
        );
        out.push(Issue::error(Code::InvalidValue, at, message));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{Checks, Parts};
    use crate::config::diagnostic::Issue;

    const WS: &str = "version: 1\nworkspace: { id: 3f216741-15dd-4e46-b5ac-0077a2640e89, name: w, publishable_key: \"${PK:-}\" }\n";

    fn issues(text: &str, vars: &[(&str, &str)]) -> Vec<Issue> {
        let doc = crate::config::yaml::parse(text).unwrap();
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
        let parts = Parts::decode(&doc);
        let mut out = Vec::new();
        super::check(&parts, &Checks { check_env: true, lookup: &lookup }, &mut out);
        out
    }

    fn lines(issues: &[Issue]) -> Vec<String> {
        issues.iter().map(|i| format!("{}: {}", i.path, i.message)).collect()
    }

    #[test]
    fn keys_blank_as_written_or_once_expanded_are_errors() {
        let text = format!(
            "{WS}machine_keys:\n  - {{ access_key: \" \", secret: \"${{S}}\" }}\n  - {{ access_key: mk, secret: \"${{S2}}\" }}\n"
        );
        let found = lines(&issues(&text, &[("S", "\n"), ("S2", "ok")]));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with(
                "workspace.publishable_key: the publishable key is blank once `${…}` is expanded"
            ),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("machine_keys[0].access_key: the access key is blank ("),
            "{found:#?}"
        );
        assert!(
            found[2].starts_with("machine_keys[0].secret: the secret is blank once"),
            "{found:#?}"
        );
        assert!(issues(&text, &[("PK", "pk"), ("S", "s"), ("S2", "ok")]).len() == 1);
    }

    #[test]
    fn access_keys_that_collide_once_trimmed_are_duplicates() {
        let text = format!(
            "{WS}machine_keys:\n  - {{ access_key: mk_alpha, secret: \"${{S}}\" }}\n  - {{ access_key: \"${{AKB}}\", secret: \"${{S}}\" }}\n"
        );
        let vars = [("PK", "pk"), ("S", "s"), ("AKB", "mk_alpha\n")];
        let found = lines(&issues(&text, &vars));
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].starts_with(
                "machine_keys[1].access_key: duplicate access key: already used by machine_keys[0]"
            ),
            "{found:#?}"
        );
        assert!(!found[0].contains("mk_alpha"), "{found:#?}");
    }
}
