//! `POST /api/v1/events/bulk`: up to 100 events in one request and one
//! commit, each accepted or refused on its own.

use super::error::{ApiError, FieldError};
use super::events::{created_by, ingest, json_response, mark_replayed};
use super::ingest::{idempotency_key, new_event, parse_event};
use super::{AppState, body, render};
use crate::clock;
use crate::store::{self, NewEvent};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use serde_json::value::RawValue;

/// Most events in one bulk request.
pub const MAX_BULK: usize = 100;
/// `POST /events/bulk`: 1–100 events; 201 all accepted, 207 mixed, 400 none.
/// The caller is authenticated before any of the body is read.
pub async fn bulk(State(st): State<AppState>, req: Request) -> Response {
    match body::keyed(&st, req, super::MAX_BULK_BODY).await {
        Ok((p, parts, bytes)) => bulk_from(&st, p, &parts.headers, &bytes).await.into_response(),
        Err(refused) => refused,
    }
}

async fn bulk_from(
    st: &AppState,
    p: super::auth::Principal,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let text = body::checked_text(headers, bytes, super::MAX_DEPTH)?;
    let items = bulk_items(text)?;
    let rt = st.shared.runtime.load_full();
    let ws = rt
        .workspace(p.workspace())
        .ok_or_else(|| ApiError::Forbidden("the key's workspace is no longer configured".into()))?;
    // Every item carries the whole body's hash: a repeat is the same request.
    let key = idempotency_key(headers, &p, bytes)?;
    let now = clock::now_ms();
    let mut slots: Vec<Result<usize, Vec<FieldError>>> = Vec::with_capacity(items.len());
    let mut batch: Vec<NewEvent> = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        // Each item is valid JSON already, so only field problems remain.
        let parsed = parse_event(item.get(), &ws.id)
            .unwrap_or_else(|e| Err(vec![FieldError { param: "body".into(), msg: e.to_string() }]));
        slots.push(parsed.map(|input| {
            batch.push(new_event(ws, input, &created_by(&p), now, key.as_ref().map(|k| k.item(i))));
            batch.len() - 1
        }));
    }
    let stored = if batch.is_empty() { Vec::new() } else { ingest(st, batch, now).await? };
    let errors = slots.iter().filter(|s| s.is_err()).count();
    let status = match errors {
        0 => StatusCode::CREATED,
        n if n == slots.len() => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    };
    let mut resp = json_response(status, bulk_answer(&slots, &stored, errors));
    // The key covers the whole body, so its items are repeats all together.
    if !stored.is_empty() && stored.iter().all(|d| d.duplicate) {
        mark_replayed(&mut resp);
    }
    Ok(resp)
}

/// The body's items, still raw. One pass: each is read once more, by
/// `parse_event`. Anything but an array is checked for syntax first, so a
/// broken body is reported as such whatever its shape.
fn bulk_items(text: &str) -> Result<Vec<&RawValue>, ApiError> {
    if !text.trim_start().starts_with('[') {
        serde_json::from_str::<&RawValue>(text).map_err(body::syntax_error)?;
        return Err(ApiError::field("body", "expected a JSON array of 1 to 100 events"));
    }
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(body::syntax_error)?;
    if items.is_empty() || items.len() > MAX_BULK {
        return Err(ApiError::field(
            "body",
            &format!("expected 1 to {MAX_BULK} events, found {}", items.len()),
        ));
    }
    Ok(items)
}

/// `{"count", "error_count", "records": [{"event": …} or {"message", "error"}]}`,
/// written straight from the records (a `Value` tree per event cost more
/// than storing it).
fn bulk_answer(
    slots: &[Result<usize, Vec<FieldError>>],
    stored: &[store::Ingested],
    errors: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 300 * slots.len());
    let mut o = store::json::Obj::new(&mut out);
    if errors == slots.len() {
        // Every event refused is a 400, and a client reading any 400 looks
        // for the error shape: it is here, with every item's errors, beside
        // the bulk result the 207 has.
        let body = all_refused(slots).body();
        for key in ["message", "error"] {
            o.raw(key, |out| drop(serde_json::to_writer(&mut *out, &body[key])));
        }
    }
    o.num("count", (slots.len() - errors) as u64).num("error_count", errors as u64);
    o.raw("records", |out| {
        out.push(b'[');
        for (i, slot) in slots.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match slot {
                Ok(j) => render::write_created(&stored[*j].event, out),
                // Writing into a Vec cannot fail.
                Err(errs) => drop(serde_json::to_writer(&mut *out, &item_error(i, errs))),
            }
        }
        out.push(b']');
    });
    o.end();
    out
}

/// The error of an all-refused answer: one message, every item's fields.
fn all_refused(slots: &[Result<usize, Vec<FieldError>>]) -> ApiError {
    let data: Vec<FieldError> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some(indexed(i, s.as_ref().err()?)))
        .flatten()
        .collect();
    let first =
        data.first().map_or_else(String::new, |e| format!("; the first: {}: {}", e.param, e.msg));
    let message = format!("all {} events were refused{first}", slots.len());
    ApiError::BadRequest { message, data }
}

fn item_error(i: usize, errs: &[FieldError]) -> Value {
    let data: Vec<FieldError> = indexed(i, errs).collect();
    let message =
        data.iter().map(|e| format!("{}: {}", e.param, e.msg)).collect::<Vec<_>>().join("; ");
    ApiError::BadRequest { message, data }.body()
}

/// One refused item's fields, each `param` prefixed with the item's index.
fn indexed(i: usize, errs: &[FieldError]) -> impl Iterator<Item = FieldError> + '_ {
    errs.iter().map(move |e| FieldError { param: format!("[{i}].{}", e.param), msg: e.msg.clone() })
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
