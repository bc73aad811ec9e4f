//! Validates request bodies against a provider's OpenAPI document: the
//! operation's `application/json` request schema, with local
//! `#/components/...` references resolved against the document.

use serde_json::Value;
use std::path::Path;

/// Loads `tests/fixtures/provider-specs/<file>` (JSON or YAML).
pub fn load(file: &str) -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider-specs").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    if file.ends_with(".json") {
        serde_json::from_str(&text).unwrap()
    } else {
        serde_saphyr::from_str(&text).unwrap()
    }
}

/// Asserts `body` is valid for `method path`'s request body in `spec`.
pub fn check(spec: &Value, method: &str, path: &str, body: &Value) {
    let errors = violations(spec, method, path, body);
    assert!(errors.is_empty(), "{method} {path} body {body} violates the spec: {errors:#?}");
}

/// Why `body` is invalid for `method path` (empty when valid).
pub fn violations(spec: &Value, method: &str, path: &str, body: &Value) -> Vec<String> {
    let op = &spec["paths"][path][method];
    // The request body itself may be a reference (`#/components/requestBodies/…`).
    let mut body_spec = &op["requestBody"];
    if let Some(pointer) = body_spec["$ref"].as_str() {
        body_spec = spec.pointer(pointer.trim_start_matches('#')).unwrap();
    }
    let schema = body_spec["content"]["application/json"]["schema"].clone();
    assert!(schema.is_object(), "no JSON request body for {method} {path} in the spec");
    // The operation's schema as the root, with the document's components
    // beside it so `#/components/...` references resolve.
    let mut root = serde_json::json!({"allOf": [schema]});
    root["components"] = spec["components"].clone();
    let validator = jsonschema::validator_for(&root).unwrap();
    validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}
