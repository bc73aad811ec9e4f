//! The JSON bodies of the contacts API, for the OpenAPI document. What is
//! read mirrors `api/contacts/input.rs`; what is written mirrors
//! `api/contacts/output.rs` (`tests/contacts_api.rs` validates live
//! responses against these).

// Fields are read by schemars only, through the derives.
#![allow(dead_code)]

use super::schemas::{NAME, Timestamp, Uuid};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `local@domain`, no whitespace or control characters.
const EMAIL: &str = r"^[^\s\x00-\x1f\x7f-\x9f]+@[^\s@\x00-\x1f\x7f-\x9f]+$";

/// At least one identifier, as a string.
fn identified() -> Value {
    serde_json::json!([
        { "required": ["external_id"], "properties": { "external_id": { "type": "string" } } },
        { "required": ["email"], "properties": { "email": { "type": "string" } } },
    ])
}

/// Body of `POST /contacts/upsert`. The contact is matched by `external_id`
/// first, then by `email` (case-insensitive); 409 when the two name
/// different contacts. Omitted fields are kept; `null` clears a standard
/// field or removes a custom field.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = identified()), example = example_upsert())]
pub struct UpsertBody {
    /// The app's own id for the person (1–200 characters).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub external_id: Option<String>,
    /// Email address (at most 254 characters).
    #[schemars(length(min = 3, max = 254), regex(pattern = EMAIL))]
    pub email: Option<String>,
    /// First name (1–200 characters).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub first_name: Option<String>,
    /// Last name (1–200 characters).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub last_name: Option<String>,
    /// Full name (1–200 characters).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub name: Option<String>,
    /// Phone number (1–50 characters).
    #[schemars(length(min = 1, max = 50), regex(pattern = NAME))]
    pub phone: Option<String>,
    /// Merged into the contact's custom fields: at most 100 keys of 1–100
    /// characters; a `null` value removes the key, omitted keys are kept. A
    /// contact keeps at most 500: a request that adds keys past that is a 400.
    /// Each value is at most 16 KiB as JSON and the whole contact 256 KiB
    /// (a 400 naming `custom_fields.<key>` or `custom_fields`). Keys may not
    /// be standard or reserved names (`email`, `external_id`, `first_name`,
    /// `last_name`, `name`, `phone`, `id`, `contact_id`, `tags`,
    /// `unsubscribed`, `properties`, `custom_fields`, `created_at`,
    /// `updated_at`), except with `null` to remove one stored before.
    #[schemars(extend("maxProperties" = 100, "propertyNames" = { "minLength": 1, "maxLength": 100, "pattern": NAME }))]
    pub custom_fields: Option<Map<String, Value>>,
    /// Tags to add (never removes any): at most 50. A contact keeps at most
    /// 1,000: a request that adds tags past that is a 400 on `tag_names`.
    #[schemars(length(max = 50))]
    pub tag_names: Option<Vec<Tag>>,
}

fn example_upsert() -> Value {
    serde_json::json!({ "external_id": "user_42", "email": "ada@example.com", "first_name": "Ada",
        "custom_fields": { "plan": "pro" }, "tag_names": ["beta"] })
}

/// A tag: 1–100 characters, not blank, no control characters.
#[derive(Deserialize, JsonSchema)]
#[schemars(transparent)]
pub struct Tag(#[schemars(length(min = 1, max = 100), regex(pattern = NAME))] pub String);

/// Body of `POST /contacts/{id}/tags`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// Tags to add: 1 to 50. A contact keeps at most 1,000: a request that
    /// adds tags past that is a 400 on `tag_names`.
    #[schemars(length(min = 1, max = 50))]
    pub tag_names: Vec<Tag>,
}

/// Body of `POST /events/track`: the contact is named by `external_id`
/// (matched first) or `email`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = identified()))]
pub struct TrackBody {
    /// The event's name, as `custom_event` triggers match it (1–200 characters).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub event_name: String,
    /// The contact's email.
    #[schemars(length(min = 3, max = 254), regex(pattern = EMAIL))]
    pub email: Option<String>,
    /// The contact's external id.
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub external_id: Option<String>,
    /// Event data, `event.properties` in conditions (`{}` when omitted).
    pub properties: Option<Map<String, Value>>,
}

/// Why a contact is suppressed.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Asked not to be emailed.
    Unsubscribed,
    /// Mail to the address bounced.
    Bounced,
    /// Marked a message as spam.
    Complained,
}

/// Optional body of `POST /contacts/{id}/unsubscribe`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeBody {
    /// `unsubscribed` when omitted.
    pub reason: Option<Reason>,
}

