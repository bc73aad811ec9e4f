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
                if !STANDARD_FIELDS.contains(&key) && key != "tags" {
                    top.entry(key.to_string()).or_insert(v);
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
/// standard fields providers map (`email`, `first_name`, …, `id` = the
/// external id, else the contact id), custom fields, `tags`, `contact_id`.
pub fn payload(c: &ContactRecord) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in &c.custom_fields {
        m.insert(k.clone(), v.clone());
    }
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_string(), Value::String(v.clone()));
        }
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
mod tests {
    use super::*;

    fn contact() -> ContactRecord {
        ContactRecord::new("c1".into(), "ws".into(), 1)
    }

    #[test]
    fn upsert_merges_and_reports_changes() {
        let mut c = contact();
        c.custom_fields.insert("plan".into(), json!("free"));
        c.custom_fields.insert("seats".into(), json!(3));
        let mut u = Upsert::default();
        u.fields.insert("first_name", json!("Ada"));
        u.custom_fields.insert("plan".into(), json!("pro"));
        u.tag_names = vec!["vip".into(), "vip".into()];
        let (changes, added) = apply(&mut c, &u);
        assert_eq!(c.custom_fields.get("seats"), Some(&json!(3)), "omitted keys are kept");
        assert_eq!(added, vec!["vip"]);
        assert_eq!(c.tags, vec!["vip"]);
        let keys: Vec<&str> = changes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["custom_fields.plan", "first_name", "tags"]);
        let view = changes_view(&changes);
        assert_eq!(view["plan"], json!({"from": "free", "to": "pro"}));
        assert_eq!(view["custom_fields"]["plan"]["to"], json!("pro"));
        assert_eq!(view["first_name"]["from"], Value::Null);
        // The same upsert again changes nothing.
        assert!(apply(&mut c, &u).0.is_empty());
    }

    #[test]
    fn null_clears_and_tags_stay_sorted() {
        let mut c = contact();
        let mut ch = Changes::new();
        for t in ["b", "a", "c"] {
            add_tag(&mut c, t, &mut ch);
        }
        assert_eq!(c.tags, ["a", "b", "c"]);
        assert!(remove_tag(&mut c, "b", &mut ch));
        assert!(!remove_tag(&mut c, "b", &mut ch));
        assert_eq!(ch["tags"].from, json!([]), "the first `from` is kept");
        set_custom(&mut c, "plan", json!("x"), &mut ch);
        set_custom(&mut c, "plan", Value::Null, &mut ch);
        assert!(!c.custom_fields.contains_key("plan"));
        assert_eq!(view(&c)["unsubscribed"], json!(false));
    }

    #[test]
    fn standard_fields_take_scalars_as_text_and_refuse_structures() {
        let mut c = contact();
        let mut ch = Changes::new();
        set_standard(&mut c, "phone", &json!(5551234), &mut ch).unwrap();
        assert_eq!((c.phone.as_deref(), &ch["phone"].to), (Some("5551234"), &json!("5551234")));
        for bad in [json!({"a": 1}), json!(["x"])] {
            assert!(set_standard(&mut c, "phone", &bad, &mut ch).unwrap_err().contains("`phone`"));
        }
        assert_eq!(c.phone.as_deref(), Some("5551234"), "a refused value clears nothing");
        let added = add_tags(&mut c, &["b".into(), "a".into(), "b".into()], &mut ch);
        assert_eq!((added, &ch["tags"].from), (vec!["b".to_string(), "a".into()], &json!([])));
    }
}
