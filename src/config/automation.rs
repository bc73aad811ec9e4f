//! Automations (trigger → condition → actions) and sequences (steps and waits).

use super::duration::Duration;
use super::model::Metadata;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An automation: when `trigger` fires and `when` holds, run `actions` in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Automation {
    /// Stable identifier, unique in the workspace (shown in the contact activity log).
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"))]
    pub id: String,
    /// What starts the automation.
    pub trigger: Trigger,
    /// CEL condition over `contact`, `changes` and `event`
    /// (e.g. `changes.plan.from == "free" && changes.plan.to != "free"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// What to do, in order.
    #[schemars(length(min = 1))]
    pub actions: Vec<AutomationAction>,
    /// Set to `false` to keep the automation in the file without running it.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
    /// Free text for the people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// schemars documents `{ key: value }` variants on the branch; editors show
/// the key's own description on hover, so copy it there.
pub(crate) fn describe_keys(schema: &mut schemars::Schema) {
    let Some(branches) = schema.get_mut("oneOf").and_then(|b| b.as_array_mut()) else { return };
    for branch in branches {
        let Some(text) = branch.get("description").cloned() else { continue };
        let Some(props) = branch.get_mut("properties").and_then(|p| p.as_object_mut()) else {
            continue;
        };
        if let [(_, prop)] = props.iter_mut().collect::<Vec<_>>().as_mut_slice()
            && let Some(obj) = prop.as_object_mut()
        {
            obj.entry("description").or_insert(text);
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A trigger: a bare name (`contact_updated`) or a name with a filter
/// (`{ custom_event: feature_activated }`, `{ tag_added: vip }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Trigger {
    /// Fires for every occurrence of the kind.
    Any(TriggerKind),
    /// Fires only for the named tag, event, sequence or fields.
    Filtered(TriggerFilter),
}

/// What can start an automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A contact was created.
    ContactCreated,
    /// A contact's fields, custom fields or tags changed; `changes` holds old and new values.
    ContactUpdated,
    /// A tag was added to a contact.
    TagAdded,
    /// A tag was removed from a contact.
    TagRemoved,
    /// A custom event was tracked (`POST /events/track`).
    CustomEvent,
    /// A contact was enrolled in a sequence.
    SequenceEnrolled,
    /// An event was ingested (`POST /events`).
    Event,
}

/// A trigger narrowed to one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = describe_keys)]
pub enum TriggerFilter {
    /// An update that changed one of these fields (`plan`, `custom_fields.plan`, `tags`).
    ContactUpdated(Vec<String>),
    /// This tag was added.
    TagAdded(String),
    /// This tag was removed.
    TagRemoved(String),
    /// A tracked custom event with this `event_name`.
    CustomEvent(String),
    /// Enrolment in this sequence.
    SequenceEnrolled(String),
    /// An ingested event of this type.
    Event(String),
}

/// One automation action, written as a single-key map (`{ add_tag: vip }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(transform = describe_keys)]
pub enum AutomationAction {
    /// Add a tag to the contact (fires `tag_added`).
    AddTag(String),
    /// Remove a tag from the contact (fires `tag_removed`).
    RemoveTag(String),
    /// Set a contact field or custom field (fires `contact_updated`).
    SetField(SetField),
    /// Enroll the contact in a sequence (no effect when already enrolled).
    Enroll(String),
    /// Stop the contact's enrolment in a sequence.
    Unenroll(String),
    /// Deliver through a connection, as a rule would.
    Notify(Notify),
    /// Inject an event that rules then route.
    Emit(Emit),
}

/// `set_field` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetField {
    /// Field name: a standard field (`first_name`, …) or `custom_fields.<key>`.
    pub field: String,
    /// New value; `{{contact.field}}` templates are expanded. A standard
    /// field takes text (a number or boolean is written as its text) and
    /// `null` clears it; a custom field takes any JSON value and `null`
    /// removes it. A custom field the contact does not have yet is skipped
    /// (and the skip recorded) once the contact keeps 500.
    pub value: serde_json::Value,
}

/// `notify` arguments: a connection and rule-style metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Name of the connection to deliver through.
    pub connection: String,
    /// Action and its metadata, as in a rule.
    pub metadata: Metadata,
}

/// `emit` arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Emit {
    /// Event type to inject (e.g. `contact.upgraded`).
    #[schemars(length(min = 1, max = 200))]
    pub event: String,
    /// Event payload; `{{contact.email}}`-style templates are expanded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub payload: BTreeMap<String, serde_json::Value>,
}

/// A sequence: steps run in order for each enrolled contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    /// Deliveries and waits, in order: at most 100 (a sequence is a drip of
    /// messages, and one contact's due steps run in one writer transaction).
    #[schemars(length(min = 1, max = 100))]
    pub steps: Vec<Step>,
    /// CEL condition over `contact`, checked before each step: when true the
    /// contact leaves the sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_when: Option<String>,
    /// Free text for the people reading the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One sequence step: a wait or a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Step {
    /// Pause before the next step.
    Wait(WaitStep),
    /// Deliver through a connection.
    Deliver(Box<Notify>),
}

/// `{ wait: 3d }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// How long to wait, e.g. `3d`.
    pub wait: Duration,
}
