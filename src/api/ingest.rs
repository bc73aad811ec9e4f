//! Checking an ingest body and turning it into a [`NewEvent`].

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, FieldError};
use super::raw;
use crate::gateway::rules::{ConditionError, EventFacts};
use crate::gateway::runtime::WorkspaceRt;
use crate::store::writer::{BulkOutcome, BulkRequest, IdempotencyKey, KeyConflict};
use crate::store::{self, EventRecord, NewEvent, NewRuleEvent};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The validated fields of one event.
#[derive(Debug)]
pub struct EventInput<'a> {
    /// Event type.
    pub event: String,
    /// Resource.
    pub resource: String,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Payload object, as sent.
    pub payload: &'a RawValue,
}

/// One event object with its fields still raw, so each is checked on its
/// own (every problem reported) and the payload is never built into a tree.
/// Other fields are ignored.
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(borrow, default, deserialize_with = "raw::present")]
    event: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw::present")]
    resource: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw::present")]
    resource_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw::present")]
    workspace: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw::present")]
    payload: Option<&'a RawValue>,
}

/// Checks one event: `text` is one JSON value, read in a single pass. The
/// outer error is a syntax error (only possible for a body not checked
/// before); the inner one lists every problem, each naming its field.
pub fn parse_event<'a>(
    text: &'a str,
    workspace: &str,
) -> Result<Result<EventInput<'a>, Vec<FieldError>>, serde_json::Error> {
    if !text.trim_start().starts_with('{') {
        // (serde would read an array as the struct's fields in order.)
        serde_json::from_str::<&RawValue>(text)?;
        let found = raw::kind_of(text);
        return Ok(Err(vec![err("body", format!("expected a JSON object, found {found}"))]));
    }
    let obj: RawEvent<'a> = match serde_json::from_str(text) {
        Ok(obj) => obj,
        Err(e) if e.classify() != serde_json::error::Category::Data => return Err(e),
        // An object whose fields are fine one by one: a repeated field.
        Err(e) => return Ok(Err(vec![err("body", super::body::message(&e))])),
    };
    Ok(check_event(obj, workspace))
}

fn check_event<'a>(obj: RawEvent<'a>, workspace: &str) -> Result<EventInput<'a>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let event = name(obj.event, "event", true, &mut errors);
    let resource =
        name(obj.resource, "resource", false, &mut errors).unwrap_or_else(|| "global".to_string());
    let resource_id = match obj.resource_id {
        Some(n) if raw::is_number(n) => integer_id(n, &mut errors),
        other => name(other, "resource_id", false, &mut errors),
    };
    check_workspace(obj.workspace, workspace, &mut errors);
    let payload = payload(obj.payload, &mut errors);
    match (event, payload, errors.is_empty()) {
        (Some(event), Some(payload), true) => {
            Ok(EventInput { event, resource, resource_id, payload })
        }
        _ => Err(errors),
    }
}

/// `workspace`, when sent, must be the key's own (or null).
fn check_workspace(sent: Option<&RawValue>, workspace: &str, errors: &mut Vec<FieldError>) {
    let Some(w) = sent.filter(|w| !raw::is_null(w)) else { return };
    match raw::string(w) {
        Some(Ok(s)) if s == workspace => {}
        Some(Err(problem)) => errors.push(err("workspace", problem)),
        _ => errors.push(err(
            "workspace",
            format!("expected `{workspace}` (the workspace of your key), found {}", short(w)),
        )),
    }
}

/// The payload: an object with a filled field that reads back as JSON (a
/// problem deep inside it is named by its path, `payload.items[0]`).
fn payload<'a>(sent: Option<&'a RawValue>, errors: &mut Vec<FieldError>) -> Option<&'a RawValue> {
    let problem = match sent {
        Some(p) if p.get().starts_with('{') => match raw::check_object(p) {
            Ok(true) => return Some(p),
            Ok(false) => {
                err("payload", "expected at least one field with a non-empty value".into())
            }
            Err(bad) => err(&format!("payload{}", bad.path), bad.problem),
        },
        Some(other) => err("payload", format!("expected an object, found {}", raw::kind(other))),
        None => err(
            "payload",
            "is required (an object such as {\"email\": \"ada@example.com\"})".into(),
        ),
    };
    errors.push(problem);
    None
}

