//! JSON shapes of the Meshes API.

use crate::clock::rfc3339;
use crate::store::{EventRecord, EventView, RuleEventRecord, Status};
use serde_json::{Value, json};

/// `{id, type: "event", event, workspace, resource, resource_id, created_by, created_at}`,
/// serialized straight from the record: the ingest path builds no `Value` tree.
#[derive(Debug, serde::Serialize)]
pub struct EventOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    event: &'a str,
    workspace: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    created_by: &'a str,
    created_at: String,
}

/// The wire form of an event record.
pub fn event_out(e: &EventRecord) -> EventOut<'_> {
    EventOut {
        id: &e.id,
        kind: "event",
        event: &e.event,
        workspace: &e.workspace,
        resource: &e.resource,
        resource_id: e.resource_id.as_deref(),
        created_by: &e.created_by,
        created_at: rfc3339(e.created_at),
    }
}

/// [`EventOut`] as a `Value`, for responses that add fields to it.
pub fn event(e: &EventRecord) -> Value {
    serde_json::to_value(event_out(e)).unwrap_or(Value::Null)
}

/// The event plus status, counts and its rule events.
pub fn event_detail(v: &EventView, in_flight: &dyn Fn(&str) -> bool) -> Value {
    let mut out = event(&v.event);
    let (completed, failed) = v.counts();
    let fields = json!({
        "status": v.status(in_flight).as_str(),
        "total_rules": v.rule_events.len(),
        "completed_count": completed,
        "failed_count": failed,
        "started_at": v.started_at().map(rfc3339),
        "completed_at": v.completed_at().map(rfc3339),
        "rule_events": v.rule_events.iter().map(|r| rule_event(r, in_flight(&r.rule_id))).collect::<Vec<_>>(),
    });
    if let (Some(o), Value::Object(extra)) = (out.as_object_mut(), fields) {
        o.extend(extra);
    }
    out
}

/// One rule event; `running` overlays `processing` while an attempt is in flight.
pub fn rule_event(r: &RuleEventRecord, running: bool) -> Value {
    let status = if running && !r.status.is_terminal() { Status::Processing } else { r.status };
    json!({
        "rule_id": r.rule_id,
        "connection": r.connection,
        "action": r.action,
        "status": status.as_str(),
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at.map(rfc3339),
        "last_outcome": r.last_outcome,
        "last_http_status": r.last_http_status,
        "last_error": r.last_error,
        "delivery_id": r.delivery_id,
        "created_at": rfc3339(r.created_at),
        "started_at": r.started_at.map(rfc3339),
        "completed_at": r.completed_at.map(rfc3339),
    })
}
