//! The standard contact fields every contact-based provider maps.
//!
//! Adapters never read the payload for people directly: they take a
//! [`Contact`] from [`Contact::for_delivery`], which reads the standard
//! fields ([`Contact::from_payload`]) and then applies the field mapping
//! (replacing standard fields and filling [`Contact::custom`]).

use super::adapter::{AttemptReport, Delivery};
use super::http::permanent;
use crate::config::model::Outcome;
use serde_json::{Map, Value};

/// A person as the standard payload fields describe them:
/// `email, first_name, last_name, name, phone, id, ip_address`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    /// `email`, trimmed (case kept; see [`Contact::email_key`]).
    pub email: Option<String>,
    /// `first_name`, else the first word of `name`.
    pub first_name: Option<String>,
    /// `last_name`, else the rest of `name`.
    pub last_name: Option<String>,
    /// `name`, else `first_name last_name`.
    pub name: Option<String>,
    /// `phone` (numbers accepted).
    pub phone: Option<String>,
    /// `id`: the application's own id for the person (numbers accepted).
    pub id: Option<String>,
    /// `ip_address`.
    pub ip_address: Option<String>,
    /// Provider field name → value, added by the mapping step; providers
    /// merge it into their custom-field object.
    pub custom: Map<String, Value>,
}

/// The payload fields [`Contact::from_payload`] reads.
const STANDARD: [&str; 7] =
    ["email", "first_name", "last_name", "name", "phone", "id", "ip_address"];

/// A payload field as text: strings trimmed, numbers rendered, the rest absent.
fn text(payload: &Value, key: &str) -> Option<String> {
    match payload.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Contact {
    /// Reads the standard fields, deriving the name parts from each other.
    pub fn from_payload(payload: &Value) -> Contact {
        let name = text(payload, "name");
        let (mut first, mut last) = (text(payload, "first_name"), text(payload, "last_name"));
        if first.is_none()
            && last.is_none()
            && let Some(n) = &name
        {
            let mut parts = n.splitn(2, char::is_whitespace);
            first = parts.next().map(str::to_string);
            last = parts.next().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        }
        let joined = [first.as_deref(), last.as_deref()].into_iter().flatten().collect::<Vec<_>>();
        Contact {
            email: text(payload, "email"),
            name: name.or_else(|| (!joined.is_empty()).then(|| joined.join(" "))),
            first_name: first,
            last_name: last,
            phone: text(payload, "phone"),
            id: text(payload, "id"),
            ip_address: text(payload, "ip_address"),
            custom: Map::new(),
        }
    }

    /// The delivery's contact: the standard payload fields with the field
    /// mapping applied.
    ///
    /// # Errors
    /// A permanent `mapping_error` when a `fail_action` field cannot be mapped.
    pub fn for_delivery(d: &Delivery) -> Result<Contact, AttemptReport> {
        // Only the standard fields are read from the payload's text.
        let standard = d.payload.fields(&STANDARD);
        let mut c = Contact::from_payload(&Value::Object(standard));
        super::mapping::apply(d, &mut c)?;
        Ok(c)
    }

    /// The email, or a permanent `mapping_error` naming the field.
    pub fn require_email(&self) -> Result<&str, AttemptReport> {
        match self.email.as_deref() {
            Some(e) if e.contains('@') => Ok(e),
            Some(_) => Err(permanent(
                Outcome::MappingError,
                "the payload's `email` is not an email address",
            )),
            None => Err(permanent(
                Outcome::MappingError,
                "the payload has no `email`, which this action needs to find the contact",
            )),
        }
    }

    /// The email lower-cased: the key providers hash and look up by.
    pub fn email_key(&self) -> Result<String, AttemptReport> {
        self.require_email().map(str::to_lowercase)
    }

    /// A JSON object of `(provider field, value)` pairs for the fields that
    /// are present. Absent fields are left out, so an upsert never blanks
    /// what the provider already has.
    pub fn standard(&self, pairs: &[(&str, &Option<String>)]) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in pairs {
            if let Some(v) = value {
                out.insert((*key).to_string(), Value::String(v.clone()));
            }
        }
        out
    }

    /// [`Contact::standard`], then [`Contact::custom`] beside it: for
    /// providers whose custom fields share one object with the standard ones
    /// (Mailchimp `merge_fields`, HubSpot `properties`).
    pub fn fields(&self, pairs: &[(&str, &Option<String>)]) -> Map<String, Value> {
        let mut out = self.standard(pairs);
        out.extend(self.custom.clone());
        out
    }

    /// [`Contact::custom`] with every value as text, for providers whose
    /// custom-field values are strings.
    pub fn custom_text(&self) -> impl Iterator<Item = (&str, String)> {
        self.custom.iter().map(|(k, v)| (k.as_str(), as_text(v)))
    }
}

