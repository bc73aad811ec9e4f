//! The integration catalog: for each integration, its actions, the rule
//! metadata each action needs and where live choices come from.
//!
//! It is the one source of truth for actions: the JSON Schema's
//! `metadata.action` enum, `meshes validate` and `GET /api/v1/integrations`
//! all read it. Auth fields are read from the connection types' own schema
//! ([`auth_fields`]), so they cannot drift from what the config accepts.

use schemars::JsonSchema;
use serde::Serialize;

/// One integration (`type:` value of a connection).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Integration {
    /// The `type:` value.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Display name.
    pub name: &'static str,
    /// How it authenticates, in words.
    pub auth: &'static str,
    /// What rules can ask it to do.
    pub actions: &'static [Action],
}

/// One action (`metadata.action`).
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Action {
    /// The `metadata.action` value.
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Metadata fields it reads besides `action`.
    pub metadata: &'static [Field],
    /// What `id` is chosen from in the account (`GET /connections/{id}/actions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_source: Option<&'static str>,
}

/// A metadata field an action reads.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub struct Field {
    /// Field name inside `metadata`.
    pub name: &'static str,
    /// When it must be present.
    pub requirement: Requirement,
    /// What it holds.
    pub description: &'static str,
}

/// When a metadata field must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// Always.
    Required,
    /// Never.
    Optional,
    /// When the connection uses a bot token rather than a webhook URL.
    RequiredInBotMode,
    /// Unless the connection sets a default of the same name (`from`).
    RequiredUnlessConnectionSets,
}

mod table;

pub use table::INTEGRATIONS;

/// Looks an integration up by its `type:` value.
pub fn integration(kind: &str) -> Option<&'static Integration> {
    INTEGRATIONS.iter().find(|i| i.kind == kind)
}

impl Integration {
    /// Looks one of its actions up by name.
    pub fn action(&self, name: &str) -> Option<&'static Action> {
        self.actions.iter().find(|a| a.name == name)
    }
    /// Its action names, in catalog order.
    pub fn action_names(&self) -> impl Iterator<Item = &'static str> {
        self.actions.iter().map(|a| a.name)
    }
}

/// Every action name of every integration, sorted and deduplicated: the
/// schema's enum for `metadata.action`.
pub fn all_action_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = INTEGRATIONS.iter().flat_map(|i| i.action_names()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Metadata field names any action reads (for unused-metadata warnings).
pub const METADATA_FIELDS: &[&str] =
    &["id", "value", "subject", "from", "body", "template", "title", "event_name_override"];

/// One credential or setting of an integration's connection, read from the
/// connection type's JSON Schema.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AuthField {
    /// Field name in the connection config.
    pub name: String,
    /// Must be present.
    pub required: bool,
    /// A credential (never returned by the API; give it as `${VAR}`).
    pub secret: bool,
    /// The field's documentation.
    pub description: String,
}

/// The config fields of integration `kind`, from the generated schema.
pub fn auth_fields(kind: &str) -> Vec<AuthField> {
    let schema = crate::config::schema::root_schema();
    let Some(variant) = crate::config::schema::connection_variant(schema, kind) else {
        return Vec::new();
    };
    let required: Vec<&str> = variant["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = variant["properties"].as_object() else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "type" | "delivery"))
        .map(|(name, prop)| AuthField {
            name: name.clone(),
            required: required.contains(&name.as_str()),
            secret: prop.to_string().contains("#/$defs/Secret"),
            description: prop["description"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}
