//! Field mapping: which value each destination field gets, and the checks
//! `meshes validate` runs on it. Applying it is in `adapters::mapping`.

use super::diagnostic::{Code, Issue, Path};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Destination field → where its value comes from. The standard contact
/// fields (`email, first_name, last_name, name, phone, id, ip_address`)
/// replace what the payload gives; any other name becomes a custom field of
/// the provider (a HubSpot property, a Mailchimp merge field, …). A rule's
/// mapping overrides its connection's mapping field by field.
pub type Mapping = BTreeMap<String, FieldMap>;

/// How one destination field gets its value: `from` a path or a literal
/// `value` (exactly one), then `transforms` in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Where to read the value: `payload.<key>[.<key>…]` (a number indexes
    /// an array, e.g. `payload.items.0.sku`), `event`, `resource` or `resource_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A literal value instead of `from` (e.g. `value: Acme`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Applied in order: `to_string`, `to_number`, `to_boolean` (true/false,
    /// yes/no, on/off, 1/0), `to_date` (YYYY-MM-DD), `to_datetime` (RFC 3339),
    /// `trim`, `lower`, `upper`, `{ substring: [start, length] }` (in characters;
    /// `length` optional). Dates are read from YYYY-MM-DD, YYYY/MM/DD, YYYYMMDD,
    /// RFC 3339 (also with a space, without seconds or offset) and Unix time
    /// in seconds or milliseconds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
    /// Used as is (not transformed) when the source is missing, `null` or
    /// ends up an empty string; without it such a field is left as it was
    /// (a standard field keeps the payload's value, a custom one is left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// What a value that cannot be transformed does: `skip_field` (default:
    /// deliver without the field), `warn_action` (the same, and the attempt
    /// records a warning) or `fail_action` (the delivery fails permanently
    /// with outcome `mapping_error`).
    #[serde(default, skip_serializing_if = "OnError::is_default")]
    pub on_error: OnError,
}

/// One step of a field's transforms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = super::automation::describe_keys)]
pub enum Transform {
    /// Numbers and booleans as text.
    ToString,
    /// Text such as `"42"` or `"3.5"` as a number.
    ToNumber,
    /// `true/false`, `yes/no`, `y/n`, `on/off`, `1/0` (any case) as a boolean.
    ToBoolean,
    /// A date or timestamp as `YYYY-MM-DD` (the date as written; Unix time in UTC).
    ToDate,
    /// A date or timestamp as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`, offset kept).
    ToDatetime,
    /// Strips leading and trailing whitespace.
    Trim,
    /// Lower case (Unicode-aware).
    Lower,
    /// Upper case (Unicode-aware).
    Upper,
    /// `[start]` or `[start, length]`, counted in characters from 0.
    Substring(Vec<i64>),
}

impl Transform {
    /// The name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Transform::ToString => "to_string",
            Transform::ToNumber => "to_number",
            Transform::ToBoolean => "to_boolean",
            Transform::ToDate => "to_date",
            Transform::ToDatetime => "to_datetime",
            Transform::Trim => "trim",
            Transform::Lower => "lower",
            Transform::Upper => "upper",
            Transform::Substring(_) => "substring",
        }
    }
}

/// What a value that cannot be transformed does to the delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Deliver without the field.
    #[default]
    SkipField,
    /// Deliver without the field and record a warning on the attempt.
    WarnAction,
    /// Fail the delivery permanently (outcome `mapping_error`).
    FailAction,
}

impl OnError {
    fn is_default(&self) -> bool {
        *self == OnError::SkipField
    }
}

/// Integrations that send no contact, so a mapping would do nothing there:
/// their connections have no `mapping` field, and a rule on one may not
/// have one either.
pub const NO_CONTACT: [&str; 4] = ["webhook", "slack", "discord", "log"];

/// Why a connection of type `kind` takes no mapping.
pub fn kind_problem(kind: &str) -> String {
    format!(
        "`{kind}` connections send no contact, so `mapping` would do nothing: expected it only on contact-based integrations (hubspot, mailchimp, …)"
    )
}

/// An error when `kind` (a connection `type`) does not apply mappings.
pub fn check_kind(kind: &str, at: &Path, out: &mut Vec<Issue>) {
    if NO_CONTACT.contains(&kind) {
        out.push(issue(at.clone(), kind_problem(kind)));
    }
}

/// The source roots `from` accepts besides `payload.…`.
pub const ROOTS: [&str; 3] = ["event", "resource", "resource_id"];

/// Why a `from` path is not one the mapping can read, if it is not.
pub fn path_problem(from: &str) -> Option<String> {
    if ROOTS.contains(&from) {
        return None;
    }
    let Some(rest) = from.strip_prefix("payload.") else {
        return Some(format!(
            "`{from}` is not a source: expected `payload.<key>[.<key>…]`, `event`, `resource` or `resource_id`"
        ));
    };
    if rest.split('.').any(str::is_empty) {
        return Some(format!("`{from}` has an empty path segment: expected `payload.a.b`"));
    }
    None
}

/// The kind of value a transform chain carries, as far as the file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Any,
    Text,
    Number,
    Bool,
}

impl Kind {
    fn of(v: &Value) -> Kind {
        match v {
            Value::String(_) => Kind::Text,
            Value::Number(_) => Kind::Number,
            Value::Bool(_) => Kind::Bool,
            _ => Kind::Any,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Number => "a number",
            Kind::Bool => "a boolean",
            Kind::Any | Kind::Text => "text",
        }
    }
}

