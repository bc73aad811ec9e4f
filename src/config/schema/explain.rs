//! jsonschema's errors turned into located, readable issues: each names the
//! field, the value found and what the schema expected there.

use crate::config::diagnostic::{Code, Issue, Path, expected_one_of};
use crate::config::duration;
use jsonschema::ValidationError;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use serde_json::Value;

mod fields;
use fields::{is_name_bound, is_signing_bound, property_name, unknown_field};

fn to_path(location: &Location) -> Path {
    location.iter().fold(Path::root(), |p, seg| match seg {
        LocationSegment::Property(k) => p.key(k.as_ref()),
        LocationSegment::Index(i) => p.index(i),
    })
}

/// The schema node an error's keyword sits in (`$ref`s followed).
fn schema_node<'a>(root: &'a Value, location: &Location) -> Option<&'a Value> {
    let segments: Vec<String> = location.iter().map(|s| s.to_string()).collect();
    let mut node = root;
    // The last segment is the failing keyword itself; we want its parent object.
    for seg in &segments[..segments.len().saturating_sub(1)] {
        node = deref(root, node);
        // `deref` has already followed it.
        if seg == "$ref" {
            continue;
        }
        node = match node {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(deref(root, node))
}

fn deref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let Some(name) = r.strip_prefix("#/$defs/") else { break };
        match root["$defs"].get(name) {
            Some(target) => node = target,
            None => break,
        }
    }
    node
}

pub(super) fn explain(root: &Value, error: &ValidationError<'_>, out: &mut Vec<Issue>) {
    let path = to_path(error.instance_path());
    let instance = error.instance();
    let found = match schema_node(root, error.schema_path()) {
        Some(node) if is_secret(node) => hidden(instance, SECRET),
        _ if path.may_hold_credential() => hidden(instance, MAYBE_SECRET),
        _ => describe(instance),
    };
    if is_name_bound(root, error) || is_signing_bound(&path, error) {
        // The semantic check says what is wrong, in the words of its owner.
        return;
    }
    let issue = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let allowed = allowed_properties(root, error.schema_path());
            for key in unexpected {
                let message = unknown_field(key, instance, &allowed);
                out.push(Issue::error(Code::UnknownField, path.key(key.clone()), message).at_key());
            }
            return;
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            Issue::error(Code::MissingField, path, format!("missing required field `{name}`"))
                .at_key()
        }
        ValidationErrorKind::Type { kind } => Issue::error(
            Code::InvalidType,
            path,
            format!("expected {}, found {found}", type_names(kind)),
        ),
        // The semantic check reports it with the connection's own actions.
        ValidationErrorKind::Enum { .. } if is_metadata_action(&path) => return,
        ValidationErrorKind::Enum { options } => enum_issue(path, instance, options),
        ValidationErrorKind::Constant { expected_value } => Issue::error(
            Code::InvalidValue,
            path,
            format!("expected `{}`, found {found}", plain(expected_value)),
        ),
        ValidationErrorKind::Pattern { pattern } => pattern_issue(path, instance, pattern),
        ValidationErrorKind::PropertyNames { error } => {
            return out.extend(property_name(root, path, error));
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            return explain_union(root, error, context, out);
        }
        ValidationErrorKind::Format { format } => match format_issue(path, instance, format) {
            Some(issue) => issue,
            None => return,
        },
        _ => Issue::error(Code::InvalidValue, path, bound_message(error, &found)),
    };
    out.push(issue);
}

fn is_metadata_action(path: &Path) -> bool {
    use crate::config::diagnostic::Seg;
    matches!(path.0.as_slice(), [.., Seg::Key(m), Seg::Key(a)] if m == "metadata" && a == "action")
}

