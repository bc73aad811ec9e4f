//! The JSON Schema of the config (`meshes schema`) and the schema check of
//! `validate`, with jsonschema's errors turned into located, readable issues.

use super::diagnostic::Issue;
use super::model::ConfigFile;
use jsonschema::Validator;
use serde_json::Value;
use std::sync::OnceLock;

mod explain;

/// The schema as a JSON value (draft 2020-12), generated from [`ConfigFile`].
pub fn root_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = schemars::schema_for!(ConfigFile);
        let mut value = serde_json::to_value(schema).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("$id".into(), Value::from("https://meshes.dev/schema/meshes.schema.json"));
        }
        bound_uint32(&mut value);
        value
    })
}

/// schemars gives `u32` fields `minimum: 0` but no maximum; without one a
/// larger number passes the schema and only fails decoding.
fn bound_uint32(node: &mut Value) {
    match node {
        Value::Object(o) => {
            if o.get("format").and_then(Value::as_str) == Some("uint32") {
                o.entry("maximum").or_insert_with(|| Value::from(u32::MAX));
            }
            o.values_mut().for_each(bound_uint32);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_uint32),
        _ => {}
    }
}

/// What `meshes schema` prints and `schema/meshes.schema.json` holds.
pub fn schema_text() -> String {
    let mut text = serde_json::to_string_pretty(root_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The oneOf branch of `ConnectionConfig` whose `type` is `kind`.
pub fn connection_variant<'a>(schema: &'a Value, kind: &str) -> Option<&'a Value> {
    schema["$defs"]["ConnectionConfig"]["oneOf"]
        .as_array()?
        .iter()
        .find(|v| v["properties"]["type"]["const"] == kind)
}

/// The committed schema file. The drift test keeps it equal to the generated
/// schema, so `check` can parse it instead of running schemars' generator.
const COMMITTED: &str = include_str!("../../schema/meshes.schema.json");

/// The schema check of one load: the committed schema and its compiled
/// validator.
///
/// Built per load and dropped with it: kept for the life of the process they
/// held ~1.5 MB that a serving gateway needs only for the milliseconds of a
/// reload. Parsing the committed file also skips schemars' generator, which
/// made the first check of a process 40 % slower.
pub struct Checker {
    root: Value,
    validator: Validator,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").finish_non_exhaustive()
    }
}

impl Checker {
    /// Parses and compiles the committed schema (~3 ms).
    pub fn new() -> Self {
        // Our own file, kept in step by the schema tests: a failure is a bug,
        // never user input.
        #[allow(clippy::expect_used)]
        let root: Value = serde_json::from_str(COMMITTED)
            .expect("schema/meshes.schema.json, embedded at build time, is not JSON: regenerate it, then rebuild");
        #[allow(clippy::expect_used)]
        let validator = duration_formats(jsonschema::draft202012::options())
            .build(&root)
            .expect("committed schema compiles");
        Checker { root, validator }
    }

    /// Checks a parsed document; every violation becomes an issue.
    pub fn check(&self, doc: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        for error in self.validator.iter_errors(doc) {
            explain::explain(&self.root, &error, &mut issues);
        }
        issues
    }
}

/// The duration bounds a pattern cannot express, as `format` checks; every
/// other format (`uint32`, `double`) stays an annotation.
fn duration_formats(
    options: jsonschema::ValidationOptions<'_>,
) -> jsonschema::ValidationOptions<'_> {
    use super::duration::{
        FORMAT, TIMEOUT_FORMAT, WINDOW_FORMAT, at_least, minimum_ms, within_max,
    };
    let min = |format: &str| minimum_ms(format).unwrap_or_default();
    let (timeout, window) = (min(TIMEOUT_FORMAT), min(WINDOW_FORMAT));
    options
        .should_validate_formats(true)
        .with_format(FORMAT, within_max)
        .with_format(TIMEOUT_FORMAT, move |s: &str| at_least(s, timeout))
        .with_format(WINDOW_FORMAT, move |s: &str| at_least(s, window))
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}