fn name(
    value: Option<&RawValue>,
    field: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value.filter(|v| !raw::is_null(v));
    let Some(value) = value else {
        if required {
            errors.push(err(field, "is required (a string such as \"user.signup\")".into()));
        }
        return None;
    };
    let s = match raw::string(value) {
        Some(Ok(s)) => s,
        Some(Err(problem)) => {
            errors.push(err(field, problem));
            return None;
        }
        None => {
            errors.push(err(field, format!("expected a string, found {}", raw::kind(value))));
            return None;
        }
    };
    match crate::config::model::name_problem(&s) {
        Some(problem) => {
            errors.push(err(field, problem));
            None
        }
        None => Some(s.into_owned()),
    }
}

/// A numeric `resource_id` as its decimal text, when that text is exactly
/// what was sent: an integer that fits in 64 bits (signed or unsigned).
/// Anything else would be stored as something the sender did not write: a
/// float's text is serde's (`1e3` becomes `1000.0`), a larger integer
/// loses digits (`1.2345678901234568e+29`), `1e400` has no value at all.
fn integer_id(n: &RawValue, errors: &mut Vec<FieldError>) -> Option<String> {
    let text = n.get();
    // JSON writes an integer one way only (no `+`, no leading zeros), so
    // the text as sent is its decimal text.
    if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
        return Some(text.to_string());
    }
    let found = shorten(text.to_string());
    errors.push(err(
        "resource_id",
        format!("expected a string, or an integer within 64 bits (-2^63 to 2^64-1), found {found}"),
    ));
    None
}

fn err(param: &str, msg: String) -> FieldError {
    FieldError { param: param.to_string(), msg }
}

/// `a string`, `a number`, … for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn short(v: &RawValue) -> String {
    // Re-serialized, so the message shows compact JSON whatever the spacing.
    let s = serde_json::from_str::<Value>(v.get())
        .map_or_else(|_| v.get().to_string(), |v| v.to_string());
    shorten(s)
}

/// At most 60 bytes of `s`, cut with an ellipsis.
fn shorten(s: String) -> String {
    if s.len() <= 60 {
        return s;
    }
    let cut = (0..=57).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &s[..cut])
}

/// Builds the record and one delivery per matching rule, all due now;
/// with the rules whose condition failed, to report once it is stored.
pub fn new_event(
    ws: &WorkspaceRt,
    input: EventInput,
    created_by: &str,
    now: u64,
    key: Option<IdempotencyKey>,
) -> (NewEvent, Vec<ConditionError>) {
    let facts = EventFacts {
        event: &input.event,
        resource: &input.resource,
        resource_id: input.resource_id.as_deref(),
        payload: input.payload,
    };
    let mut errors = Vec::new();
    let rules = ws
        .rules
        .matching(&facts, &mut errors)
        .iter()
        .filter_map(|r| {
            let conn = ws.connections.get(&r.rule.connection)?;
            Some(NewRuleEvent {
                rule_id: r.rule.id.clone(),
                connection: conn.name.clone(),
                action: r.rule.metadata.action.clone(),
                conn_key: conn.conn_key.clone(),
                delivery_id: uuid::Uuid::now_v7().to_string(),
                // The schedule's first entry delays the first attempt.
                due: now.saturating_add(first_delay_ms(&conn.retry)),
            })
        })
        .collect();
    let record = EventRecord {
        id: uuid::Uuid::now_v7().to_string(),
        workspace: ws.id.clone(),
        event: input.event,
        resource: input.resource,
        resource_id: input.resource_id,
        created_by: created_by.to_string(),
        created_at: now,
    };
    let event = NewEvent {
        record,
        payload: input.payload.get().as_bytes().to_vec(),
        idempotency_key: key,
        rules,
        inbox: ws.automations.wants_events(),
    };
    (event, errors)
}

