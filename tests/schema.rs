//! The generated schema: committed copy in sync, every field documented,
//! and the catalog consistent with the connection types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use meshes::catalog::{self, INTEGRATIONS};
use meshes::config::schema::{connection_variant, root_schema, schema_text};
use serde_json::Value;

#[test]
fn committed_schema_matches_generated() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/meshes.schema.json"))
            .unwrap();
    assert!(
        committed == schema_text(),
        "schema/meshes.schema.json is stale: run `cargo build && target/debug/meshes schema > schema/meshes.schema.json` and commit it"
    );
}

#[test]
fn schema_is_draft_2020_12_and_compiles() {
    let schema = root_schema();
    assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    jsonschema::draft202012::new(schema).unwrap();
}

/// Every property (and every definition) carries a description, because the
/// schema is the config reference editors show.
#[test]
fn every_field_is_documented() {
    let schema = root_schema();
    let mut undocumented = Vec::new();
    walk(schema, "#", &mut undocumented);
    for (name, def) in schema["$defs"].as_object().unwrap() {
        walk(def, &format!("#/$defs/{name}"), &mut undocumented);
    }
    assert!(undocumented.is_empty(), "fields without a `///` doc: {undocumented:#?}");
}

fn documented(node: &Value) -> bool {
    if node.get("description").is_some() {
        return true;
    }
    let target = node["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/"));
    target.is_some_and(|t| root_schema()["$defs"][t].get("description").is_some())
}

fn walk(node: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(props) = node["properties"].as_object() {
        for (name, prop) in props {
            // The `type` tag of a tagged enum is described by its variant.
            if name != "type" && !documented(prop) {
                out.push(format!("{at}/properties/{name}"));
            }
            walk(prop, &format!("{at}/properties/{name}"), out);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for (i, branch) in node[key].as_array().into_iter().flatten().enumerate() {
            walk(branch, &format!("{at}/{key}/{i}"), out);
        }
    }
    for key in ["items", "additionalProperties"] {
        if node[key].is_object() {
            walk(&node[key], &format!("{at}/{key}"), out);
        }
    }
}

#[test]
fn catalog_and_connection_types_describe_the_same_integrations() {
    let schema = root_schema();
    let variants: Vec<&str> = schema["$defs"]["ConnectionConfig"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["properties"]["type"]["const"].as_str().unwrap())
        .collect();
    let mut kinds: Vec<&str> = INTEGRATIONS.iter().map(|i| i.kind).collect();
    let mut sorted = variants.clone();
    sorted.sort_unstable();
    kinds.sort_unstable();
    assert_eq!(sorted, kinds);
    for kind in variants {
        assert!(connection_variant(schema, kind).is_some());
        let integration = catalog::integration(kind).unwrap();
        assert!(!integration.actions.is_empty(), "{kind} has no actions");
    }
}

#[test]
fn auth_fields_come_from_the_connection_types() {
    let hubspot = catalog::auth_fields("hubspot");
    let token = hubspot.iter().find(|f| f.name == "access_token").unwrap();
    assert!(token.secret && !token.required);
    assert!(!token.description.is_empty());
    let ac = catalog::auth_fields("activecampaign");
    let url = ac.iter().find(|f| f.name == "api_url").unwrap();
    assert!(url.required && !url.secret);
    assert!(ac.iter().any(|f| f.name == "api_key" && f.required && f.secret));
    assert!(catalog::auth_fields("log").iter().all(|f| !f.secret));
    assert!(catalog::auth_fields("nope").is_empty());
}

#[test]
fn action_enum_in_schema_is_the_catalog() {
    let metadata = &root_schema()["$defs"]["Metadata"]["properties"]["action"]["enum"];
    let names: Vec<&str> =
        metadata.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, catalog::all_action_names());
}

/// Types that send no contact have no `mapping` field: the schema, and the
/// fields `GET /api/v1/integrations` lists from it, do not offer one that
/// `validate` would always refuse.
#[test]
fn mapping_is_offered_only_by_contact_based_types() {
    let schema = root_schema();
    for integration in INTEGRATIONS {
        let kind = integration.kind;
        let variant = connection_variant(schema, kind).unwrap();
        let has = variant["properties"].get("mapping").is_some();
        let listed = catalog::auth_fields(kind).iter().any(|f| f.name == "mapping");
        let takes = !meshes::config::mapping::NO_CONTACT.contains(&kind);
        assert_eq!((has, listed), (takes, takes), "{kind}");
    }
}

#[test]
fn limits_validate_enforces_are_in_the_schema_for_editors() {
    let defs = &root_schema()["$defs"];
    let webhook = connection_variant(root_schema(), "webhook").unwrap();
    assert_eq!(webhook["properties"]["headers"]["maxProperties"], 5);
    for (def, field) in [("Workspace", "publishable_key"), ("MachineKey", "access_key")] {
        assert_eq!(defs[def]["properties"][field]["minLength"], 1, "{def}.{field}");
    }
    let openapi: Value = serde_json::from_str(&meshes::api::openapi::document_text()).unwrap();
    let api = &openapi["components"]["schemas"]["NewEventBody"]["properties"];
    for field in ["event", "resource"] {
        let rule = &defs["Rule"]["properties"][field];
        assert_eq!(rule["pattern"], api[field]["pattern"], "{field}");
        assert_eq!((&rule["minLength"], &rule["maxLength"]), (&Value::from(1), &Value::from(200)));
    }
}
