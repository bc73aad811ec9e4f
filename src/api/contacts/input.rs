//! Checking contact request bodies. Every problem is reported at once, each
//! naming its field, the value found and what was expected.

use super::check::{Errors, email, found, kind, text};
use crate::api::error::FieldError;
use crate::automations::contact::{STANDARD_FIELDS, Upsert, custom_refused};
use crate::automations::service::Who;
use serde_json::{Map, Value};

/// Longest external id and name fields.
pub const MAX_TEXT: usize = 200;
/// Longest phone number.
pub const MAX_PHONE: usize = 50;
/// Longest custom field key.
pub const MAX_KEY: usize = 100;
/// Most custom fields in one request.
pub const MAX_KEYS: usize = 100;
/// Longest tag name.
pub const MAX_TAG: usize = 100;
/// Most tags in one request.
pub const MAX_TAGS: usize = 50;
/// Suppression reasons `POST /contacts/{id}/unsubscribe` takes.
pub const REASONS: [&str; 3] = ["unsubscribed", "bounced", "complained"];

const UPSERT_FIELDS: [&str; 8] = [
    "external_id",
    "email",
    "first_name",
    "last_name",
    "name",
    "phone",
    "custom_fields",
    "tag_names",
];

/// A checked `POST /contacts/upsert`.
#[derive(Debug)]
pub struct UpsertInput {
    /// How the contact is matched.
    pub who: Who,
    /// What changes.
    pub upsert: Upsert,
}

/// A checked `POST /events/track`.
#[derive(Debug)]
pub struct TrackInput {
    /// The contact.
    pub who: Who,
    /// `event_name`.
    pub event_name: String,
    /// `properties` (an object, `{}` when omitted).
    pub properties: Value,
}

/// The body as an object whose keys are all in `allowed`.
fn object(v: Value, allowed: &[&str], e: &mut Errors) -> Option<Map<String, Value>> {
    let Value::Object(obj) = v else {
        e.push("body", format!("expected a JSON object, found {}", kind(&v)));
        return None;
    };
    for key in obj.keys().filter(|k| !allowed.contains(&k.as_str())) {
        // Named as sent, but a megabyte-long key is not echoed whole.
        let param: String = key.chars().take(MAX_KEY).collect();
        let param = if param.len() < key.len() { format!("{param}…") } else { param };
        e.push(&param, format!("is not a known field; expected only: {}", allowed.join(", ")));
    }
    Some(obj)
}

/// `POST /contacts/upsert`: at least one identifier; standard fields are
/// strings or `null` (clears); `custom_fields` an object (`null` values
/// remove keys); `tag_names` an array of tags (added, never removed).
pub fn upsert(v: Value) -> Result<UpsertInput, Vec<FieldError>> {
    let mut e = Errors::default();
    let Some(mut obj) = object(v, &UPSERT_FIELDS, &mut e) else { return Err(e.0) };
    let mut u = Upsert::default();
    for field in STANDARD_FIELDS {
        match obj.get(field) {
            None => {}
            Some(Value::Null) => {
                u.fields.insert(field, Value::Null);
            }
            Some(value) => {
                if let Some(s) = standard(field, value, &mut e) {
                    u.fields.insert(field, Value::String(s));
                }
            }
        }
    }
    let as_str = |f: &str| u.fields.get(f).and_then(Value::as_str).map(str::to_string);
    let who = Who { external_id: as_str("external_id"), email: as_str("email") };
    let ids_valid = !e.has("external_id") && !e.has("email");
    if ids_valid && who.external_id.is_none() && who.email.is_none() {
        e.push(
            "external_id",
            "is required unless `email` is given: at least one of external_id, email must be a non-null string".into(),
        );
    }
    // `null` for either is the same as leaving it out.
    if let Some(c) = obj.remove("custom_fields").filter(|c| !c.is_null()) {
        u.custom_fields = custom_fields(c, &mut e);
    }
    if let Some(t) = obj.remove("tag_names").filter(|t| !t.is_null()) {
        u.tag_names = tag_names(&t, 0, &mut e);
    }
    e.finish(UpsertInput { who, upsert: u })
}

/// One standard field's string value, checked.
fn standard(field: &str, v: &Value, e: &mut Errors) -> Option<String> {
    standard_field(field, v).map_err(|msg| e.push(field, msg)).ok()
}

/// A standard field's value as the contacts API takes it (also applied to
/// what `contacts.upsert_from_events` reads from event payloads).
pub fn standard_field(field: &str, v: &Value) -> Result<String, String> {
    match field {
        "email" => email(v),
        "phone" => text(v, MAX_PHONE),
        _ => text(v, MAX_TEXT),
    }
}

fn custom_fields(v: Value, e: &mut Errors) -> Map<String, Value> {
    let Value::Object(map) = v else {
        let msg =
            format!("expected an object of custom fields (use {{}} for none), found {}", found(&v));
        e.push("custom_fields", msg);
        return Map::new();
    };
    if map.len() > MAX_KEYS {
        e.push("custom_fields", format!("has {} keys; expected at most {MAX_KEYS}", map.len()));
        return Map::new();
    }
    for (key, value) in &map {
        let n = key.chars().count();
        let what = found(&Value::String(key.clone()));
        if crate::config::model::is_blank(key) || n > MAX_KEY || key.chars().any(char::is_control) {
            e.push(
                "custom_fields",
                format!("key {what} is invalid; expected a key of 1 to {MAX_KEY} characters, not blank, without control characters"),
            );
        } else if let Some(why) = custom_refused(key, value) {
            e.push(&format!("custom_fields.{key}"), why);
        }
    }
    map
}