/// A contact.
#[derive(Serialize, JsonSchema)]
pub struct Contact {
    /// Contact id (UUID v7).
    pub id: Uuid,
    /// The app's own id.
    pub external_id: Option<String>,
    /// Email address as given (matched case-insensitively).
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Everything else the app syncs.
    pub custom_fields: Map<String, Value>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Whether email steps and notifications skip the contact.
    pub unsubscribed: bool,
    /// When it was suppressed.
    pub unsubscribed_at: Option<Timestamp>,
    /// Why it was suppressed.
    pub suppression: Option<Reason>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// `{contact}`.
#[derive(Serialize, JsonSchema)]
pub struct ContactFound {
    /// The contact.
    pub contact: Contact,
}

/// A contact with its sequence enrolments.
#[derive(Serialize, JsonSchema)]
pub struct ContactDetail {
    /// The contact.
    #[serde(flatten)]
    pub contact: Contact,
    /// One per sequence it was ever enrolled in.
    pub enrollments: Vec<Enrollment>,
}

/// `{contact}` with enrolments.
#[derive(Serialize, JsonSchema)]
pub struct ContactDetailFound {
    /// The contact.
    pub contact: ContactDetail,
}

/// Where an enrolment stands.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentState {
    /// Steps remain; `next_step_at` says when the next one runs. With a
    /// `reason` (`held: …`) its end is put off: a config reloaded under 10 s
    /// ago lacks the sequence or its remaining steps, and the config in
    /// force at `next_step_at` decides.
    Active,
    /// Every step ran.
    Completed,
    /// `exit_when` held before a step.
    Exited,
    /// An `unenroll` action, or the sequence left the config.
    Unenrolled,
}

/// A contact's enrolment in one sequence.
#[derive(Serialize, JsonSchema)]
pub struct Enrollment {
    /// Sequence name.
    pub sequence: String,
    /// State.
    pub status: EnrollmentState,
    /// Index of the next step to run (0-based).
    pub step: u32,
    /// When the next step runs, while active.
    pub next_step_at: Option<Timestamp>,
    /// When the contact was enrolled.
    pub enrolled_at: Timestamp,
    /// Why it ended, once it has; on an active enrolment, why its end is put off.
    pub reason: Option<String>,
}

/// The answer to `POST /events/track`.
#[derive(Serialize, JsonSchema)]
pub struct Tracked {
    /// The contact the event was recorded for.
    pub contact_id: Uuid,
    /// As sent.
    pub event_name: String,
    /// When it was recorded (its automations ran and were committed).
    pub tracked_at: Timestamp,
}

/// One suppressed contact.
#[derive(Serialize, JsonSchema)]
pub struct Suppressed {
    /// Contact id.
    pub id: Uuid,
    /// Email address.
    pub email: Option<String>,
    /// The app's own id.
    pub external_id: Option<String>,
    /// Why.
    pub reason: Option<Reason>,
    /// When.
    pub unsubscribed_at: Timestamp,
}

/// A page of the suppression list, oldest first.
#[derive(Serialize, JsonSchema)]
pub struct SuppressedPage {
    /// Only contacts suppressed at or before this instant are listed (echoed,
    /// or the time of the request): pass it again with `cursor`.
    pub as_of: Timestamp,
    /// Records on this page.
    pub count: u64,
    /// The page size used.
    pub limit: u64,
    /// Pass as `cursor` (with the same `as_of`) for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The suppressed contacts.
    pub records: Vec<Suppressed>,
}

/// What started an automation run.
#[derive(Serialize, JsonSchema)]
pub struct ActivityTrigger {
    /// `contact_created`, `contact_updated`, `tag_added`, `tag_removed`,
    /// `custom_event`, `sequence_enrolled` or `event`.
    pub kind: String,
    /// The tag, event name, sequence or event type it concerns.
    pub name: Option<String>,
}

/// What one action did.
#[derive(Serialize, JsonSchema)]
pub struct ActivityAction {
    /// `add_tag`, `remove_tag`, `set_field`, `enroll`, `unenroll`, `notify`, `emit`, or a step's action.
    pub action: String,
    /// Its argument: the tag, field, sequence, connection or event type.
    pub target: Option<String>,
    /// `done`, `no_change`, `skipped` or `failed`.
    pub outcome: String,
    /// Why, for anything but `done`.
    pub detail: Option<String>,
    /// The event created to carry a delivery (`notify`, `emit`, sequence steps).
    pub event_id: Option<String>,
}

/// One entry of a contact's activity log: an automation run or a sequence step.
#[derive(Serialize, JsonSchema)]
pub struct Activity {
    /// Entry id (UUID v7, time ordered).
    pub id: Uuid,
    /// When it happened.
    pub at: Timestamp,
    /// `automation`, `sequence_step`, `contact` or `loop_limit`.
    pub kind: String,
    /// The automation that ran.
    pub automation: Option<String>,
    /// The sequence a step belongs to.
    pub sequence: Option<String>,
    /// The step's index.
    pub step: Option<u32>,
    /// What started it.
    pub trigger: Option<ActivityTrigger>,
    /// The `when` (or `exit_when`) result; null when there was no condition.
    pub condition: Option<bool>,
    /// Why the condition could not be evaluated (it then counted as false).
    pub condition_error: Option<String>,
    /// Each action's outcome, in order.
    pub actions: Vec<ActivityAction>,
    /// How deep in a chain of automations the run was (0: started by the API or an event).
    pub depth: u32,
    /// Free text: what a contact change did, why a step was skipped.
    pub note: Option<String>,
}

/// A page of a contact's activity, newest first.
#[derive(Serialize, JsonSchema)]
pub struct ActivityPage {
    /// Records on this page.
    pub count: u64,
    /// The page size used.
    pub limit: u64,
    /// Pass as `cursor` for older entries; null on the last page.
    pub next_cursor: Option<String>,
    /// The entries.
    pub records: Vec<Activity>,
}
