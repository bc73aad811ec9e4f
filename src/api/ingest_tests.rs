//! Checking ingest bodies: every problem named with its field.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::config::model::MAX_NAME;

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
    let e = check(r#"{"event": "a", "resource_id": -9223372036854775808, "payload": {"n": 0}}"#);
    assert_eq!(e.unwrap().resource_id.as_deref(), Some("-9223372036854775808"));
    let e = check(r#"{"event": "a", "resource_id": 18446744073709551615, "payload": {"n": 0}}"#);
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
        let got =
            errors(&format!(r#"{{"event": "a", "resource_id": {sent}, "payload": {{"n": 0}}}}"#));
        assert_eq!(got, [("resource_id".to_string(), format!("{want} {shown}"))], "{sent}");
    }
}

#[test]
fn every_problem_is_reported_with_its_field() {
    let got =
        errors(r#"{"event": 5, "resource": "", "workspace": {"id": "other"}, "payload": null}"#);
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
    assert_eq!(errors("[1]"), [("body".into(), "expected a JSON object, found an array".into())]);
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

/// Each field is decoded as a `Value` would be: what does not decode is
/// named with its problem, never stored (it would read back as null).
#[test]
fn undecodable_strings_and_numbers_are_named_where_they_are() {
    let lone = r"contains an invalid \u escape (a lone surrogate)";
    let got = errors(
        r#"{"event": "user.\ud800signup", "resource": "\udc00", "resource_id": "a\ud800",
            "workspace": "ws-\udfff", "payload": {"email": "ada@example.com", "x": ["\udc00"]}}"#,
    );
    let fields = ["event", "resource", "resource_id", "workspace", "payload.x[0]"];
    let want: Vec<(String, String)> =
        fields.iter().map(|f| ((*f).to_string(), lone.to_string())).collect();
    assert_eq!(got, want);
    let got = errors(r#"{"event": "a", "payload": {"a": "x\ud800y"}}"#);
    assert_eq!(got, [("payload.a".to_string(), lone.to_string())]);
    let got = errors(r#"{"event": "a", "payload": {"a": 1, "x": 1e400}}"#);
    let range = "is a number out of range (beyond a 64-bit float)";
    assert_eq!(got, [("payload.x".to_string(), range.to_string())]);
    // Decodes, but as a float with other digits than were sent.
    let got = errors(r#"{"event": "a", "payload": {"a": 1e20, "x": [-92233720368547758090]}}"#);
    let long = crate::api::numbers::PROBLEM.to_string();
    assert_eq!(got, [("payload.x[0]".to_string(), long)]);
}
