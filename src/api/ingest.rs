//! Checking an ingest body and turning it into a [`NewEvent`].

use super::auth::Principal;
use super::error::{ApiError, FieldError};
use super::raw;
use crate::gateway::rules::EventFacts;
use crate::gateway::runtime::WorkspaceRt;
use crate::store::writer::IdempotencyKey;
use crate::store::{EventRecord, NewEvent, NewRuleEvent};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Longest event type, resource or resource id.
const MAX_NAME: usize = 200;
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
    match obj.workspace {
        None => {}
        Some(w) if raw::is_null(w) || raw::string(w).is_some_and(|s| s == workspace) => {}
        Some(other) => errors.push(err(
            "workspace",
            format!("expected `{workspace}` (the workspace of your key), found {}", short(other)),
        )),
    }
    let payload = match obj.payload {
        Some(p) if p.get().starts_with('{') && raw::has_filled_field(p) => Some(p),
        Some(p) if p.get().starts_with('{') => {
            errors
                .push(err("payload", "expected at least one field with a non-empty value".into()));
            None
        }
        Some(other) => {
            errors.push(err("payload", format!("expected an object, found {}", raw::kind(other))));
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
    let Some(s) = raw::string(value) else {
        errors.push(err(field, format!("expected a string, found {}", raw::kind(value))));
        return None;
    };
    if s.trim().is_empty() {
        errors.push(err(field, "must not be empty".into()));
    } else if s.chars().count() > MAX_NAME {
        errors.push(err(
            field,
            format!("is {} characters long; expected at most {MAX_NAME}", s.chars().count()),
        ));
    } else if s.chars().any(char::is_control) {
        errors.push(err(field, "must not contain control characters".into()));
    } else {
        return Some(s.into_owned());
    }
    None
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

/// Builds the record and one delivery per matching rule, all due now.
pub fn new_event(
    ws: &WorkspaceRt,
    input: EventInput,
    created_by: &str,
    now: u64,
    key: Option<IdempotencyKey>,
) -> NewEvent {
    let facts = EventFacts {
        event: &input.event,
        resource: &input.resource,
        resource_id: input.resource_id.as_deref(),
        payload: input.payload,
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
    NewEvent {
        record,
        payload: input.payload.get().as_bytes().to_vec(),
        idempotency_key: key,
        rules,
        inbox: ws.automations.wants_events(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<EventInput<'_>, Vec<FieldError>> {
        parse_event(text, "ws-1").unwrap()
    }

    fn errors(text: &str) -> Vec<(String, String)> {
        check(text).unwrap_err().into_iter().map(|e| (e.param, e.msg)).collect()
    }

    #[test]
    fn fields_are_read_from_the_raw_text_and_the_payload_is_kept_as_sent() {
        let text = r#"{ "event": "user.\u0073ignup", "resource": "user", "resource_id": 42,
            "workspace": "ws-1", "extra": [1, 2], "payload": { "email": "ada@example.com" } }"#;
        let e = check(text).unwrap();
        assert_eq!((e.event.as_str(), e.resource.as_str()), ("user.signup", "user"));
        assert_eq!(e.resource_id.as_deref(), Some("42"));
        assert_eq!(e.payload.get(), r#"{ "email": "ada@example.com" }"#);
        let e =
            check(r#"{"event": "a", "resource_id": -9223372036854775808, "payload": {"n": 0}}"#);
        assert_eq!(e.unwrap().resource_id.as_deref(), Some("-9223372036854775808"));
        let e =
            check(r#"{"event": "a", "resource_id": 18446744073709551615, "payload": {"n": 0}}"#);
        assert_eq!(e.unwrap().resource_id.as_deref(), Some("18446744073709551615"));
    }

    #[test]
    fn numeric_resource_ids_are_refused_unless_kept_exactly() {
        let want = "expected a string, or an integer within 64 bits (-2^63 to 2^64-1), found";
        let long = "1".repeat(100);
        for (sent, shown) in [
            ("1e400", "1e400".to_string()),
            ("123456789012345678901234567890", "123456789012345678901234567890".to_string()),
            ("18446744073709551616", "18446744073709551616".to_string()),
            ("-9223372036854775809", "-9223372036854775809".to_string()),
            ("1e3", "1e3".to_string()),
            ("4.5", "4.5".to_string()),
            (long.as_str(), format!("{}…", &long[..57])),
        ] {
            let got = errors(&format!(
                r#"{{"event": "a", "resource_id": {sent}, "payload": {{"n": 0}}}}"#
            ));
            assert_eq!(got, [("resource_id".to_string(), format!("{want} {shown}"))], "{sent}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let got = errors(
            r#"{"event": 5, "resource": "", "workspace": {"id": "other"}, "payload": null}"#,
        );
        let want = [
            ("event", "expected a string, found a number"),
            ("resource", "must not be empty"),
            ("workspace", r#"expected `ws-1` (the workspace of your key), found {"id":"other"}"#),
            ("payload", "expected an object, found null"),
        ];
        let want: Vec<(String, String)> =
            want.iter().map(|(p, m)| ((*p).to_string(), (*m).to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn payloads_must_be_objects_with_a_filled_field() {
        let missing = errors(r#"{"event": "a"}"#);
        assert_eq!(missing[0].0, "payload");
        assert!(missing[0].1.starts_with("is required"), "{missing:?}");
        for empty in [r#"{}"#, r#"{"a": "", "b": null, "c": []}"#] {
            let got = errors(&format!(r#"{{"event": "a", "payload": {empty}}}"#));
            assert_eq!(got[0].1, "expected at least one field with a non-empty value");
        }
        let got = errors(r#"{"event": "a", "payload": [1]}"#);
        assert_eq!(got[0].1, "expected an object, found an array");
    }

    #[test]
    fn syntax_errors_are_told_apart_from_field_problems() {
        let e = parse_event(r#"{"event": "a", "payload": {"n": 1}"#, "ws-1").unwrap_err();
        assert_ne!(e.classify(), serde_json::error::Category::Data);
        assert!(parse_event(r#"[1, 2"#, "ws-1").is_err());
        assert!(parse_event(r#"{"event": "a"} x"#, "ws-1").is_err());
        assert_eq!(
            errors("  \"text\""),
            [("body".into(), "expected a JSON object, found a string".into())]
        );
    }

    #[test]
    fn non_objects_and_repeated_fields_are_refused() {
        assert_eq!(
            errors("[1]"),
            [("body".into(), "expected a JSON object, found an array".into())]
        );
        let got = errors(r#"{"event": "a", "event": "b", "payload": {"n": 1}}"#);
        assert_eq!(got, [("body".to_string(), "duplicate field `event`".to_string())]);
        let long = "x".repeat(MAX_NAME + 1);
        let got = errors(&format!(r#"{{"event": "{long}", "payload": {{"n": 1}}}}"#));
        assert_eq!(
            got[0].1,
            format!("is {} characters long; expected at most {MAX_NAME}", MAX_NAME + 1)
        );
        let got = errors(r#"{"event": "a\nb", "payload": {"n": 1}}"#);
        assert_eq!(got[0].1, "must not contain control characters");
    }
}
