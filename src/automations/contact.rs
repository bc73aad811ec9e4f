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
        let new = value.as_str().map(str::to_string);
        let slot = standard_mut(c, field);
        if let Some(slot) = slot
            && *slot != new
        {
            let from = slot.clone().map_or(Value::Null, Value::String);
            *slot = new;
            changes.insert((*field).to_string(), Change { from, to: value.clone() });
        }
    }
    for (key, value) in &u.custom_fields {
        set_custom(c, key, value.clone(), &mut changes);
    }
    let mut added = Vec::new();
    for tag in &u.tag_names {
        if add_tag(c, tag, &mut changes) {
            added.push(tag.clone());
        }
    }
    (changes, added)
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
    let Err(at) = c.tags.binary_search_by(|t| t.as_str().cmp(tag)) else { return false };
    let from = json!(c.tags);
    c.tags.insert(at, tag.to_string());
    note_tags(changes, from, &c.tags);
    true
}

/// Removes a tag; `false` when the contact did not have it.
pub fn remove_tag(c: &mut ContactRecord, tag: &str, changes: &mut Changes) -> bool {
    let Ok(at) = c.tags.binary_search_by(|t| t.as_str().cmp(tag)) else { return false };
    let from = json!(c.tags);
    c.tags.remove(at);
    note_tags(changes, from, &c.tags);
    true
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
}
