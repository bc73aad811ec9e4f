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

/// Appends [`EventOut`] as JSON, byte for byte what serde writes for it
/// ([`crate::store::json`]): every ingest answers with one per event.
pub fn write_event(e: &EventRecord, out: &mut Vec<u8>) {
    crate::store::json::Obj::new(out)
        .str("id", &e.id)
        .str("type", "event")
        .str("event", &e.event)
        .str("workspace", &e.workspace)
        .str("resource", &e.resource)
        .str_or_null("resource_id", e.resource_id.as_deref())
        .str("created_by", &e.created_by)
        .str("created_at", &rfc3339(e.created_at))
        .end();
}

/// `{"event": …}`, the answer to an ingest, appended to `out`.
pub fn write_created(e: &EventRecord, out: &mut Vec<u8>) {
    crate::store::json::Obj::new(out).raw("event", |out| write_event(e, out)).end();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn written_events_match_serde(
            id in any::<String>(), event in "[a-z.\"\\\n]{0,20}", resource in any::<String>(),
            resource_id in proptest::option::of(any::<String>()), created_at in 0u64..4_102_444_800_000,
        ) {
            let e = EventRecord {
                id, workspace: "ws".into(), event, resource, resource_id,
                created_by: "publishable_key".into(), created_at,
            };
            let mut out = Vec::new();
            write_created(&e, &mut out);
            let expected = serde_json::to_vec(&json!({ "event": event_out(&e) })).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
        }
    }
}