fn allowed_properties(root: &Value, keyword: &Location) -> Vec<String> {
    schema_node(root, keyword)
        .and_then(|n| n["properties"].as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn enum_issue(path: Path, instance: &Value, options: &Value) -> Issue {
    let names: Vec<String> = options.as_array().into_iter().flatten().map(plain).collect();
    let found = plain(instance);
    let message = format!(
        "unknown value `{found}`, {}",
        expected_one_of(&found, names.iter().map(String::as_str))
    );
    Issue::error(Code::InvalidValue, path, message)
}

fn pattern_issue(path: Path, instance: &Value, pattern: &str) -> Issue {
    let found = plain(instance);
    if pattern == duration::PATTERN {
        let message = duration::parse(&found).err().map(|e| e.to_string()).unwrap_or_default();
        return Issue::error(Code::InvalidDuration, path, message);
    }
    let expected = match pattern {
        p if p.contains("{8}-") => {
            "a UUID such as `3f216741-15dd-4e46-b5ac-0077a2640e89`".to_string()
        }
        p if p.starts_with("^[A-Za-z0-9][A-Za-z0-9._:-]") => {
            "an id of letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit (at most 128 characters)".to_string()
        }
        p => format!("a value matching `{p}`"),
    };
    Issue::error(
        Code::InvalidValue,
        path,
        format!("expected {expected}, found {}", describe(instance)),
    )
}

/// The duration formats of [`duration`]: each reports only what the
/// pattern and the other formats do not, so one value gets one message.
fn format_issue(path: Path, instance: &Value, format: &str) -> Option<Issue> {
    let text = instance.as_str()?;
    if format == duration::FORMAT {
        let message = duration::parse(text).err()?.to_string();
        return Some(Issue::error(Code::InvalidDuration, path, message));
    }
    let min = duration::minimum_ms(format)?;
    let shortest = duration::Duration::from_millis(min);
    let message = match min {
        1 => format!("invalid duration `{text}`: expected more than 0s"),
        _ => format!("invalid duration `{text}`: too short, expected at least {shortest}"),
    };
    Some(Issue::error(Code::InvalidDuration, path, message))
}

fn bound_message(error: &ValidationError<'_>, found: &str) -> String {
    match error.kind() {
        ValidationErrorKind::Minimum { limit } => {
            format!("expected at least {limit}, found {found}")
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("expected at most {limit}, found {found}")
        }
        // Said plainly: a hidden credential's `found` is only "a string".
        ValidationErrorKind::MinLength { .. } if error.instance().as_str() == Some("") => {
            "the value is empty: expected a non-empty string".to_string()
        }
        ValidationErrorKind::MinLength { limit } => {
            format!("expected at least {limit} characters, found {found}")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("expected at most {limit} characters, found {found}")
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("expected at least {limit} item(s), found {}", count(error.instance()))
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("expected at most {limit} items, found {}", count(error.instance()))
        }
        ValidationErrorKind::MinProperties { limit } => {
            format!("expected at least {limit} entries, found {}", count(error.instance()))
        }
        ValidationErrorKind::MaxProperties { limit } => {
            format!("expected at most {limit} entries, found {}", count(error.instance()))
        }
        _ => format!("invalid value {found}: {error}"),
    }
}

fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        _ => 1,
    }
}

/// Picks the union branch the author meant and reports its errors, instead
/// of jsonschema's "not valid under any of the given schemas".
fn explain_union(
    root: &Value,
    error: &ValidationError<'_>,
    context: &[Vec<ValidationError<'static>>],
    out: &mut Vec<Issue>,
) {
    let path = to_path(error.instance_path());
    let instance = error.instance();
    let branches: Vec<&Value> = schema_node(root, &child(error.schema_path()))
        .and_then(|n| n.as_array())
        .map(|a| a.iter().map(|b| deref(root, b)).collect())
        .unwrap_or_default();
    if let Some(tag) = instance.get("type").filter(|_| has_type_tags(&branches)) {
        if let Some(i) = branches.iter().position(|b| b["properties"]["type"]["const"] == *tag) {
            return context.get(i).into_iter().flatten().for_each(|e| explain(root, e, out));
        }
        return out.push(unknown_type(path, tag, &branches));
    }
    if !branches.is_empty() && branches.iter().all(|b| b.get("const").is_some()) {
        let consts: Vec<Value> = branches.iter().map(|b| b["const"].clone()).collect();
        return out.push(enum_issue(path, instance, &Value::Array(consts)));
    }
    // A word where unit variants and `{ key: args }` variants mix (mapping
    // transforms): list every name rather than the first branch's.
    if instance.is_string() && branches.iter().any(|b| b.get("const").is_some()) {
        let names: Vec<Value> = branches
            .iter()
            .filter_map(|b| b.get("const").cloned().or_else(|| only_required(b).map(Value::String)))
            .collect();
        return out.push(enum_issue(path, instance, &Value::Array(names)));
    }
    if single_key_union(root, &path, instance, &branches, context, out) {
        return;
    }
    let own_type_error = |errs: &Vec<ValidationError<'static>>| {
        errs.iter().any(|e| {
            matches!(e.kind(), ValidationErrorKind::Type { .. })
                && to_path(e.instance_path()) == path
        })
    };
    let best = context.iter().filter(|errs| !own_type_error(errs)).min_by_key(|errs| errs.len());
    match best {
        Some(errs) => errs.iter().for_each(|e| explain(root, e, out)),
        None => {
            let kinds: Vec<&str> = branches.iter().filter_map(|b| b["type"].as_str()).collect();
            let found = match branches.iter().any(|b| is_secret(b)) {
                true => hidden(instance, SECRET),
                false if path.may_hold_credential() => hidden(instance, MAYBE_SECRET),
                false => describe(instance),
            };
            let message = format!("expected {}, found {found}", kinds.join(" or "));
            out.push(Issue::error(Code::InvalidType, path, message));
        }
    }
}

