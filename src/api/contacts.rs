//! `/api/v1/contacts` and `/api/v1/events/track`: contacts, tags,
//! suppression and the activity log. Every route takes a machine JWT only.
//!
//! Writes go through [`crate::automations::service`]: the change, the
//! automations it sets off and their activity log commit in one writer
//! transaction, and the answer comes only after the fsync.

mod check;
mod input;
mod output;

pub use input::standard_field;

use super::auth::Principal;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::reads::read;
use super::{AppState, body_json, machine};
use crate::automations::service;
use crate::clock;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use check::bad_request;
use serde::Deserialize;
use serde_json::{Value, json};

/// Largest contact request body.
pub const MAX_CONTACT_BODY: usize = super::MAX_BODY;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("no contact `{id}` in this workspace"))
}

fn contact_json(c: &crate::store::ContactRecord) -> Json<Value> {
    Json(serde_json::to_value(output::contact(c)).unwrap_or(Value::Null))
}

/// `POST /contacts/upsert`: 201 when created, 200 when updated.
pub async fn upsert(
    State(st): State<AppState>,
    headers: HeaderMap,
    Extension(p): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value = body_json(&headers, body, MAX_CONTACT_BODY)?;
    let input = input::upsert(value).map_err(bad_request)?;
    let (c, created) = service::upsert(&st.shared, p.workspace(), input.who, input.upsert).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, contact_json(&c)).into_response())
}

/// Query of `GET /contacts`.
#[derive(Debug, Deserialize)]
// A mistyped filter (`?evnet=`) is refused: ignored, it returned everything.
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    email: Option<String>,
    external_id: Option<String>,
}

/// `GET /contacts?email=…` or `?external_id=…`.
pub async fn find(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<FindQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let ws = p.workspace().to_string();
    let (by_email, key) = match (q.email, q.external_id) {
        (Some(e), None) => (true, e),
        (None, Some(x)) => (false, x),
        _ => {
            return Err(ApiError::field(
                "email",
                "expected exactly one of the query parameters `email`, `external_id`",
            ));
        }
    };
    let what = if by_email { format!("email `{key}`") } else { format!("external_id `{key}`") };
    let found = read(&st, move |sh| {
        if by_email {
            sh.store.contact_by_email(&ws, &key)
        } else {
            sh.store.contact_by_external_id(&ws, &key)
        }
    })
    .await?;
    let c = found
        .ok_or_else(|| ApiError::NotFound(format!("no contact with {what} in this workspace")))?;
    Ok(contact_json(&c))
}

/// The contact a `{id}` path segment names: a contact id, or an email
/// address (an `@` is never in a UUID), so apps that only know the email
/// can use every contact route.
async fn contact_key(st: &AppState, ws: &str, id: &str) -> Result<u128, ApiError> {
    if !id.contains('@') {
        return check::contact_id(id);
    }
    let (ws, email) = (ws.to_string(), id.to_string());
    read(st, move |sh| sh.store.contact_key_by_email(&ws, &email)).await?.ok_or_else(|| {
        ApiError::NotFound(format!("no contact with email `{id}` in this workspace"))
    })
}

/// `GET /contacts/{id}` (or `/contacts/{email}`): the contact with its enrolments.
pub async fn get(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let key = contact_key(&st, p.workspace(), &id).await?;
    let ws = p.workspace().to_string();
    let found = read(&st, move |sh| {
        let Some(c) = service::get(sh, &ws, key)? else { return Ok(None) };
        Ok(Some((c, sh.store.enrollments(key)?)))
    })
    .await?;
    let (c, enrollments) = found.ok_or_else(|| not_found(&id))?;
    Ok(Json(serde_json::to_value(output::contact_detail(&c, &enrollments)).unwrap_or(Value::Null)))
}

/// `POST /contacts/{id}/tags`: adds tags (never removes any).
pub async fn add_tags(
    State(st): State<AppState>,
    headers: HeaderMap,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = contact_key(&st, p.workspace(), &id).await?;
    let value = body_json(&headers, body, MAX_CONTACT_BODY)?;
    let tags = input::add_tags(value).map_err(bad_request)?;
    let c = service::add_tags(&st.shared, p.workspace(), key, tags).await?;
    Ok(contact_json(&c))
}