/// Reads and checks the `Idempotency-Key` header: the key of the credential
/// `p` (a publishable key never replays, nor blocks, a machine key's request,
/// nor one machine key another's), bound to the request body `body`.
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
    p: &Principal,
    body: &[u8],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if s.is_empty() || s.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::field(
            "Idempotency-Key",
            &format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters, found {}", s.len()),
        ));
    }
    let scope = match p {
        Principal::Publishable { .. } => "pk".to_string(),
        Principal::Machine { access_key, .. } => format!("mk:{access_key}"),
    };
    Ok(Some(IdempotencyKey::new(s.to_string(), scope, body)))
}

/// The first attempt's delay: `schedule[0]` (0 when the schedule is empty).
pub fn first_delay_ms(policy: &crate::config::model::RetryPolicy) -> u64 {
    policy.schedule.first().map_or(0, |d| d.millis())
}

/// Stores a request's events (or answers their originals, for a key seen
/// before).
pub(super) async fn ingest(
    st: &AppState,
    batch: Vec<NewEvent>,
    now: u64,
) -> Result<Vec<store::Ingested>, ApiError> {
    let for_automations = batch.iter().any(|e| e.inbox);
    let t0 = tokio::time::Instant::now();
    let out = st.shared.store.writer().ingest_checked(batch, now).await;
    let out = landed(st, t0, for_automations, out)?;
    count_new(st, &out);
    Ok(out)
}

/// [`ingest`] for a bulk request with an `Idempotency-Key`: a repeat of the
/// whole request is answered as a whole.
pub(super) async fn ingest_bulk(
    st: &AppState,
    batch: Vec<NewEvent>,
    request: BulkRequest,
    now: u64,
) -> Result<BulkOutcome, ApiError> {
    if batch.is_empty() {
        // Every item refused: nothing to store, so the key is only looked
        // up (a commit per malformed request would be the client's to order).
        let earlier =
            super::reads::read(st, move |sh| sh.store.earlier_bulk(&request, now)).await?;
        return match earlier {
            None => Ok(BulkOutcome::Stored(Vec::new())),
            Some(Ok(reply)) => Ok(BulkOutcome::Replayed(reply)),
            Some(Err(conflict)) => Err(ApiError::Conflict(conflict.to_string())),
        };
    }
    let for_automations = batch.iter().any(|e| e.inbox);
    let t0 = tokio::time::Instant::now();
    let out = st.shared.store.writer().ingest_bulk(batch, request, now).await;
    let out = landed(st, t0, for_automations, out)?;
    if let BulkOutcome::Stored(stored) = &out {
        count_new(st, stored);
    }
    Ok(out)
}

/// The writer's answer as the API's, once the store has it.
fn landed<T>(
    st: &AppState,
    t0: tokio::time::Instant,
    for_automations: bool,
    out: Result<Result<T, KeyConflict>, store::StoreError>,
) -> Result<T, ApiError> {
    let out = out
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|conflict| ApiError::Conflict(conflict.to_string()))?;
    st.ingest_metrics.duration.record(t0.elapsed().as_secs_f64());
    st.shared.wake.notify_one();
    if for_automations {
        st.shared.inbox_wake.notify_one();
    }
    Ok(out)
}

/// `meshes_events_ingested_total` counts events stored, not replays.
fn count_new(st: &AppState, out: &[store::Ingested]) {
    let new = out.iter().filter(|d| !d.duplicate).count();
    st.ingest_metrics.ingested.increment(new as u64);
}

/// Reports the rule condition errors of each event (`errors`, in the
/// order of `stored`) that was stored: a replay's were reported with its
/// original.
pub(super) fn report_conditions(
    stored: &[store::Ingested],
    errors: impl IntoIterator<Item = Vec<ConditionError>>,
) {
    for (done, errors) in stored.iter().zip(errors) {
        if !done.duplicate {
            errors.iter().for_each(ConditionError::report);
        }
    }
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