/// A `type:` tag that names none of the union's branches.
fn unknown_type(path: Path, tag: &Value, branches: &[&Value]) -> Issue {
    let found = plain(tag);
    let tags: Vec<String> =
        branches.iter().map(|b| plain(&b["properties"]["type"]["const"])).collect();
    let is_connection = matches!(path.0.first(), Some(crate::config::diagnostic::Seg::Key(k)) if k == "connections")
        && path.0.len() == 2;
    let code = if is_connection { Code::UnknownConnectionType } else { Code::InvalidValue };
    let message = format!(
        "unknown type `{found}`, {}",
        expected_one_of(&found, tags.iter().map(String::as_str))
    );
    Issue::error(code, path.key("type"), message)
}

fn child(keyword: &Location) -> Location {
    // `schema_node` drops the last segment; give it one more so it returns the oneOf array itself.
    keyword.join("0")
}

fn has_type_tags(branches: &[&Value]) -> bool {
    !branches.is_empty() && branches.iter().all(|b| b["properties"]["type"]["const"].is_string())
}

/// The one required key of an object branch (`{ substring: … }`), if it has exactly one.
fn only_required(b: &Value) -> Option<String> {
    match b["required"].as_array().map(Vec::as_slice) {
        Some([only]) if b["type"] == "object" => only.as_str().map(str::to_string),
        _ => None,
    }
}

/// Externally tagged enums (`{ add_tag: vip }`): the one key names the
/// branch. Returns false when the union is not of that shape.
fn single_key_union(
    root: &Value,
    path: &Path,
    instance: &Value,
    branches: &[&Value],
    context: &[Vec<ValidationError<'static>>],
    out: &mut Vec<Issue>,
) -> bool {
    let keys: Vec<String> = branches.iter().filter_map(|b| only_required(b)).collect();
    let objects = branches.iter().filter(|b| b["type"] == "object").count();
    let Some(obj) = instance.as_object() else { return false };
    if keys.len() < 2 || keys.len() != objects {
        return false;
    }
    let chosen =
        branches.iter().position(|b| only_required(b).is_some_and(|k| obj.contains_key(&k)));
    if let Some(i) = chosen {
        context.get(i).into_iter().flatten().for_each(|e| explain(root, e, out));
        return true;
    }
    let found = obj.keys().next().cloned().unwrap_or_default();
    let message = format!(
        "unknown key `{found}`, {}",
        expected_one_of(&found, keys.iter().map(String::as_str))
    );
    out.push(Issue::error(Code::UnknownField, path.key(found), message).at_key());
    true
}

fn type_names(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => article(&t.to_string()),
        TypeKind::Multiple(set) => {
            let names: Vec<String> = set
                .iter()
                .filter(|t| t.to_string() != "null")
                .map(|t| article(&t.to_string()))
                .collect();
            names.join(" or ")
        }
    }
}

fn article(t: &str) -> String {
    match t {
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "integer" => "an integer".into(),
        "null" => "nothing".into(),
        other => format!("a {other}"),
    }
}

/// `the string \`abc\``, `the number 5`, … for messages (long values cut).
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("the string `{}`", cut(s)),
        Value::Array(a) => format!("a list of {} item(s)", a.len()),
        Value::Object(_) => "a mapping".into(),
    }
}

/// A schema node of a credential (`Secret` carries `x-meshes-secret`).
fn is_secret(node: &Value) -> bool {
    node["x-meshes-secret"] == true
}

const SECRET: &str = "holds a secret";
const MAYBE_SECRET: &str = "may hold a credential";

/// [`describe`] without the value: a credential written as a number or a
/// list is still a credential, and messages reach logs, CI and `/readyz`.
fn hidden(v: &Value, why: &str) -> String {
    let kind = match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    };
    format!("{kind} (hidden: this field {why})")
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => cut(s),
        other => other.to_string(),
    }
}

fn cut(s: &str) -> String {
    if s.chars().count() <= 60 {
        return s.to_string();
    }
    let head: String = s.chars().take(57).collect();
    format!("{head}...")
}
