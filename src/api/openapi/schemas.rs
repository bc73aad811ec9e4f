//! The JSON bodies of the API as Rust types, for the OpenAPI document.
//!
//! Handlers build their JSON in `render.rs`, `events.rs`, `resources.rs`
//! and `ops.rs`; these types describe exactly what those emit (field for
//! field, nullability included). `tests/openapi.rs` validates live
//! responses of every route against the generated schemas, so the two
//! cannot drift apart silently.

// Fields are read by schemars only, through the derives.
#![allow(dead_code)]

use crate::api::error::FieldError;
use crate::config::model::Outcome;
use crate::store::Status;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

pub use super::resources::*;

/// A timestamp: RFC 3339, UTC, milliseconds (`2026-01-31T09:30:00.000Z`).
#[derive(Serialize, JsonSchema)]
#[schemars(extend("format" = "date-time"))]
pub struct Timestamp(String);

/// A UUID v7.
#[derive(Serialize, JsonSchema)]
#[schemars(extend("format" = "uuid"))]
pub struct Uuid(String);

/// A name: 1–200 characters, not only whitespace, no control characters.
pub(super) const NAME: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

/// One event to ingest.
#[derive(serde::Deserialize, JsonSchema)]
#[schemars(example = example_event())]
pub struct NewEventBody {
    /// Event type, e.g. `user.signup` (1–200 characters, not blank, no
    /// control characters).
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub event: String,
    /// What the event is about (like `event`); defaults to `global`.
    #[schemars(length(min = 1, max = 200), regex(pattern = NAME))]
    pub resource: Option<String>,
    /// Id of the resource: a string (1–200 characters) or an integer
    /// within 64 bits written as one (`1000`, not `1000.0` or `1e3`).
    pub resource_id: Option<ResourceId>,
    /// The workspace; when given it must be the workspace of the key.
    pub workspace: Option<String>,
    /// Event data: an object with at least one field whose value is not
    /// null, `""`, `[]` or `{}`.
    #[schemars(extend("minProperties" = 1, "not" = { "additionalProperties": { "enum": [null, "", [], {}] } }))]
    pub payload: Map<String, Value>,
}

fn example_event() -> Value {
    serde_json::json!({ "event": "user.signup", "resource": "user", "resource_id": "42", "payload": { "email": "ada@example.com" } })
}

/// A resource id as sent.
#[derive(serde::Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ResourceId {
    /// Kept as written.
    Text(#[schemars(length(min = 1, max = 200), regex(pattern = NAME))] String),
    /// Stored as its decimal text. Only integers from -2^63 to 2^64-1
    /// written without a fraction or an exponent: other numbers (`1.5`,
    /// longer integers) and integers written as `1.0` or `1e3` (integers
    /// to JSON Schema) are refused with a 400, as their text would not be
    /// kept exactly as sent.
    Integer(#[schemars(schema_with = "integer_64")] i128),
}

fn integer_64(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "integer", "minimum": i64::MIN, "maximum": u64::MAX })
}

/// Body of `POST /events/bulk`: 1 to 100 events.
#[derive(serde::Deserialize, JsonSchema)]
#[schemars(transparent)]
pub struct BulkBody(#[schemars(length(min = 1, max = 100))] pub Vec<NewEventBody>);

/// Always `event`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The only value.
    Event,
}

/// An accepted event.
#[derive(Serialize, JsonSchema)]
pub struct Event {
    /// Event id (UUID v7).
    pub id: Uuid,
    /// Always `event`.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Event type.
    pub event: String,
    /// Workspace id.
    pub workspace: String,
    /// Resource (`global` unless given).
    pub resource: String,
    /// Resource id, if given.
    pub resource_id: Option<String>,
    /// `publishable_key` or the access key of the machine key that sent it.
    pub created_by: String,
    /// When it was accepted.
    pub created_at: Timestamp,
}

/// An event with its delivery state.
#[derive(Serialize, JsonSchema)]
pub struct EventDetail {
    /// The event.
    #[serde(flatten)]
    pub event: Event,
    /// Derived from its rule events.
    pub status: Status,
    /// Rules that matched it.
    pub total_rules: u64,
    /// Rule events delivered.
    pub completed_count: u64,
    /// Rule events failed for good.
    pub failed_count: u64,
    /// First attempt of any rule event.
    pub started_at: Option<Timestamp>,
    /// When the last rule event reached a final status.
    pub completed_at: Option<Timestamp>,
    /// One delivery per matching rule.
    pub rule_events: Vec<RuleEvent>,
}

/// One rule's delivery of an event.
#[derive(Serialize, JsonSchema)]
pub struct RuleEvent {
    /// The rule.
    pub rule_id: String,
    /// Connection name when the event was accepted.
    pub connection: String,
    /// Action when the event was accepted.
    pub action: String,
    /// `processing` while an attempt is in flight.
    pub status: Status,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending or retrying).
    pub next_attempt_at: Option<Timestamp>,
    /// Outcome of the last attempt.
    pub last_outcome: Option<Outcome>,
    /// HTTP status of the last attempt.
    pub last_http_status: Option<u16>,
    /// Why the last attempt failed, or why it was canceled.
    pub last_error: Option<String>,
    /// Sent with every attempt (same on retries) so receivers can deduplicate.
    pub delivery_id: String,
    /// When the event was accepted.
    pub created_at: Timestamp,
    /// First attempt.
    pub started_at: Option<Timestamp>,
    /// When it reached a final status.
    pub completed_at: Option<Timestamp>,
}

