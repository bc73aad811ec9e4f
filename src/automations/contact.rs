//! Changing a contact and describing the change: upsert merges, tags, fields.
//!
//! Every change is returned as a [`Changes`] map (field → old and new value)
//! so `contact_updated` automations can test `changes.plan.from`.

use crate::store::ContactRecord;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The standard fields, in the order the API shows them.
pub const STANDARD_FIELDS: [&str; 6] =
    ["email", "external_id", "first_name", "last_name", "name", "phone"];

/// Most custom fields one contact keeps.
pub const MAX_CUSTOM_FIELDS: usize = 500;

/// Largest custom-field value, in bytes of its JSON. Every change rewrites
/// the whole record on the single store writer, which ingest waits behind.
pub const MAX_CUSTOM_VALUE_BYTES: usize = 16 * 1024;

/// Largest contact record, in bytes of its JSON, for the same reason.
pub const MAX_CONTACT_BYTES: usize = 256 * 1024;

/// Names a custom field may not take: the standard fields and every other
/// key that conditions, templates (`contact.x`, `changes.x`) and delivery
/// payloads put at the top level beside the custom fields.
pub const RESERVED_KEYS: [&str; 14] = [
    "email",
    "external_id",
    "first_name",
    "last_name",
    "name",
    "phone",
    "id",
    "contact_id",
    "tags",
    "unsubscribed",
    "properties",
    "custom_fields",
    "created_at",
    "updated_at",
];

/// Whether `key` is a name custom fields may not take.
pub fn reserved(key: &str) -> bool {
    RESERVED_KEYS.contains(&key)
}

/// Why a custom field cannot be set to `value`: a reserved key, or a value
/// too large. Says the value's size, never the value.
pub fn custom_refused(key: &str, value: &Value) -> Option<String> {
    if value.is_null() {
        // Removing a key is always allowed, a reserved one stored before included.
        return None;
    }
    if reserved(key) {
        return Some(format!(
            "`{key}` is reserved (a standard field or a name conditions and deliveries use); choose another key"
        ));
    }
    let n = json_len(value);
    (n > MAX_CUSTOM_VALUE_BYTES).then(|| {
        format!("the value is {n} bytes as JSON; at most {MAX_CUSTOM_VALUE_BYTES} are kept")
    })
}

/// Why `c` cannot be stored: it is past [`MAX_CONTACT_BYTES`] and its
/// custom fields or tags grew. Only those are capped: every other field is
/// bounded on its own, and a contact at the cap (or past it, stored before
/// the cap) must still take an unsubscribe, a resubscribe, a name or a
/// removal.
pub fn record_refused(c: &ContactRecord, before: Option<&ContactRecord>) -> Option<String> {
    let grown = |r: &ContactRecord| json_len(&r.custom_fields) + json_len(&r.tags);
    if before.is_some_and(|b| grown(c) <= grown(b)) {
        return None;
    }
    record_over(json_len(c), None)
}

/// [`record_refused`] from the record's length as JSON, now and before.
pub fn record_over(n: usize, before: Option<usize>) -> Option<String> {
    let grew = before.is_none_or(|b| n > b);
    (n > MAX_CONTACT_BYTES && grew).then(|| {
        format!("the contact would be {n} bytes as JSON; at most {MAX_CONTACT_BYTES} are kept")
    })
}

/// The length of `v` as JSON, counted without building the text.
pub fn json_len(v: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    let _ = serde_json::to_writer(&mut n, v);
    n.0
}

/// Most tags one contact keeps: every tag change copies and diffs the list
/// on the single writer thread, so it must stay small.
pub const MAX_TAGS_PER_CONTACT: usize = 1_000;

/// One field's old and new value.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Before (`null` when unset).
    pub from: Value,
    /// After (`null` when cleared).
    pub to: Value,
}

/// Changed fields: standard fields by name, custom fields as
/// `custom_fields.<key>`, tags as `tags`.
pub type Changes = BTreeMap<String, Change>;

/// What an upsert asks for. A standard field set to `null` is cleared; a
/// custom field set to `null` is removed; omitted fields are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upsert {
    /// Standard fields given (value `null` clears).
    pub fields: BTreeMap<&'static str, Value>,
    /// Custom fields to merge.
    pub custom_fields: Map<String, Value>,
    /// Tags to add (never removes).
    pub tag_names: Vec<String>,
}

