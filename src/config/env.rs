//! `${VAR}` / `${VAR:-default}` interpolation for config strings.
//!
//! Values are resolved from the process environment when a config is built,
//! never when it is parsed: `validate` must work in CI where production
//! secrets do not exist. `$${` escapes a literal `${`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<'a> {
    /// Literal text, copied as is.
    Text(Cow<'a, str>),
    /// `${name}` or `${name:-default}`.
    Var {
        /// Variable name (`[A-Za-z_][A-Za-z0-9_]*`).
        name: &'a str,
        /// Value used when the variable is unset or empty.
        default: Option<&'a str>,
    },
}

/// A malformed `${…}` reference, with its byte offset inside the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at offset {offset}")]
pub struct TemplateError {
    /// Byte offset of the offending `${`.
    pub offset: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Splits `s` into literal text and variable references.
pub fn parse(s: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        text.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            text.push_str("${");
            offset += i + 3;
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix('{') else {
            text.push('$');
            offset += i + 1;
            rest = after;
            continue;
        };
        let at = offset + i;
        let close = body_start.find('}').ok_or_else(|| TemplateError {
            offset: at,
            message: "unterminated `${`: expected `${NAME}` or `${NAME:-default}`".into(),
        })?;
        let body = &body_start[..close];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        check_name(name, at)?;
        if !text.is_empty() {
            parts.push(Part::Text(Cow::Owned(std::mem::take(&mut text))));
        }
        parts.push(Part::Var { name, default });
        let consumed = i + 2 + close + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        parts.push(Part::Text(Cow::Owned(text)));
    }
    Ok(parts)
}

fn check_name(name: &str, offset: usize) -> Result<(), TemplateError> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        return Ok(());
    }
    // The braces may hold a pasted credential, so the message never quotes them.
    let message = if name.is_empty() {
        "empty variable name in `${}`: expected `${NAME}`".to_string()
    } else {
        "invalid variable name in `${…}`: expected letters, digits and `_`, not starting with a digit".to_string()
    };
    Err(TemplateError { offset, message })
}

