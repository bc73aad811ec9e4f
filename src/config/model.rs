//! The raw config file: serde + schemars types, one per YAML section.
//!
//! These types are what `meshes.yaml` parses into and what `meshes schema`
//! prints. They hold no cross-references: `validate` checks those and turns a
//! [`ConfigFile`] into a checked config.

use super::automation::{Automation, Sequence};
pub use super::delivery::{
    CircuitBreaker, DeliveryOverride, DeliverySettings, Outcome, RateLimit, RetryOverride,
    RetryPolicy,
};
use super::env::{EnvString, Secret};
use crate::adapters::ConnectionConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A meshes config file: one workspace, its connections, rules, automations
/// and sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "meshes configuration")]
pub struct ConfigFile {
    /// Config format version. Only `1` exists.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// The workspace this file configures. One file is one workspace; pass
    /// several files (or a directory) to serve several.
    pub workspace: Workspace,
    /// Server-side credentials: each signs short-lived HS256 JWTs the way the
    /// Meshes SDKs do. Required to read events or retry deliveries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machine_keys: Vec<MachineKey>,
    /// Destinations by name. Rules, automations and sequences refer to them
    /// by that name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// Routing: an event of type `event` is delivered to `connection` with `metadata.action`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Contact automations: a trigger, an optional condition and actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub automations: Vec<Automation>,
    /// Sequences by name: ordered deliveries and waits that contacts are enrolled in.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sequences: BTreeMap<String, Sequence>,
    /// Retry schedule, timeouts, concurrency and retention for every connection.
    #[serde(default, skip_serializing_if = "is_default")]
    pub delivery: DeliverySettings,
    /// How contacts are kept (the contacts API and automations).
    #[serde(default, skip_serializing_if = "is_default")]
    pub contacts: ContactSettings,
}

/// Contact settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ContactSettings {
    /// Also upsert a contact from every ingested event whose payload has an
    /// `email` (matched case-insensitively; `first_name`, `last_name`, `name`
    /// and `phone` are copied too), so apps that only send events still
    /// drive automations. Each value is checked as the contacts API checks
    /// it: an event whose `email` the API would refuse creates no contact
    /// (counted in `meshes_contact_upserts_from_events_refused_total`; the
    /// event is still delivered), and a name or phone it would refuse is not
    /// copied. Off by default: events stay events.
    ///
    /// Trust: events may be sent with the publishable key, which is public
    /// (it ships in browser code). With this on, anyone holding it can create
    /// contacts and overwrite `first_name`, `last_name`, `name` and `phone`
    /// of any contact whose email they know, and so fire `contact_updated`
    /// automations, while the contacts API itself takes a machine JWT only.
    /// Turn it on only when that is acceptable, for example when events come
    /// only from your servers.
    pub upsert_from_events: bool,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// The workspace: the tenant that events belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    /// Workspace id (a UUID), as in the hosted product's API.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub id: String,
    /// Human-readable name, shown in logs and the API.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Public key for browsers and mobile apps (`X-Meshes-Publishable-Key`):
    /// it can only send events. Must be unique across workspaces.
    pub publishable_key: EnvString,
}

/// A machine key: the access key is the JWT `kid`, the secret signs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineKey {
    /// Public identifier of the key (the JWT `kid`, and `iss = urn:meshes:m2m:<access_key>`).
    pub access_key: EnvString,
    /// HMAC secret that signs the JWTs. Keep it in the environment: `${MESHES_SECRET_KEY}`.
    pub secret: Secret,
    /// What this key is for (shown in logs, never used for auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A rule: deliver events of one type to one connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier, unique in the workspace; the API uses it to retry
    /// and inspect deliveries, so keep it when editing the rule.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"))]
    pub id: String,
    /// Event type that triggers the rule, matched exactly (e.g. `user.signup`).
    #[schemars(length(min = 1, max = 200))]
    pub event: String,
    /// Name of the connection in `connections` that receives the delivery.
    pub connection: String,
    /// What to do at the destination: `action` plus the ids and values it needs.
    pub metadata: Metadata,
    /// Only events with this `resource` match (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Only events with this `resource_id` match (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// CEL condition over `event`, `payload`, `resource` and `resource_id`;
    /// the rule matches only when it is true (e.g. `payload.amount > 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Field mapping for contact-based integrations: destination field →
    /// source and transforms. Overrides the connection's `mapping` field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<super::mapping::Mapping>,
    /// Set to `false` to keep the rule in the file without matching anything.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Free text for the people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Rule metadata, in the hosted product's shape so rules can be copied
/// between the two. Which fields an action needs is in the integration
/// catalog (`meshes validate` checks them; `GET /api/v1/integrations` lists them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The action the connection's integration performs.
    #[schemars(extend("enum" = crate::catalog::all_action_names()))]
    pub action: String,
    /// Target id: list, tag, group, segment, template, campaign, property,
    /// meeting, webinar or channel, depending on the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Scalar>,
    /// Value to set (`update_property`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Scalar>,
    /// Email subject (or override of the template's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Sender address (or override of the template's sender).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Email body (`send_email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Message template for chat actions, with `{{payload.field}}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Message title (Discord embeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Event name sent to the destination instead of the meshes event type (`track_event`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name_override: Option<String>,
}

/// Longest event type, resource or resource id ingest accepts (characters).
pub const MAX_NAME: usize = 200;

/// Why `s` can never be an event type, resource or resource id (what
/// ingest refuses), if it cannot: the rules and triggers naming one are
/// checked by the same words, so a rule can never wait for an impossible event.
pub fn name_problem(s: &str) -> Option<String> {
    let n = s.chars().count();
    if s.trim().is_empty() {
        Some("must not be empty".into())
    } else if n > MAX_NAME {
        Some(format!("is {n} characters long; expected at most {MAX_NAME}"))
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// A YAML scalar used as an id or value: `8` and `"8"` mean the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    String(String),
    /// An integer, kept as written.
    Integer(i64),
    /// A number with a fraction.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl Scalar {
    /// The value as the string sent to providers.
    pub fn to_text(&self) -> String {
        match self {
            Scalar::String(s) => s.clone(),
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}
