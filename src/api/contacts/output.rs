//! JSON shapes of the contacts API (documented in `openapi/contacts.rs`).

use crate::clock::rfc3339;
use crate::store::{ActivityRecord, ContactRecord, EnrollmentRecord, EnrollmentStatus};
use serde::Serialize;
use serde_json::{Map, Value};

/// A contact as the API shows it.
#[derive(Debug, Serialize)]
pub struct ContactOut<'a> {
    id: &'a str,
    external_id: Option<&'a str>,
    email: Option<&'a str>,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    name: Option<&'a str>,
    phone: Option<&'a str>,
    custom_fields: &'a Map<String, Value>,
    tags: &'a [String],
    unsubscribed: bool,
    unsubscribed_at: Option<String>,
    suppression: Option<&'a str>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollments: Option<Vec<EnrollmentOut<'a>>>,
}

/// `{"contact": …}`.
#[derive(Debug, Serialize)]
pub struct ContactBody<'a> {
    /// The contact.
    pub contact: ContactOut<'a>,
}

/// The wire form of a contact, without enrolments.
pub fn contact(c: &ContactRecord) -> ContactBody<'_> {
    ContactBody {
        contact: ContactOut {
            id: &c.id,
            external_id: c.external_id.as_deref(),
            email: c.email.as_deref(),
            first_name: c.first_name.as_deref(),
            last_name: c.last_name.as_deref(),
            name: c.name.as_deref(),
            phone: c.phone.as_deref(),
            custom_fields: &c.custom_fields,
            tags: &c.tags,
            unsubscribed: c.unsubscribed_at.is_some(),
            unsubscribed_at: c.unsubscribed_at.map(rfc3339),
            suppression: c.suppression.as_deref(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            enrollments: None,
        },
    }
}

/// The wire form of a contact with its sequence enrolments.
pub fn contact_detail<'a>(c: &'a ContactRecord, e: &'a [EnrollmentRecord]) -> ContactBody<'a> {
    let mut body = contact(c);
    body.contact.enrollments = Some(e.iter().map(enrollment).collect());
    body
}

/// One sequence enrolment.
#[derive(Debug, Serialize)]
pub struct EnrollmentOut<'a> {
    sequence: &'a str,
    status: EnrollmentStatus,
    step: u32,
    next_step_at: Option<String>,
    enrolled_at: String,
    reason: Option<&'a str>,
}

fn enrollment(e: &EnrollmentRecord) -> EnrollmentOut<'_> {
    EnrollmentOut {
        sequence: &e.sequence,
        status: e.status,
        step: e.step,
        next_step_at: e.due.map(rfc3339),
        enrolled_at: rfc3339(e.enrolled_at),
        reason: e.reason.as_deref(),
    }
}

/// One activity entry: the stored record with `at` as RFC 3339.
pub fn activity(a: &ActivityRecord) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("at".into(), Value::String(rfc3339(a.at)));
    }
    v
}

/// One entry of the suppression list.
#[derive(Debug, Serialize)]
pub struct SuppressedOut<'a> {
    id: &'a str,
    email: Option<&'a str>,
    external_id: Option<&'a str>,
    reason: Option<&'a str>,
    unsubscribed_at: Option<String>,
}

/// The wire form of a suppressed contact.
pub fn suppressed(c: &ContactRecord) -> SuppressedOut<'_> {
    SuppressedOut {
        id: &c.id,
        email: c.email.as_deref(),
        external_id: c.external_id.as_deref(),
        reason: c.suppression.as_deref(),
        unsubscribed_at: c.unsubscribed_at.map(rfc3339),
    }
}
