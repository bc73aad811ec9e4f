//! What callers hand the writer and what it answers.

use crate::store::DueKey;
use crate::store::records::{AttemptRecord, EventRecord};

/// An event to accept, with one delivery per matched rule.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The record (id already assigned).
    pub record: EventRecord,
    /// The raw JSON payload.
    pub payload: Vec<u8>,
    /// `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<super::IdempotencyKey>,
    /// The deliveries.
    pub rules: Vec<NewRuleEvent>,
    /// Whether automations must see it (queued in the automation inbox in
    /// the same transaction, so a crash cannot skip them).
    pub inbox: bool,
}

/// One delivery to create.
#[derive(Debug, Clone)]
pub struct NewRuleEvent {
    /// Rule id.
    pub rule_id: String,
    /// Connection name.
    pub connection: String,
    /// Action.
    pub action: String,
    /// `<workspace>/<connection>`.
    pub conn_key: String,
    /// Stable delivery id.
    pub delivery_id: String,
    /// First attempt due (Unix ms).
    pub due: u64,
}

/// The answer for one accepted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// The stored event (the original one for an idempotent repeat).
    pub event: EventRecord,
    /// True when an earlier event with the same `Idempotency-Key` was returned.
    pub duplicate: bool,
}

/// What happens after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Try again at this time (Unix ms).
    Retry {
        /// Due time.
        at: u64,
    },
    /// Try again at this time (Unix ms), the attempt just made not
    /// counting against the retry budget (a quota that resets then).
    Deferred {
        /// Due time.
        at: u64,
    },
    /// Try again at this time (Unix ms): the attempt failed for this
    /// process's own reason (out of file descriptors), or none was made (a
    /// cancellation waiting out the grace of the config in force), and it
    /// counts neither against the retry budget nor as a deferral.
    Postponed {
        /// Due time.
        at: u64,
    },
    /// Delivered.
    Completed,
    /// Terminal failure.
    Failed,
    /// The rule or connection left the config.
    Canceled {
        /// Why.
        reason: String,
    },
    /// The delivery's stored records will not decode: it fails with
    /// `internal_error` and is never due again (retrying cannot fix it).
    Unreadable {
        /// What would not decode.
        reason: String,
    },
}

/// The result of an attempt to record.
#[derive(Debug, Clone)]
pub struct AttemptDone {
    /// The due entry that was dispatched.
    pub key: DueKey,
    /// What happened (`None` when the delivery was canceled before an attempt was made).
    pub attempt: Option<AttemptRecord>,
    /// What to do next.
    pub next: Next,
    /// The worker's clock when it decided (Unix ms): when a delivery
    /// canceled with no attempt ended.
    pub at: u64,
}

/// Result of a manual retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Scheduled now.
    Scheduled,
    /// No such event or rule event.
    NotFound,
}
