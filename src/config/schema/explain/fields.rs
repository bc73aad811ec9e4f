//! Field errors said in the words of the check that owns them: a `mapping`
//! on a type that takes none, the bounds of event and resource names and of
//! webhook signing secrets, and map keys that are not ids.

use super::{explain, pattern_issue, schema_node};
use crate::config::diagnostic::{Issue, Path, expected_one_of};
use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use serde_json::Value;

/// "unknown field": for a `mapping` on a connection type that sends no
/// contact, why that type takes none.
pub(super) fn unknown_field(key: &str, instance: &Value, allowed: &[String]) -> String {
    let kind = instance.get("type").and_then(Value::as_str).unwrap_or_default();
    if key == "mapping" && crate::config::mapping::NO_CONTACT.contains(&kind) {
        return format!("unknown field `mapping`: {}", crate::config::mapping::kind_problem(kind));
    }
    format!("unknown field `{key}`, {}", expected_one_of(key, allowed.iter().map(String::as_str)))
}

/// A length or pattern error of an event type or resource (the fields with
/// the name pattern).
pub(super) fn is_name_bound(root: &Value, error: &ValidationError<'_>) -> bool {
    let bound = matches!(
        error.kind(),
        ValidationErrorKind::MinLength { .. }
            | ValidationErrorKind::MaxLength { .. }
            | ValidationErrorKind::Pattern { .. }
    );
    bound
        && schema_node(root, error.schema_path()).is_some_and(|n| {
            n.get("pattern").and_then(Value::as_str) == Some(crate::config::model::NAME_PATTERN)
        })
}

/// An empty webhook signing secret, or a rotation list that is empty or too
/// long: the connection's value check says so with what to do instead
/// (remove the key to send unsigned), so the schema's bound is not repeated.
pub(super) fn is_signing_bound(path: &Path, error: &ValidationError<'_>) -> bool {
    use crate::config::diagnostic::Seg;
    let bound = matches!(
        error.kind(),
        ValidationErrorKind::MinLength { .. }
            | ValidationErrorKind::MinItems { .. }
            | ValidationErrorKind::MaxItems { .. }
    );
    let at = match path.0.as_slice() {
        [at @ .., Seg::Index(_)] => at,
        at => at,
    };
    let signing = matches!(at, [Seg::Key(c), Seg::Key(_), Seg::Key(s)]
        if c == "connections" && s == "signing_secret");
    bound && signing
}

/// A map key the schema refuses (a sequence name that is not an id),
/// reported at the key (its text escaped, as every diagnostic's is, when
/// the diagnostic is placed).
pub(super) fn property_name(root: &Value, map: Path, error: &ValidationError<'_>) -> Vec<Issue> {
    let key = error.instance().as_str().unwrap_or_default();
    let at = map.key(key);
    if let ValidationErrorKind::Pattern { pattern } = error.kind() {
        return vec![pattern_issue(at, &Value::String(key.into()), pattern).at_key()];
    }
    let mut inner = Vec::new();
    explain(root, error, &mut inner);
    inner.into_iter().map(|i| Issue { path: at.clone(), ..i }.at_key()).collect()
}