/// Tag names: an array of 1..=`min` to [`MAX_TAGS`] valid tags.
fn tag_names(v: &Value, min: usize, e: &mut Errors) -> Vec<String> {
    let Value::Array(items) = v else {
        e.push("tag_names", format!("expected an array of tag names, found {}", found(v)));
        return Vec::new();
    };
    if items.len() < min || items.len() > MAX_TAGS {
        e.push("tag_names", format!("has {} tags; expected {min} to {MAX_TAGS}", items.len()));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match tag(item) {
            Ok(t) => out.push(t),
            Err(msg) => e.push(&format!("tag_names[{i}]"), msg),
        }
    }
    out
}

/// One tag: 1 to [`MAX_TAG`] characters, not blank, no control characters.
pub fn tag(v: &Value) -> Result<String, String> {
    text(v, MAX_TAG)
}

/// `POST /contacts/{id}/tags`: `{tag_names: [1 to 50 tags]}`.
pub fn add_tags(v: Value) -> Result<Vec<String>, Vec<FieldError>> {
    let mut e = Errors::default();
    let Some(obj) = object(v, &["tag_names"], &mut e) else { return Err(e.0) };
    let tags = match obj.get("tag_names") {
        Some(t) => tag_names(t, 1, &mut e),
        None => {
            e.push("tag_names", "is required (an array such as [\"vip\"])".into());
            Vec::new()
        }
    };
    e.finish(tags)
}

/// `POST /events/track`: `{event_name, email | external_id, properties?}`.
pub fn track(v: Value) -> Result<TrackInput, Vec<FieldError>> {
    let mut e = Errors::default();
    let allowed = ["event_name", "email", "external_id", "properties"];
    let Some(mut obj) = object(v, &allowed, &mut e) else { return Err(e.0) };
    let event_name = match obj.get("event_name") {
        None | Some(Value::Null) => {
            e.push("event_name", "is required (a string such as \"feature_activated\")".into());
            None
        }
        Some(v) => text(v, MAX_TEXT).map_err(|msg| e.push("event_name", msg)).ok(),
    };
    let mut id = |field: &str| match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(v) if field == "email" => email(v).map_err(|msg| e.push(field, msg)).ok(),
        Some(v) => text(v, MAX_TEXT).map_err(|msg| e.push(field, msg)).ok(),
    };
    let who = Who { external_id: id("external_id"), email: id("email") };
    if who.external_id.is_none() && who.email.is_none() && !e.has("email") && !e.has("external_id")
    {
        e.push(
            "email",
            "is required unless `external_id` is given (the contact to track the event for)".into(),
        );
    }
    let properties = match obj.remove("properties") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(p @ Value::Object(_)) => p,
        Some(other) => {
            e.push("properties", format!("expected an object, found {}", found(&other)));
            Value::Null
        }
    };
    e.finish(TrackInput { who, event_name: event_name.unwrap_or_default(), properties })
}

/// `POST /contacts/{id}/unsubscribe`: `{reason?}`; `None` for no body.
pub fn unsubscribe(v: Option<Value>) -> Result<String, Vec<FieldError>> {
    let mut e = Errors::default();
    let Some(v) = v else { return Ok(REASONS[0].to_string()) };
    let Some(obj) = object(v, &["reason"], &mut e) else { return Err(e.0) };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => REASONS[0].to_string(),
        Some(Value::String(r)) if REASONS.contains(&r.as_str()) => r.clone(),
        Some(other) => {
            e.push(
                "reason",
                format!("expected one of: {}; found {}", REASONS.join(", "), found(other)),
            );
            String::new()
        }
    };
    e.finish(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(r: Result<impl std::fmt::Debug, Vec<FieldError>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.param).collect()
    }

    #[test]
    fn upsert_splits_identifiers_fields_and_nulls() {
        let u = upsert(json!({"email": "a@b.c", "external_id": null, "name": "Ada",
            "custom_fields": {"plan": "pro", "old": null}, "tag_names": ["vip"]}))
        .unwrap();
        assert_eq!(u.who, Who { external_id: None, email: Some("a@b.c".into()) });
        assert_eq!(u.upsert.fields.get("external_id"), Some(&Value::Null), "null clears");
        assert_eq!(u.upsert.fields.get("name"), Some(&json!("Ada")));
        assert_eq!(u.upsert.custom_fields.get("old"), Some(&Value::Null));
        assert_eq!(u.upsert.tag_names, ["vip"]);
        let u = upsert(json!({"external_id": "x", "custom_fields": null, "tag_names": null}));
        assert!(u.unwrap().upsert.custom_fields.is_empty(), "null is the same as omitted");
    }

    #[test]
    fn unknown_keys_are_named_but_not_echoed_whole() {
        let long = "k".repeat(5000);
        let p = params(upsert(json!({"external_id": "x", long.clone(): 1})));
        assert_eq!(p, [format!("{}…", "k".repeat(MAX_KEY))]);
        assert_eq!(params(add_tags(json!({"tag_names": ["a"], "x": 1}))), ["x"]);
    }

    #[test]
    fn track_and_unsubscribe_bodies() {
        let t = track(json!({"event_name": "e", "external_id": "x"})).unwrap();
        assert_eq!((t.properties, t.who.external_id.as_deref()), (json!({}), Some("x")));
        assert_eq!(params(track(json!({"event_name": "e", "email": "nope"}))), ["email"]);
        assert_eq!(unsubscribe(None).unwrap(), "unsubscribed");
        assert_eq!(unsubscribe(Some(json!({"reason": null}))).unwrap(), "unsubscribed");
        assert_eq!(unsubscribe(Some(json!({"reason": "bounced"}))).unwrap(), "bounced");
        assert_eq!(params(unsubscribe(Some(json!({"reason": "x"})))), ["reason"]);
    }
}
