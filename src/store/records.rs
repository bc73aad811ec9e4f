//! What the store keeps, one serde type per table value.

use crate::config::model::Outcome;
use serde::{Deserialize, Serialize};

/// Delivery status of a rule event (and, derived, of an event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its first attempt.
    Pending,
    /// An attempt is in flight (never stored: overlaid from the engine's in-flight set).
    Processing,
    /// Failed at least once; another attempt is scheduled.
    Retrying,
    /// Delivered.
    Completed,
    /// Out of attempts, or a permanent failure.
    Failed,
    /// Canceled by the API or because its rule left the config.
    Canceled,
}

impl Status {
    /// Completed, failed and canceled deliveries never change on their own.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Canceled)
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Retrying => "retrying",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }
    /// Every status.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Processing,
        Status::Retrying,
        Status::Completed,
        Status::Failed,
        Status::Canceled,
    ];

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

// Stored records leave out empty optional fields: a pending delivery is
// ~100 bytes smaller, and every byte is written (and fsync'd) per event.

/// An accepted event (its payload lives in its own table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// UUID v7.
    pub id: String,
    /// Workspace id.
    pub workspace: String,
    /// Event type.
    pub event: String,
    /// Resource (`global` by default).
    pub resource: String,
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Credential that sent it (`publishable_key` or a machine access key).
    pub created_by: String,
    /// Unix ms.
    pub created_at: u64,
}

/// One rule's delivery of one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleEventRecord {
    /// The rule id.
    pub rule_id: String,
    /// Connection name at ingest.
    pub connection: String,
    /// Action at ingest.
    pub action: String,
    /// `<workspace>/<connection>`: the due-index partition.
    pub conn_key: String,
    /// Stored status (never `processing`).
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts made before the last manual retry; the schedule restarts from there.
    pub budget_start: u32,
    /// Quota resets waited for since the last manual retry (absent: none,
    /// as in records written before it was counted).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferrals: u32,
    /// When the next attempt is due (Unix ms), while pending or retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    /// Outcome of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<Outcome>,
    /// HTTP status of the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_http_status: Option<u16>,
    /// Why the last attempt failed, or why it was canceled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Stable id sent with every attempt.
    pub delivery_id: String,
    /// Unix ms.
    pub created_at: u64,
    /// First attempt (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Reached a terminal status (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
}

/// One attempt, as the attempts API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1-based attempt number.
    pub attempt: u32,
    /// Unix ms.
    pub started_at: u64,
    /// Wall time of the attempt.
    pub duration_ms: u64,
    /// Outcome code.
    pub outcome: Outcome,
    /// HTTP status, if a response came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// First 4 KiB of the response body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_excerpt: Option<String>,
    /// Failure reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one delivery attempt reads (`Store::attempt_view`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptView {
    /// The event.
    pub event: EventRecord,
    /// The delivery being attempted.
    pub rule_event: RuleEventRecord,
    /// The raw JSON payload.
    pub payload: Vec<u8>,
}

/// An event as the API shows it: the record, its rule events and the derived status.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    /// The event.
    pub event: EventRecord,
    /// Its deliveries, one per matched rule.
    pub rule_events: Vec<RuleEventRecord>,
}

impl EventView {
    /// The event's status, derived from its rule events (`in_flight` tells
    /// which rule ids have an attempt running right now).
    pub fn status(&self, in_flight: impl Fn(&str) -> bool) -> Status {
        let statuses: Vec<Status> = self
            .rule_events
            .iter()
            .map(|r| {
                if !r.status.is_terminal() && in_flight(&r.rule_id) {
                    Status::Processing
                } else {
                    r.status
                }
            })
            .collect();
        let any = |s: Status| statuses.contains(&s);
        if statuses.iter().all(|s| s.is_terminal()) {
            return match () {
                _ if any(Status::Failed) => Status::Failed,
                _ if !statuses.is_empty() && statuses.iter().all(|s| *s == Status::Canceled) => {
                    Status::Canceled
                }
                _ => Status::Completed,
            };
        }
        // Partly delivered counts as processing; a canceled sibling is not progress.
        let progressed = any(Status::Completed) || any(Status::Failed);
        if any(Status::Processing) || (any(Status::Pending) && progressed) {
            return Status::Processing;
        }
        if any(Status::Retrying) { Status::Retrying } else { Status::Pending }
    }
    /// Rule events that completed, failed.
    pub fn counts(&self) -> (usize, usize) {
        let n = |s: Status| self.rule_events.iter().filter(|r| r.status == s).count();
        (n(Status::Completed), n(Status::Failed))
    }
    /// The first attempt of any rule event.
    pub fn started_at(&self) -> Option<u64> {
        self.rule_events.iter().filter_map(|r| r.started_at).min()
    }
    /// When the last rule event reached a terminal status, once all have.
    pub fn completed_at(&self) -> Option<u64> {
        if !self.rule_events.iter().all(|r| r.status.is_terminal()) {
            return None;
        }
        self.rule_events.iter().filter_map(|r| r.completed_at).max().or(Some(self.event.created_at))
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