/// Applies an upsert; returns what changed and the tags it added.
pub fn apply(c: &mut ContactRecord, u: &Upsert) -> (Changes, Vec<String>) {
    let mut changes = Changes::new();
    for (field, value) in &u.fields {
        // The API hands over only checked text and nulls, which always fit.
        let _ = set_standard(c, field, value, &mut changes);
    }
    for (key, value) in &u.custom_fields {
        set_custom(c, key, value.clone(), &mut changes);
    }
    let added = add_tags(c, &u.tag_names, &mut changes);
    (changes, added)
}

/// Sets a standard field: text as given, a number or boolean as its text
/// (what a YAML author writing `value: 5551234` means), `null` clears.
/// Objects and arrays are refused rather than read as `null`.
pub fn set_standard(
    c: &mut ContactRecord,
    field: &str,
    value: &Value,
    changes: &mut Changes,
) -> Result<(), String> {
    let new = match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(_) | Value::Object(_) => {
            return Err(format!("`{field}` takes text, a number or a boolean, not a list or map"));
        }
    };
    let Some(slot) = standard_mut(c, field) else {
        return Err(format!("`{field}` is not a standard field"));
    };
    if *slot != new {
        let from = slot.clone().map_or(Value::Null, Value::String);
        let to = new.clone().map_or(Value::Null, Value::String);
        *slot = new;
        changes.insert(field.to_string(), Change { from, to });
    }
    Ok(())
}

/// Why `key` cannot be added: the contact already keeps the most custom
/// fields. Changing or removing a key it has is always allowed.
pub fn custom_full(c: &ContactRecord, key: &str, value: &Value) -> Option<String> {
    let adds = !value.is_null() && !c.custom_fields.contains_key(key);
    (adds && c.custom_fields.len() >= MAX_CUSTOM_FIELDS).then(|| {
        format!("the contact already has {MAX_CUSTOM_FIELDS} custom fields, the most it keeps")
    })
}

/// Why `tag` cannot be added: the contact already keeps the most tags.
pub fn tags_full(c: &ContactRecord, tag: &str) -> Option<String> {
    (c.tags.len() >= MAX_TAGS_PER_CONTACT && !c.has_tag(tag))
        .then(|| format!("the contact already has {MAX_TAGS_PER_CONTACT} tags, the most it keeps"))
}

/// Sets (or, with `null`, removes) a custom field.
pub fn set_custom(c: &mut ContactRecord, key: &str, value: Value, changes: &mut Changes) {
    let old = c.custom_fields.get(key).cloned().unwrap_or(Value::Null);
    if old == value {
        return;
    }
    if value.is_null() {
        c.custom_fields.remove(key);
    } else {
        c.custom_fields.insert(key.to_string(), value.clone());
    }
    changes.insert(format!("custom_fields.{key}"), Change { from: old, to: value });
}

/// The slot of a standard field, if `field` is one.
pub fn standard_mut<'c>(c: &'c mut ContactRecord, field: &str) -> Option<&'c mut Option<String>> {
    Some(match field {
        "email" => &mut c.email,
        "external_id" => &mut c.external_id,
        "first_name" => &mut c.first_name,
        "last_name" => &mut c.last_name,
        "name" => &mut c.name,
        "phone" => &mut c.phone,
        _ => return None,
    })
}

/// Adds a tag; `false` when the contact already had it.
pub fn add_tag(c: &mut ContactRecord, tag: &str, changes: &mut Changes) -> bool {
    !add_tags(c, std::slice::from_ref(&tag.to_string()), changes).is_empty()
}

/// Adds tags; returns those the contact did not have. The list is copied
/// into `changes` once for the whole batch, not once per tag.
pub fn add_tags(c: &mut ContactRecord, tags: &[String], changes: &mut Changes) -> Vec<String> {
    let mut from = None;
    let mut added = Vec::new();
    for tag in tags {
        if let Err(at) = c.tags.binary_search_by(|t| t.as_str().cmp(tag)) {
            from.get_or_insert_with(|| first_from(changes, &c.tags));
            c.tags.insert(at, tag.clone());
            added.push(tag.clone());
        }
    }
    if let Some(from) = from {
        note_tags(changes, from, &c.tags);
    }
    added
}