/// `DELETE /contacts/{id}/tags/{name}`: 200 whether or not it had the tag.
pub async fn remove_tag(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath((id, name)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let key = contact_key(&st, p.workspace(), &id).await?;
    let tag = input::tag(&Value::String(name)).map_err(|msg| ApiError::field("name", &msg))?;
    let c = service::remove_tag(&st.shared, p.workspace(), key, tag).await?;
    Ok(contact_json(&c))
}

/// `POST /contacts/{id}/unsubscribe`: idempotent; the first reason and time stay.
pub async fn unsubscribe(
    State(st): State<AppState>,
    headers: HeaderMap,
    Extension(p): Extension<Principal>,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let key = contact_key(&st, p.workspace(), &id).await?;
    // The body is optional: an empty one means the default reason.
    let value = match body {
        Ok(b) if b.is_empty() => None,
        other => Some(body_json(&headers, other, MAX_CONTACT_BODY)?),
    };
    let reason = input::unsubscribe(value).map_err(bad_request)?;
    let c = service::unsubscribe(&st.shared, p.workspace(), key, reason).await?;
    Ok(contact_json(&c))
}

/// `POST /events/track`: 202; 404 when no contact has the identifiers.
pub async fn track(
    State(st): State<AppState>,
    headers: HeaderMap,
    Extension(p): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value = body_json(&headers, body, MAX_CONTACT_BODY)?;
    let t = input::track(value).map_err(bad_request)?;
    let name = t.event_name.clone();
    let c = service::track(&st.shared, p.workspace(), t.who, t.event_name, t.properties).await?;
    let body = json!({ "contact_id": c.id, "event_name": name, "tracked_at": clock::rfc3339(clock::now_ms()) });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Query of `GET /contacts/unsubscribed`.
#[derive(Debug, Deserialize)]
// A mistyped filter (`?evnet=`) is refused: ignored, it returned everything.
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<String>,
    cursor: Option<String>,
    as_of: Option<String>,
}

/// Query of `GET /contacts/{id}/activity` (no `as_of`: an activity page is
/// not pinned to an instant, so one given would be ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// `POST /contacts/{id}/resubscribe`: lifts a suppression; idempotent.
pub async fn resubscribe(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let key = contact_key(&st, p.workspace(), &id).await?;
    let c = service::resubscribe(&st.shared, p.workspace(), key).await?;
    Ok(contact_json(&c))
}

/// `GET /contacts/unsubscribed`: contacts suppressed at or before `as_of`,
/// oldest first. Pages asked with the same `as_of` never shift.
pub async fn unsubscribed(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let limit = super::page_limit(q.limit.as_deref())?;
    let after = check::suppressed_cursor(q.cursor.as_deref())?;
    // Not past an unsubscribe still being written, nor into the current
    // millisecond, where one could still be stamped: either would join the page later.
    let asked = check::as_of(q.as_of.as_deref(), u64::MAX)?;
    let as_of = st.shared.store.stamps.settled_now(asked);
    let ws = p.workspace().to_string();
    let page = read(&st, move |sh| sh.store.suppressed(&ws, as_of, after, limit)).await?;
    let records: Vec<_> = page.records.iter().map(output::suppressed).collect();
    Ok(Json(json!({
        "as_of": clock::rfc3339(as_of),
        "count": records.len(),
        "limit": limit,
        "next_cursor": page.next_cursor,
        "records": records,
    })))
}

/// `GET /contacts/{id}/activity`: automation runs and sequence steps, newest first.
pub async fn activity(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ActivityQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let key = contact_key(&st, p.workspace(), &id).await?;
    let limit = super::page_limit(q.limit.as_deref())?;
    let cursor = check::activity_cursor(q.cursor.as_deref())?;
    let ws = p.workspace().to_string();
    let page = read(&st, move |sh| {
        if service::get(sh, &ws, key)?.is_none() {
            return Ok(None);
        }
        sh.store.activity(key, cursor, limit).map(Some)
    })
    .await?
    .ok_or_else(|| not_found(&id))?;
    let records: Vec<Value> = page.records.iter().map(output::activity).collect();
    Ok(Json(json!({
        "count": records.len(),
        "limit": limit,
        "next_cursor": page.next_cursor,
        "records": records,
    })))
}
