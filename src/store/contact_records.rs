//! What the store keeps for automations: contacts, sequence enrolments and
//! the activity log.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A contact: standard fields, custom fields, tags and suppression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// UUID v7.
    pub id: String,
    /// Workspace id.
    pub workspace: String,
    /// The app's own id for this person (matched first on upsert).
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
    /// Everything else the app syncs (`plan`, `company`, …).
    pub custom_fields: Map<String, Value>,
    /// Tags, sorted and unique.
    pub tags: Vec<String>,
    /// When the contact was suppressed (Unix ms); email steps skip them.
    pub unsubscribed_at: Option<u64>,
    /// Why: `unsubscribed`, `bounced` or `complained`.
    pub suppression: Option<String>,
    /// Unix ms.
    pub created_at: u64,
    /// Unix ms.
    pub updated_at: u64,
}

impl ContactRecord {
    /// A new, empty contact.
    pub fn new(id: String, workspace: String, now: u64) -> Self {
        ContactRecord {
            id,
            workspace,
            external_id: None,
            email: None,
            first_name: None,
            last_name: None,
            name: None,
            phone: None,
            custom_fields: Map::new(),
            tags: Vec::new(),
            unsubscribed_at: None,
            suppression: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether the contact has this tag.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.binary_search_by(|t| t.as_str().cmp(tag)).is_ok()
    }
}

/// Where a contact is in a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Steps remain; `due` says when the next one runs.
    Active,
    /// Every step ran.
    Completed,
    /// `exit_when` held before a step.
    Exited,
    /// An `unenroll` action (or the sequence left the config).
    Unenrolled,
}

/// A contact's enrolment in one sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    /// Sequence name.
    pub sequence: String,
    /// State.
    pub status: EnrollmentStatus,
    /// Index of the next step to run.
    pub step: u32,
    /// When the next step runs (Unix ms), while active.
    pub due: Option<u64>,
    /// Unix ms.
    pub enrolled_at: u64,
    /// Unix ms.
    pub updated_at: u64,
    /// Why it ended, once it has; on an active enrolment, why its end is
    /// put off (`held: …`, a config in its grace lacking its steps).
    pub reason: Option<String>,
}

/// The trigger that started an automation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerFact {
    /// `contact_updated`, `tag_added`, …
    pub kind: String,
    /// The tag, event name, sequence or event type it concerns.
    pub name: Option<String>,
}

/// What one action did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// `add_tag`, `enroll`, `notify`, …
    pub action: String,
    /// Its argument: the tag, field, sequence, connection or event type.
    pub target: Option<String>,
    /// `done`, `no_change`, `skipped`, `failed`.
    pub outcome: String,
    /// Why, for anything but `done`.
    pub detail: Option<String>,
    /// The event created to carry a delivery (`notify`, `emit`, sequence steps).
    pub event_id: Option<String>,
}

/// One entry of a contact's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    /// UUID v7 (time ordered).
    pub id: String,
    /// Unix ms.
    pub at: u64,
    /// `automation`, `sequence_step`, `contact` or `loop_limit`.
    pub kind: String,
    /// The automation that ran.
    pub automation: Option<String>,
    /// The sequence a step belongs to.
    pub sequence: Option<String>,
    /// The step's index.
    pub step: Option<u32>,
    /// What started it.
    pub trigger: Option<TriggerFact>,
    /// The `when` (or `exit_when`) result; `None` when there was no condition.
    pub condition: Option<bool>,
    /// Why the condition could not be evaluated (it then counts as false).
    pub condition_error: Option<String>,
    /// Each action's outcome, in order.
    pub actions: Vec<ActionOutcome>,
    /// How deep in a chain of automations this run was (0: started by the API or an event).
    pub depth: u32,
    /// Free text: what a contact change did, why a step was skipped.
    pub note: Option<String>,
}