/// Removes a tag; `false` when the contact did not have it.
pub fn remove_tag(c: &mut ContactRecord, tag: &str, changes: &mut Changes) -> bool {
    let Ok(at) = c.tags.binary_search_by(|t| t.as_str().cmp(tag)) else { return false };
    let from = first_from(changes, &c.tags);
    c.tags.remove(at);
    note_tags(changes, from, &c.tags);
    true
}

/// The tags before this change; not copied again when an earlier edit in
/// the same change already recorded them.
fn first_from(changes: &Changes, tags: &[String]) -> Value {
    if changes.contains_key("tags") { Value::Null } else { json!(tags) }
}

/// Several tag edits in one change keep the first `from`.
fn note_tags(changes: &mut Changes, from: Value, now: &[String]) {
    let to = json!(now);
    changes.entry("tags".into()).and_modify(|c| c.to = to.clone()).or_insert(Change { from, to });
}

/// The contact as conditions and templates see it: standard fields (null
/// when unset), `custom_fields`, each custom field also at the top level
/// (`contact.plan`) unless a standard field has that name, `tags`,
/// `unsubscribed`.
pub fn view(c: &ContactRecord) -> Value {
    let mut m = Map::new();
    for (k, v) in &c.custom_fields {
        m.insert(k.clone(), v.clone());
    }
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    m.insert("id".into(), Value::String(c.id.clone()));
    m.insert("email".into(), opt(&c.email));
    m.insert("external_id".into(), opt(&c.external_id));
    m.insert("first_name".into(), opt(&c.first_name));
    m.insert("last_name".into(), opt(&c.last_name));
    m.insert("name".into(), opt(&c.name));
    m.insert("phone".into(), opt(&c.phone));
    m.insert("custom_fields".into(), Value::Object(c.custom_fields.clone()));
    m.insert("tags".into(), json!(c.tags));
    m.insert("unsubscribed".into(), Value::Bool(c.unsubscribed_at.is_some()));
    m.insert("created_at".into(), json!(c.created_at));
    m.insert("updated_at".into(), json!(c.updated_at));
    Value::Object(m)
}

/// `changes` as conditions see it: `changes.plan.from` for a custom field
/// (also under `changes.custom_fields.plan`), `changes.email.to`, `changes.tags`.
pub fn changes_view(changes: &Changes) -> Value {
    let mut top = Map::new();
    let mut custom = Map::new();
    for (k, c) in changes {
        let v = json!({"from": c.from, "to": c.to});
        match k.strip_prefix("custom_fields.") {
            Some(key) => {
                custom.insert(key.to_string(), v.clone());
                // A reserved key (stored before they were refused) is only
                // under `custom_fields`: `changes.unsubscribed` is the real one.
                if !reserved(key) {
                    top.insert(key.to_string(), v);
                }
            }
            None => {
                top.insert(k.clone(), v);
            }
        }
    }
    if !custom.is_empty() {
        top.insert("custom_fields".into(), Value::Object(custom));
    }
    Value::Object(top)
}

/// The payload of an event that carries a contact to a connection: the
/// standard fields providers map (`email`, `first_name`, …, null when
/// unset; `id` = the external id, else the contact id), custom fields,
/// `tags`, `contact_id`. A custom field with a reserved name, stored before
/// those were refused, is left out: it must never pass for the standard
/// field (a contact without an email sent to the address it holds).
pub fn payload(c: &ContactRecord) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in c.custom_fields.iter().filter(|(k, _)| !reserved(k)) {
        m.insert(k.clone(), v.clone());
    }
    let mut put = |k: &str, v: &Option<String>| {
        m.insert(k.to_string(), v.clone().map_or(Value::Null, Value::String));
    };
    put("email", &c.email);
    put("first_name", &c.first_name);
    put("last_name", &c.last_name);
    put("name", &c.name);
    put("phone", &c.phone);
    m.insert("id".into(), Value::String(c.external_id.clone().unwrap_or_else(|| c.id.clone())));
    m.insert("contact_id".into(), Value::String(c.id.clone()));
    m.insert("tags".into(), json!(c.tags));
    m
}

#[cfg(test)]
#[path = "contact_tests.rs"]
mod tests;