/// Names of the variables a template references (empty for a literal or malformed one).
pub fn variables(s: &str) -> Vec<&str> {
    parse(s)
        .map(|parts| {
            parts
                .into_iter()
                .filter_map(|p| match p {
                    Part::Var { name, default: None } => Some(name),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why a template could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The template itself is malformed.
    #[error(transparent)]
    Malformed(#[from] TemplateError),
    /// A referenced variable is unset and has no default.
    #[error("environment variable `{0}` is not set")]
    Unset(String),
}

/// Resolves a template with `lookup` (the environment in production, a map in tests).
pub fn resolve(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ResolveError> {
    let mut out = String::with_capacity(s.len());
    for part in parse(s)? {
        match part {
            Part::Text(t) => out.push_str(&t),
            Part::Var { name, default } => {
                match (lookup(name).filter(|v| !v.is_empty()), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => return Err(ResolveError::Unset(name.to_string())),
                }
            }
        }
    }
    Ok(out)
}

/// The value a template has under `lookup`, or the template itself when it
/// does not resolve: what uniqueness checks compare, never what they print.
pub fn effective(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    resolve(s, lookup).unwrap_or_else(|_| s.to_string())
}

/// Reads the process environment; the default lookup for [`resolve`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A config string that may reference the environment (`${VAR}`), e.g. a URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnvString(pub String);

impl JsonSchema for EnvString {
    fn schema_name() -> Cow<'static, str> {
        "EnvString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A string; `${VAR}` and `${VAR:-default}` are read from the environment."
        })
    }
}

/// A credential. Write it as `${VAR}` so the value comes from the environment,
/// never from git. Its resolved value is never printed (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a template such as `${HUBSPOT_TOKEN}`.
    pub fn new(template: impl Into<String>) -> Self {
        Self(template.into())
    }
    /// The template as written in the file (safe to show only when it is all references).
    pub fn template(&self) -> &str {
        &self.0
    }
    /// True when any of the value is written in the file instead of coming
    /// from the environment: text, or a `${VAR:-default}` whose default is
    /// itself a credential in git (and silently in force when `VAR` is unset).
    pub fn is_literal(&self) -> bool {
        parse(&self.0).is_ok_and(|parts| {
            parts.iter().any(|p| match p {
                Part::Text(_) => true,
                Part::Var { default, .. } => default.is_some_and(|d| !d.is_empty()),
            })
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    /// Serialises the template as written in the file: a config round-trip must
    /// not resolve secrets, and the resolved value has no `Serialize` at all.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "A credential. Write it as `${VAR}` (or `${VAR:-default}`) so it is read from the environment; a literal value is flagged by `meshes validate`.",
            "x-meshes-secret": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn resolves_references_defaults_and_escapes() {
        assert_eq!(resolve("Bearer ${TOKEN}", env), Ok("Bearer abc".into()));
        assert_eq!(resolve("${MISSING:-x}/${TOKEN}", env), Ok("x/abc".into()));
        assert_eq!(resolve("${EMPTY:-fallback}", env), Ok("fallback".into()));
        assert_eq!(resolve("$${TOKEN} costs $5", env), Ok("${TOKEN} costs $5".into()));
        assert_eq!(resolve("${MISSING}", env), Err(ResolveError::Unset("MISSING".into())));
    }

    #[test]
    fn reports_malformed_references_with_offsets() {
        let err = parse("abc ${TOKEN").unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(err.message.contains("unterminated"), "{}", err.message);
        assert!(parse("${}").unwrap_err().message.contains("empty variable name"));
        assert_eq!(parse("x${1ABC}").unwrap_err().offset, 1);
        let pasted = parse("${sk_live-SECRETVALUE42}").unwrap_err().message;
        assert!(pasted.contains("invalid variable name"), "{pasted}");
        assert!(!pasted.contains("SECRETVALUE42"), "{pasted}");
    }

    #[test]
    fn secrets_redact_and_detect_literals() {
        let s = Secret::new("sk_live_123");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(s.is_literal());
        assert!(!Secret::new("${TOKEN}").is_literal());
        assert!(Secret::new("${TOKEN:-sk_live_123}").is_literal(), "a default is in git");
        assert!(!Secret::new("${TOKEN:-}").is_literal(), "an empty default holds nothing");
        assert_eq!(variables("${A}-${B:-x}-${C}"), vec!["A", "C"]);
    }
}

/// An env-capable string found in a config, with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvField<'a> {
    /// Where it is.
    pub path: super::diagnostic::Path,
    /// The template as written.
    pub template: &'a str,
    /// True for credentials ([`Secret`]).
    pub secret: bool,
}

/// Lists the `${…}`-capable strings of a config value, so `validate` can
/// check their syntax (always) and their variables (`--check-env`).
pub trait EnvFields {
    /// Appends this value's env-capable strings, under the path `at`.
    fn env_fields<'a>(&'a self, at: &super::diagnostic::Path, out: &mut Vec<EnvField<'a>>);
}

impl EnvFields for EnvString {
    fn env_fields<'a>(&'a self, at: &super::diagnostic::Path, out: &mut Vec<EnvField<'a>>) {
        out.push(EnvField { path: at.clone(), template: &self.0, secret: false });
    }
}

impl EnvFields for Secret {
    fn env_fields<'a>(&'a self, at: &super::diagnostic::Path, out: &mut Vec<EnvField<'a>>) {
        out.push(EnvField { path: at.clone(), template: &self.0, secret: true });
    }
}

impl<T: EnvFields> EnvFields for Option<T> {
    fn env_fields<'a>(&'a self, at: &super::diagnostic::Path, out: &mut Vec<EnvField<'a>>) {
        if let Some(v) = self {
            v.env_fields(at, out);
        }
    }
}

impl<T: EnvFields> EnvFields for Vec<T> {
    fn env_fields<'a>(&'a self, at: &super::diagnostic::Path, out: &mut Vec<EnvField<'a>>) {
        for (i, v) in self.iter().enumerate() {
            v.env_fields(&at.index(i), out);
        }
    }
}

impl<T: EnvFields> EnvFields for std::collections::BTreeMap<String, T> {
    fn env_fields<'a>(&'a self, at: &super::diagnostic::Path, out: &mut Vec<EnvField<'a>>) {
        for (k, v) in self {
            v.env_fields(&at.key(k.clone()), out);
        }
    }
}

/// Implements [`EnvFields`] as "none" for types that never hold `${…}`.
#[macro_export]
macro_rules! no_env_fields {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::config::env::EnvFields for $t {
            fn env_fields<'a>(
                &'a self,
                _: &$crate::config::diagnostic::Path,
                _: &mut Vec<$crate::config::env::EnvField<'a>>,
            ) {
            }
        }
    )*};
}

no_env_fields!(String, bool, u32, f64);