/// Checks every field of a mapping at `at` (`…mapping`).
pub fn check(mapping: &Mapping, at: &Path, out: &mut Vec<Issue>) {
    for (field, m) in mapping {
        let at = at.key(field.clone());
        if field.trim().is_empty() {
            out.push(issue(
                at.clone(),
                "empty destination field name: expected a field such as `first_name`",
            ));
        }
        let kind = match (&m.from, &m.value) {
            (Some(_), Some(_)) => {
                out.push(issue(
                    at.clone(),
                    "both `from` and `value` are set: expected exactly one of them",
                ));
                Kind::Any
            }
            (None, None) => {
                out.push(issue(at.clone(), "neither `from` nor `value` is set: expected a source path (`from`) or a literal (`value`)"));
                continue;
            }
            (Some(from), None) => {
                if let Some(p) = path_problem(from) {
                    out.push(issue(at.key("from"), p));
                }
                Kind::Any
            }
            (None, Some(v)) => Kind::of(v),
        };
        check_transforms(&m.transforms, kind, &at.key("transforms"), out);
    }
}

fn check_transforms(transforms: &[Transform], mut kind: Kind, at: &Path, out: &mut Vec<Issue>) {
    let mut made_by: Option<&'static str> = None;
    for (i, t) in transforms.iter().enumerate() {
        let at = at.index(i);
        let needs = |ok: bool, wants: &str, out: &mut Vec<Issue>| {
            if !ok {
                let after = made_by.map_or(String::new(), |m| format!(" (made by `{m}`)"));
                out.push(issue(
                    at.clone(),
                    format!("`{}` needs {wants} but gets {}{after}: reorder the transforms or add `to_string` first", t.name(), kind.noun()),
                ));
            }
        };
        kind = match t {
            Transform::ToString => Kind::Text,
            Transform::ToNumber => {
                needs(kind != Kind::Bool, "text or a number", out);
                Kind::Number
            }
            Transform::ToBoolean => Kind::Bool,
            Transform::ToDate | Transform::ToDatetime => {
                needs(matches!(kind, Kind::Any | Kind::Text), "text", out);
                Kind::Text
            }
            Transform::Trim | Transform::Lower | Transform::Upper => {
                needs(matches!(kind, Kind::Any | Kind::Text), "text", out);
                Kind::Text
            }
            Transform::Substring(args) => {
                needs(matches!(kind, Kind::Any | Kind::Text), "text", out);
                if !(1..=2).contains(&args.len()) || args.iter().any(|n| *n < 0) {
                    out.push(issue(
                        at.key("substring"),
                        format!("substring arguments {args:?}: expected `[start]` or `[start, length]`, both 0 or more"),
                    ));
                }
                Kind::Text
            }
        };
        made_by = Some(t.name());
    }
}

fn issue(at: Path, message: impl Into<String>) -> Issue {
    Issue::error(Code::InvalidMapping, at, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn messages(m: Value) -> Vec<String> {
        let mapping: Mapping = serde_json::from_value(m).unwrap();
        let mut out = Vec::new();
        check(&mapping, &Path::root().key("mapping"), &mut out);
        out.into_iter().map(|i| i.message).collect()
    }

    #[test]
    fn a_clean_mapping_has_no_issues() {
        let m = json!({
            "first_name": {"from": "payload.user.given_name", "transforms": ["trim"]},
            "plan": {"from": "payload.plan", "transforms": ["upper"], "default": "FREE"},
            "company": {"value": "Acme"},
            "signup": {"from": "payload.created", "transforms": ["to_date"], "on_error": "fail_action"},
            "nick": {"from": "payload.name", "transforms": [{"substring": [0, 10]}]},
            "kind": {"from": "event"},
            "score": {"from": "payload.score", "transforms": ["to_number", "to_string", "trim"]}
        });
        assert_eq!(messages(m), Vec::<String>::new());
    }

    #[test]
    fn reports_sources_order_and_arguments() {
        let m = messages(json!({
            "a": {"from": "payload.x", "value": 1},
            "b": {},
            "c": {"from": "user.email"},
            "d": {"from": "payload..x"},
            "e": {"from": "payload.x", "transforms": ["to_number", "to_date"]},
            "f": {"value": true, "transforms": ["upper"]},
            "g": {"from": "payload.x", "transforms": [{"substring": [-1]}]},
            "h": {"from": "payload.x", "transforms": [{"substring": [0, 1, 2]}]}
        }));
        assert_eq!(m.len(), 8, "{m:#?}");
        assert!(m[0].contains("both `from` and `value`"));
        assert!(m[1].contains("neither"));
        assert!(m[2].contains("`user.email` is not a source"));
        assert!(m[3].contains("empty path segment"));
        assert!(m[4].contains("`to_date` needs text but gets a number (made by `to_number`)"));
        assert!(m[5].contains("`upper` needs text but gets a boolean"));
        assert!(m[6].contains("[-1]"));
        assert!(m[7].contains("[0, 1, 2]"));
    }

    #[test]
    fn unknown_transforms_do_not_decode() {
        let bad = serde_json::from_value::<Mapping>(
            json!({"a": {"from": "event", "transforms": ["shout"]}}),
        );
        assert!(bad.unwrap_err().to_string().contains("unknown variant `shout`"));
    }
}