/// `{event}`.
#[derive(Serialize, JsonSchema)]
pub struct EventCreated {
    /// The accepted event.
    pub event: Event,
}

/// `{event}` with delivery state.
#[derive(Serialize, JsonSchema)]
pub struct EventFound {
    /// The event.
    pub event: EventDetail,
}

/// Result of a bulk request, in input order.
#[derive(Serialize, JsonSchema)]
pub struct BulkResult {
    /// Events accepted.
    pub count: u64,
    /// Events refused.
    pub error_count: u64,
    /// One per input event: the accepted event or why it was refused
    /// (params are prefixed with the index, e.g. `[2].payload`).
    pub records: Vec<BulkRecord>,
}

/// A bulk request whose every event was refused (400): the error every
/// 400 has, and the bulk result with each item's errors.
#[derive(Serialize, JsonSchema)]
pub struct BulkRefused {
    /// `all N events were refused`, and the first item's error.
    pub message: String,
    /// Details: `data` holds every item's invalid fields.
    pub error: ErrorDetail,
    /// Events accepted: 0.
    pub count: u64,
    /// Events refused: all of them.
    pub error_count: u64,
    /// One per input event: why it was refused.
    pub records: Vec<BulkRecord>,
}

/// One bulk item's result.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum BulkRecord {
    /// Accepted.
    Accepted(EventCreated),
    /// Refused.
    Refused(ErrorBody),
}

/// A page of events, newest first.
#[derive(Serialize, JsonSchema)]
pub struct EventPage {
    /// Records on this page.
    pub count: u64,
    /// The page size used.
    pub limit: u64,
    /// Pass as `cursor` for the next page; null on the last page. A page
    /// examines at most 5,000 events, so with a rare filter it can hold
    /// fewer than `limit` records, even none, and still have a cursor: page
    /// until this is null.
    pub next_cursor: Option<String>,
    /// The events.
    pub records: Vec<EventDetail>,
}

/// The payload as sent.
#[derive(Serialize, JsonSchema)]
pub struct PayloadBody {
    /// The event's payload object (null if it could not be read back).
    pub payload: Option<Map<String, Value>>,
}

/// A retry was scheduled.
#[derive(Serialize, JsonSchema)]
pub struct RetryScheduled {
    /// The rule event, due now.
    pub rule_event: Option<RuleEvent>,
}

/// What a cancel did.
#[derive(Serialize, JsonSchema)]
pub struct Canceled {
    /// Rule events canceled (finished ones are left as they are).
    pub canceled: u64,
    /// Rules whose attempt was already running: it is not recalled, and the
    /// delivery ends `completed` if that attempt delivers.
    pub in_flight: Vec<String>,
    /// The event after the cancel.
    pub event: EventDetail,
}

/// One delivery attempt.
#[derive(Serialize, JsonSchema)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// Wall time.
    pub duration_ms: u64,
    /// Outcome code.
    pub outcome: Outcome,
    /// HTTP status, if a response came back.
    pub http_status: Option<u16>,
    /// First 4 KiB of the response body.
    pub response_excerpt: Option<String>,
    /// Failure reason.
    pub error: Option<String>,
}

/// A list of `T`.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "{T}List")]
pub struct List<T> {
    /// Records.
    pub count: u64,
    /// The records.
    pub records: Vec<T>,
}

/// Every error: `{message, error: {name, message, data: [{param, msg}]}}`.
#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong, naming the field when one is at fault.
    pub message: String,
    /// Details.
    pub error: ErrorDetail,
}

/// Error details.
#[derive(Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// The kind of error.
    pub name: ErrorName,
    /// Same as the top-level `message`.
    pub message: String,
    /// One entry per invalid field (400 only; empty otherwise).
    pub data: Vec<FieldError>,
}

/// Error kinds, one per status code.
#[derive(Serialize, JsonSchema)]
#[allow(clippy::enum_variant_names)] // They are the wire names.
pub enum ErrorName {
    /// 400.
    ValidationError,
    /// 401.
    AuthenticationError,
    /// 403.
    PermissionError,
    /// 404.
    NotFoundError,
    /// 405.
    MethodNotAllowedError,
    /// 408.
    RequestTimeoutError,
    /// 409.
    ConflictError,
    /// 411.
    LengthRequiredError,
    /// 413.
    PayloadTooLargeError,
    /// 415.
    UnsupportedMediaTypeError,
    /// 425.
    TooEarlyError,
    /// 429.
    RateLimitError,
    /// 501.
    NotImplementedError,
    /// 502.
    BadGatewayError,
    /// 503.
    ServiceUnavailableError,
    /// 500 (a bug; never expected).
    InternalError,
}
