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
    /// Sequences by name: ordered deliveries and waits that contacts are
    /// enrolled in. A name is an id, as an automation's is (letters, digits,
    /// `.`, `_`, `:` or `-`, at most 128): it becomes the event type
    /// `sequence.<name>` of its deliveries and a field of logs and metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ID_PATTERN }))]
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
    /// it can only send events. Must not be blank and must be unique across
    /// workspaces (both once surrounding whitespace is dropped, as serving does).
    #[schemars(extend("minLength" = 1))]
    pub publishable_key: EnvString,
}

/// A machine key: the access key is the JWT `kid`, the secret signs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineKey {
    /// Public identifier of the key (the JWT `kid`, and `iss = urn:meshes:m2m:<access_key>`).
    /// Must not be blank and must be unique across workspaces (both once
    /// surrounding whitespace is dropped, as serving does).
    #[schemars(extend("minLength" = 1))]
    pub access_key: EnvString,
    /// HMAC secret that signs the JWTs. Keep it in the environment:
    /// `${MESHES_SECRET_KEY}`. Must not be blank; surrounding whitespace is dropped.
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
    /// Event type that triggers the rule, matched exactly (e.g. `user.signup`):
    /// 1 to 200 characters, not blank, no control characters.
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME_PATTERN))]
    pub event: String,
    /// Name of the connection in `connections` that receives the delivery.
    pub connection: String,
    /// What to do at the destination: `action` plus the ids and values it needs.
    pub metadata: Metadata,
    /// Only events with this `resource` match (default: any): 1 to 200
    /// characters, not blank, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME_PATTERN))]
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

/// An id: of rules, automations, and the names of sequences (1 to 128
/// letters, digits, `.`, `_`, `:` or `-`, starting with a letter or digit).
pub const ID_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$";

/// Longest event type, resource or resource id ingest accepts (characters).
pub const MAX_NAME: usize = 200;

/// [`name_problem`] as a JSON Schema (ECMA-262) pattern: not only
/// whitespace, no control characters. The length is `minLength`/`maxLength`.
pub const NAME_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// Whitespace as ECMA-262 `\s` has it (the published patterns' sense):
/// Unicode white space plus U+FEFF, which Rust's `trim` keeps.
fn is_blank_char(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// Whether `s` is empty or only whitespace in that sense: what every
/// "not blank" check of names, tags and contact fields refuses.
pub fn is_blank(s: &str) -> bool {
    s.chars().all(is_blank_char)
}

/// Why `s` can never be an event type, resource or resource id (what
/// ingest refuses), if it cannot: the rules and triggers naming one are
/// checked by the same words, so a rule can never wait for an impossible event.
pub fn name_problem(s: &str) -> Option<String> {
    let n = s.chars().count();
    if is_blank(s) {
        Some("must not be empty".into())
    } else if n > MAX_NAME {
        Some(format!("is {n} characters long; expected at most {MAX_NAME}"))
    } else if s.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// A publishable or access key as serving compares it: without the
/// surrounding whitespace a value read from a file or a secret store often
/// ends in. The duplicate checks compare the same text, so two keys that
/// collide when serving never pass `validate`.
pub fn key_text(resolved: &str) -> &str {
    resolved.trim()
}

/// A YAML scalar used as an id or value, sent as the text written in the
/// file: `8` and `"8"` both send `8`, `0123` sends `0123` (never `123`),
/// `1.0` sends `1.0` and `no` sends `no`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    /// A string.
    String(String),
    /// An integer, sent as written in the file (`0123` sends `0123`).
    Integer(i64),
    /// A number with a fraction or an exponent, sent as written (`1.0` sends `1.0`).
    Float(f64),
    /// A boolean, sent as written (`true` sends `true`, `no` sends `no`).
    Bool(bool),
}

/// Equal when they send the same text: `8` read from a file is the text
/// `8`, the same value as the integer 8 built in code.
impl PartialEq for Scalar {
    fn eq(&self, other: &Self) -> bool {
        self.to_text() == other.to_text()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_of_only_ecma_whitespace_is_blank() {
        for blank in ["", " ", "\t", "\u{feff}", " \u{feff} ", "\u{3000}"] {
            assert_eq!(name_problem(blank).as_deref(), Some("must not be empty"), "{blank:?}");
        }
        assert_eq!(name_problem("a\u{feff}"), None);
    }
}
