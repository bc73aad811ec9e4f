//! Checking an ingest body and turning it into a [`NewEvent`].

use super::error::{ApiError, FieldError};
use crate::gateway::rules::EventFacts;
use crate::gateway::runtime::WorkspaceRt;
use crate::store::{EventRecord, NewEvent, NewRuleEvent};
use serde_json::{Map, Value};

/// Longest event type, resource or resource id.
const MAX_NAME: usize = 200;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The validated fields of one event.
#[derive(Debug)]
pub struct EventInput {
    /// Event type.
    pub event: String,
    /// Resource.
    pub resource: String,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Payload object.
    pub payload: Map<String, Value>,
}

/// Checks one event object; every problem is reported, each naming its field.
/// Takes the value so the payload moves into the event instead of being copied.
pub fn parse_event(v: Value, workspace: &str) -> Result<EventInput, Vec<FieldError>> {
    let mut obj = match v {
        Value::Object(obj) => obj,
        other => {
            return Err(vec![err(
                "body",
                format!("expected a JSON object, found {}", kind(&other)),
            )]);
        }
    };
    let mut errors = Vec::new();
    let event = name(&obj, "event", true, &mut errors);
    let resource =
        name(&obj, "resource", false, &mut errors).unwrap_or_else(|| "global".to_string());
    let resource_id = match obj.get("resource_id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => name(&obj, "resource_id", false, &mut errors),
    };
    match obj.get("workspace") {
        None | Some(Value::Null) => {}
        Some(Value::String(w)) if w == workspace => {}
        Some(other) => errors.push(err(
            "workspace",
            format!("expected `{workspace}` (the workspace of your key), found {}", short(other)),
        )),
    }
    let payload = match obj.remove("payload") {
        Some(Value::Object(p)) if p.values().any(non_empty) => Some(p),
        Some(Value::Object(_)) => {
            errors
                .push(err("payload", "expected at least one field with a non-empty value".into()));
            None
        }
        Some(other) => {
            errors.push(err("payload", format!("expected an object, found {}", kind(&other))));
            None
        }
        None => {
            errors.push(err(
                "payload",
                "is required (an object such as {\"email\": \"ada@example.com\"})".into(),
            ));
            None
        }
    };
    match (event, payload, errors.is_empty()) {
        (Some(event), Some(payload), true) => {
            Ok(EventInput { event, resource, resource_id, payload })
        }
        _ => Err(errors),
    }
}

fn name(
    obj: &Map<String, Value>,
    field: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) if !required => None,
        None | Some(Value::Null) => {
            errors.push(err(field, "is required (a string such as \"user.signup\")".into()));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(err(field, "must not be empty".into()));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_NAME => {
            errors.push(err(
                field,
                format!("is {} characters long; expected at most {MAX_NAME}", s.chars().count()),
            ));
            None
        }
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            errors.push(err(field, "must not contain control characters".into()));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(err(field, format!("expected a string, found {}", kind(other))));
            None
        }
    }
}

fn non_empty(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
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

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 60 {
        return s;
    }
    let cut = (0..=57).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
    format!("{}…", &s[..cut])
}

/// Builds the record and one delivery per matching rule, all due now.
pub fn new_event(
    ws: &WorkspaceRt,
    input: EventInput,
    created_by: &str,
    now: u64,
    key: Option<String>,
) -> NewEvent {
    let payload = Value::Object(input.payload);
    let facts = EventFacts {
        event: &input.event,
        resource: &input.resource,
        resource_id: input.resource_id.as_deref(),
        payload: &payload,
    };
    let rules = ws
        .rules
        .matching(&facts)
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
                due: now + first_delay_ms(&conn.retry),
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
    NewEvent {
        record,
        payload: serde_json::to_vec(&payload).unwrap_or_default(),
        idempotency_key: key,
        rules,
        inbox: ws.automations.wants_events(),
    }
}

/// Reads and checks the `Idempotency-Key` header.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let s = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if s.is_empty() || s.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::field(
            "Idempotency-Key",
            &format!("must be 1 to {MAX_IDEMPOTENCY_KEY} characters, found {}", s.len()),
        ));
    }
    Ok(Some(s.to_string()))
}

/// The first attempt's delay: `schedule[0]` (0 when the schedule is empty).
pub fn first_delay_ms(policy: &crate::config::model::RetryPolicy) -> u64 {
    policy.schedule.first().map_or(0, |d| d.get().as_millis() as u64)
}