/// A mapped value for fields typed "string or number" (SendGrid custom
/// fields, Resend template variables, Mailchimp merge fields): numbers and
/// strings as they are, anything else as text ([`as_text`]).
pub fn text_or_number(v: &Value) -> Value {
    match v {
        Value::Number(_) | Value::String(_) => v.clone(),
        other => Value::String(as_text(other)),
    }
}

/// A mapped value as text: strings as they are, numbers and booleans
/// rendered, anything else as its JSON (the same rule standard fields follow).
pub fn as_text(v: &Value) -> String {
    super::transform::text(v).unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_standard_fields() {
        let c = Contact::from_payload(&json!({
            "email": " Ada@Example.com ", "first_name": "Ada", "last_name": "Lovelace",
            "phone": 4_477_001, "id": 42, "ip_address": "10.0.0.1", "other": "x"
        }));
        assert_eq!(c.email.as_deref(), Some("Ada@Example.com"));
        assert_eq!(c.email_key().unwrap(), "ada@example.com");
        assert_eq!(c.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(c.phone.as_deref(), Some("4477001"));
        assert_eq!(c.id.as_deref(), Some("42"));
        assert_eq!(c.ip_address.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn splits_a_full_name_when_parts_are_missing() {
        let c = Contact::from_payload(&json!({"name": "Grace Brewster Hopper"}));
        assert_eq!(c.first_name.as_deref(), Some("Grace"));
        assert_eq!(c.last_name.as_deref(), Some("Brewster Hopper"));
        let single = Contact::from_payload(&json!({"name": "Cher"}));
        assert_eq!((single.first_name.as_deref(), single.last_name), (Some("Cher"), None));
    }

    #[test]
    fn missing_or_bad_email_is_a_mapping_error() {
        for payload in
            [json!({}), json!({"email": ""}), json!({"email": 5}), json!({"email": "nope"})]
        {
            let err = Contact::from_payload(&payload).require_email().unwrap_err();
            assert_eq!(err.outcome(), Outcome::MappingError, "{payload}");
        }
    }

    #[test]
    fn fields_skip_absent_values_and_append_custom() {
        let mut c = Contact::from_payload(&json!({"email": "a@b.co", "first_name": "A"}));
        c.custom.insert("PLAN".into(), json!("pro"));
        let f = c.fields(&[("FNAME", &c.first_name), ("LNAME", &c.last_name)]);
        assert_eq!(Value::Object(f), json!({"FNAME": "A", "PLAN": "pro"}));
        let standard = c.standard(&[("FNAME", &c.first_name)]);
        assert_eq!(Value::Object(standard), json!({"FNAME": "A"}));
    }

    #[test]
    fn custom_text_renders_every_value_as_a_string() {
        let mut c = Contact::default();
        for (k, v) in
            [("s", json!("pro")), ("n", json!(3.5)), ("b", json!(true)), ("a", json!([1]))]
        {
            c.custom.insert(k.into(), v);
        }
        let got: Vec<(&str, String)> = c.custom_text().collect();
        let want = [("s", "pro"), ("n", "3.5"), ("b", "true"), ("a", "[1]")];
        assert_eq!(got, want.map(|(k, v)| (k, v.to_string())));
    }
}
