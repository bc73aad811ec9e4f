//! The operations of the contacts API (`src/api/contacts.rs`).

use super::contact_schemas as s;
use super::schemas::NAME;
use super::{Gen, Op};
use serde_json::{Value, json};

/// A write that reads a JSON body and names a contact by id.
const WRITE_BY_ID: &[u16] = &[400, 401, 403, 404, 408, 411, 413, 415, 429, 501, 503];
/// Upsert: as above, plus 409 (the identifiers name two contacts).
const UPSERT: &[u16] = &[400, 401, 403, 408, 409, 411, 413, 415, 429, 501, 503];
/// Track: a contact named in the body may be unknown (404) or ambiguous (409).
const TRACK: &[u16] = &[400, 401, 403, 404, 408, 409, 411, 413, 415, 429, 501, 503];
/// Reads by id.
const READ_BY_ID: &[u16] = &[400, 401, 403, 404, 429, 503];
/// Reads without an id.
const READ: &[u16] = &[400, 401, 403, 429, 503];

fn contact_id() -> Value {
    json!({ "name": "id", "in": "path", "required": true,
        "description": "Contact id (a UUID), or the contact's email address (matched case-insensitively); anything else answers 400, a contact of another workspace 404",
        "schema": { "type": "string", "anyOf": [{ "format": "uuid" }, { "format": "email" }] } })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn limit() -> Value {
    query(
        "limit",
        "Page size, 1 to 200 (default 50)",
        json!({ "type": "integer", "minimum": 1, "maximum": 200 }),
    )
}

/// Links from an answer carrying `{contact}` to the routes its id feeds.
fn contact_links() -> Vec<(&'static str, Value)> {
    let id = json!({ "id": "$response.body#/contact/id" });
    vec![
        ("getContact", id.clone()),
        ("addContactTags", id.clone()),
        ("unsubscribeContact", id.clone()),
        ("listContactActivity", id),
    ]
}

pub(super) fn contact_ops(g: &mut Gen) -> Vec<Op> {
    let contact = g.out::<s::ContactFound>();
    let mut unsubscribe = Op::new(
        "post",
        "/api/v1/contacts/{id}/unsubscribe",
        "unsubscribeContact",
        "Suppress a contact: email steps and email notifications skip it (idempotent: the first reason and time stay)",
    )
    .param(contact_id())
    .body(g.input::<s::UnsubscribeBody>())
    .ok(200, "The suppressed contact", contact.clone())
    .errors(WRITE_BY_ID);
    // The body is optional: no body means `{"reason": "unsubscribed"}`.
    if let Some(b) = unsubscribe.body.as_mut() {
        b["required"] = json!(false);
    }
    let mut ops = vec![
        Op::new(
            "post",
            "/api/v1/contacts/upsert",
            "upsertContact",
            "Create or update a contact (matched by external_id, then email); runs its automations",
        )
        .body(g.input::<s::UpsertBody>())
        .ok(201, "Created", contact.clone())
        .ok(200, "Updated (or unchanged)", contact.clone())
        .links(201, &contact_links())
        .links(200, &contact_links())
        .errors(UPSERT),
        Op::new("get", "/api/v1/contacts", "findContact", "A contact by email or external id")
            .param(query(
                "email",
                "Email (case-insensitive); give this or `external_id`",
                json!({ "type": "string" }),
            ))
            .param(query("external_id", "External id; give this or `email`", json!({ "type": "string" })))
            .ok(200, "The contact", contact.clone())
            .errors(READ_BY_ID),
        Op::new("get", "/api/v1/contacts/{id}", "getContact", "A contact with its enrolments")
            .param(contact_id())
            .ok(200, "The contact", g.out::<s::ContactDetailFound>())
            .errors(READ_BY_ID),
        Op::new(
            "post",
            "/api/v1/contacts/{id}/tags",
            "addContactTags",
            "Add tags (fires `tag_added` for each new one)",
        )
        .param(contact_id())
        .body(g.input::<s::TagsBody>())
        .ok(200, "The contact", contact.clone())
        .errors(WRITE_BY_ID),
        Op::new(
            "delete",
            "/api/v1/contacts/{id}/tags/{name}",
            "removeContactTag",
            "Remove a tag (fires `tag_removed` if it was there; 200 either way)",
        )
        .param(contact_id())
        .param(json!({ "name": "name", "in": "path", "required": true, "description": "The tag (1–100 characters, not blank, no control characters; percent-encoded)",
            "schema": { "type": "string", "minLength": 1, "maxLength": 100, "pattern": NAME } }))
        .ok(200, "The contact", contact.clone())
        .errors(READ_BY_ID),
        unsubscribe,
        Op::new(
            "post",
            "/api/v1/contacts/{id}/resubscribe",
            "resubscribeContact",
            "Lift a suppression (the contact opted back in); fires `contact_updated` with `changes.unsubscribed` true → false; 200 either way",
        )
        .param(contact_id())
        .ok(200, "The contact", contact)
        .errors(READ_BY_ID),
    ];
    ops.extend(audit_ops(g));
    ops
}

fn audit_ops(g: &mut Gen) -> Vec<Op> {
    vec![
        Op::new(
            "get",
            "/api/v1/contacts/unsubscribed",
            "listUnsubscribed",
            "The suppression list, oldest first, as of an instant (stable paging)",
        )
        .param(query(
            "as_of",
            "Only contacts suppressed at or before this instant: RFC 3339, `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits (kept to the millisecond), then `Z` or an offset such as `+02:00` (in a URL `%2B02:00`: a bare `+` reads as a space). A real date and time only (`2026-02-31` is a 400, not March 3rd); a leap second `23:59:60Z` counts as `23:59:59.999Z`. Default and upper bound: the millisecond before now (a suppression may still land in the current one). Echoed: pass it again with `cursor` and pages never shift. A suppression committing during the request may be stamped shortly before a default `as_of` and be left out; for an exact export, use an `as_of` a few seconds in the past",
            json!({ "type": "string", "format": "date-time" }),
        ))
        .param(query("cursor", "`next_cursor` of the previous page", json!({ "type": "string", "pattern": "^[0-9]+:[0-9a-fA-F-]{36}$" })))
        .param(limit())
        .ok(200, "A page of suppressed contacts", g.out::<s::SuppressedPage>())
        .errors(READ),
        Op::new(
            "get",
            "/api/v1/contacts/{id}/activity",
            "listContactActivity",
            "A contact's audit log: every automation run and sequence step, newest first",
        )
        .param(contact_id())
        .param(query("cursor", "`next_cursor` of the previous page (an entry id)", json!({ "type": "string", "format": "uuid" })))
        .param(limit())
        .ok(200, "A page of entries", g.out::<s::ActivityPage>())
        .errors(READ_BY_ID),
        Op::new(
            "post",
            "/api/v1/events/track",
            "trackEvent",
            "Record a custom event for a known contact and run its `custom_event` automations",
        )
        .body(g.input::<s::TrackBody>())
        .ok(202, "Recorded; its automations ran", g.out::<s::Tracked>())
        .links(202, &[("getContact", json!({ "id": "$response.body#/contact_id" }))])
        .errors(TRACK),
    ]
}
