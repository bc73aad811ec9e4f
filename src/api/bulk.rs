//! `POST /api/v1/events/bulk`: up to 100 events in one request and one
//! commit, each accepted or refused on its own.

use super::error::{ApiError, FieldError};
use super::events::{created_by, json_response, mark_replayed};
use super::ingest::{
    EventInput, idempotency_key, ingest, ingest_bulk, new_event, parse_event, report_conditions,
};
use super::{AppState, body, render};
use crate::clock;
use crate::gateway::rules::ConditionError;
use crate::gateway::runtime::WorkspaceRt;
use crate::store::writer::{BulkOutcome, BulkReply, BulkRequest, IdempotencyKey};
use crate::store::{EventRecord, NewEvent};
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

/// Where each item went (an index in `batch`, or its problems), and the
/// events of those accepted with their rules' condition errors.
struct Items {
    slots: Vec<Result<usize, Vec<FieldError>>>,
    batch: Vec<NewEvent>,
    conditions: Vec<Vec<ConditionError>>,
}

async fn bulk_from(
    st: &AppState,
    p: super::auth::Principal,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let text = body::checked_items_text(headers, bytes, super::MAX_DEPTH)?;
    let items = bulk_items(text)?;
    let rt = st.shared.runtime.load_full();
    let ws = rt
        .workspace(p.workspace())
        .ok_or_else(|| ApiError::Forbidden("the key's workspace is no longer configured".into()))?;
    // Bound to the whole body: a repeat is the same request.
    let key = idempotency_key(headers, &p, bytes)?;
    let now = clock::now_ms();
    let items = check_items(ws, &created_by(&p), items, key.as_ref(), now);
    let errors = items.slots.iter().filter(|s| s.is_err()).count();
    let status = match errors {
        0 => StatusCode::CREATED,
        n if n == items.slots.len() => StatusCode::BAD_REQUEST,
        _ => StatusCode::MULTI_STATUS,
    };
    let Some(key) = key else {
        // Without a key nothing is a replay.
        let Items { slots, batch, conditions } = items;
        let stored = if batch.is_empty() { Vec::new() } else { ingest(st, batch, now).await? };
        report_conditions(&stored, conditions);
        let records: Vec<&EventRecord> = stored.iter().map(|d| &d.event).collect();
        return Ok(json_response(status, bulk_answer(&slots, &records, errors)));
    };
    let request = |reply| BulkRequest { workspace: ws.id.clone(), key, reply };
    keyed(st, items, request, status, errors, now).await
}

/// A bulk request with an `Idempotency-Key`: its answer, if every event is
/// new, is kept with them for its repeats; a repeat gets the kept one.
async fn keyed(
    st: &AppState,
    items: Items,
    request: impl FnOnce(BulkReply) -> BulkRequest,
    status: StatusCode,
    errors: usize,
    now: u64,
) -> Result<Response, ApiError> {
    let Items { slots, batch, conditions } = items;
    let records: Vec<&EventRecord> = batch.iter().map(|e| &e.record).collect();
    let body = bulk_answer(&slots, &records, errors);
    let reply = BulkReply { status: status.as_u16(), body: body.clone() };
    let stored = match ingest_bulk(st, batch, request(reply), now).await? {
        BulkOutcome::Replayed(reply) => {
            let status = StatusCode::from_u16(reply.status).map_err(|_| {
                ApiError::Unavailable("a kept bulk reply has no valid status".into())
            })?;
            let mut resp = json_response(status, reply.body);
            mark_replayed(&mut resp);
            return Ok(resp);
        }
        BulkOutcome::Stored(stored) => stored,
    };
    report_conditions(&stored, conditions);
    if stored.iter().all(|d| !d.duplicate) {
        return Ok(json_response(status, body));
    }
    // Answered (in part) from the item rows of an earlier version.
    let records: Vec<&EventRecord> = stored.iter().map(|d| &d.event).collect();
    let mut resp = json_response(status, bulk_answer(&slots, &records, errors));
    if stored.iter().all(|d| d.duplicate) {
        mark_replayed(&mut resp);
    }
    Ok(resp)
}

/// Checks each item on its own; builds the events of those accepted.
fn check_items(
    ws: &WorkspaceRt,
    created_by: &str,
    items: Vec<&RawValue>,
    key: Option<&IdempotencyKey>,
    now: u64,
) -> Items {
    let mut out =
        Items { slots: Vec::with_capacity(items.len()), batch: Vec::new(), conditions: Vec::new() };
    for (i, item) in items.into_iter().enumerate() {
        let slot = check_item(item, &ws.id).map(|input| {
            let (event, conditions) = new_event(ws, input, created_by, now, key.map(|k| k.item(i)));
            out.batch.push(event);
            out.conditions.push(conditions);
            out.batch.len() - 1
        });
        out.slots.push(slot);
    }
    out
}

/// One item, held to what `POST /events` holds one event to.
fn check_item<'a>(item: &'a RawValue, workspace: &str) -> Result<EventInput<'a>, Vec<FieldError>> {
    let len = item.get().len();
    if len > super::MAX_BODY {
        let max = super::MAX_BODY;
        let msg =
            format!("is {len} bytes; one event may be at most {max} bytes (as on POST /events)");
        return Err(vec![FieldError { param: "body".into(), msg }]);
    }
    // Each item is valid JSON already, so only field problems remain.
    parse_event(item.get(), workspace)
        .unwrap_or_else(|e| Err(vec![FieldError { param: "body".into(), msg: e.to_string() }]))
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
    stored: &[&EventRecord],
    errors: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + 300 * slots.len());
    let mut o = crate::store::json::Obj::new(&mut out);
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
                Ok(j) => render::write_created(stored[*j], out),
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
