//! Applies a field mapping to a [`Contact`]: the one step between the
//! payload and every contact-based provider.

use super::adapter::{AttemptReport, Delivery};
use super::contact::Contact;
use super::http::permanent;
use super::transform;
use crate::config::mapping::{FieldMap, Mapping, OnError};
use crate::config::model::Outcome;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The mapping in force for one rule: the connection's fields, then the
/// rule's, which win per destination field.
pub fn effective(connection: Option<&Mapping>, rule: Option<&Mapping>) -> Arc<Mapping> {
    let mut out = connection.cloned().unwrap_or_default();
    out.extend(rule.into_iter().flatten().map(|(k, v)| (k.clone(), v.clone())));
    Arc::new(out)
}

/// Warnings an attempt collects (`on_error: warn_action`); the engine adds
/// them to the attempt's message. Shared so a `Delivery` clone keeps them.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    /// Records one warning.
    pub fn push(&self, message: String) {
        if let Ok(mut w) = self.0.lock() {
            w.push(message);
        }
    }

    /// Every warning so far, joined with `; `, if there is any.
    pub fn joined(&self) -> Option<String> {
        let w = self.0.lock().ok()?;
        (!w.is_empty()).then(|| w.join("; "))
    }
}

/// Overwrites the contact's fields with the delivery's mapping.
///
/// # Errors
/// A permanent `mapping_error` when a `fail_action` field cannot be transformed.
pub fn apply(d: &Delivery, contact: &mut Contact) -> Result<(), AttemptReport> {
    for ((field, m), source) in d.mapping.iter().zip(sources(d)) {
        match resolve(m, source) {
            Ok(Some(v)) => set(contact, field, v),
            Ok(None) => {}
            Err(why) => {
                let message = format!("mapping field `{field}`: {why}");
                match m.on_error {
                    OnError::SkipField => {}
                    OnError::WarnAction => {
                        d.warnings.push(format!("{message}; delivered without it"))
                    }
                    OnError::FailAction => return Err(permanent(Outcome::MappingError, message)),
                }
            }
        }
    }
    Ok(())
}

/// Each field's source value, in the mapping's order: its `from` path or
/// its literal `value`. The payload's paths are read in one pass.
fn sources(d: &Delivery) -> Vec<Option<Value>> {
    let steps: Vec<Option<Vec<&str>>> = (d.mapping.values())
        .map(|m| Some(m.from.as_deref()?.strip_prefix("payload.")?.split('.').collect()))
        .collect();
    let wanted: Vec<&[&str]> = steps.iter().flatten().map(Vec::as_slice).collect();
    let mut found = d.payload.lookup_all(&wanted).into_iter();
    (d.mapping.values().zip(&steps))
        .map(|(m, steps)| match (steps, &m.from, &m.value) {
            (Some(_), _, _) => found.next().flatten(),
            (None, Some(path), _) => read(path, d),
            (None, None, v) => v.clone(),
        })
        .collect()
}

/// The field's value from its `source`, `None` when it has none (and no
/// default), or why the source value does not fit its transforms.
fn resolve(m: &FieldMap, source: Option<Value>) -> Result<Option<Value>, String> {
    let Some(mut v) = source.filter(|v| !v.is_null()) else {
        return Ok(m.default.clone());
    };
    for t in &m.transforms {
        v = transform::apply(t, v.clone()).map_err(|expected| {
            let from =
                m.from.as_deref().map_or("the literal `value`".to_string(), |p| format!("`{p}`"));
            format!("{from} is {}; `{}` expected {expected}", shown(&v), t.name())
        })?;
    }
    let empty = v.as_str().is_some_and(str::is_empty);
    Ok(if empty { m.default.clone().or(Some(v)) } else { Some(v) })
}

/// A value for a message: JSON, cut to 80 characters.
fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// Reads `event`, `resource` or `resource_id` (payload paths are read by
/// [`sources`]).
fn read(path: &str, d: &Delivery) -> Option<Value> {
    match path {
        "event" => Some(Value::String(d.event.clone())),
        "resource" => Some(Value::String(d.resource.clone())),
        "resource_id" => d.resource_id.clone().map(Value::String),
        _ => None,
    }
}

/// Puts a value on a standard field (as text) or into `custom`.
fn set(c: &mut Contact, field: &str, v: Value) {
    let slot = match field {
        "email" => &mut c.email,
        "first_name" => &mut c.first_name,
        "last_name" => &mut c.last_name,
        "name" => &mut c.name,
        "phone" => &mut c.phone,
        "id" => &mut c.id,
        "ip_address" => &mut c.ip_address,
        _ => {
            c.custom.insert(field.to_string(), v);
            return;
        }
    };
    *slot = transform::text(&v).or_else(|| Some(v.to_string()));
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
