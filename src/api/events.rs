//! `/api/v1/events`: ingest of one event, list, detail, payload, retry,
//! cancel, attempts (bulk ingest is in [`super::bulk`]).

use super::error::{ApiError, ApiPath, ApiQuery, FieldError};
use super::ingest::{idempotency_key, ingest, new_event, parse_event, report_conditions};
use super::reads::read;
use super::{AppState, body, machine, render};
use crate::clock;
use crate::delivery::route::{Fate, fate};
use crate::store::{self, DueKey, ListFilter, RetryOutcome, Status};
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// A retry due this soon is "already in flight" for the 425 check.
const RETRY_GUARD_MS: u64 = 5_000;

/// `POST /events`. The body is read here rather than by extractors and
/// per-route layers: this is the hottest route, and each layer costs
/// allocations per request. The caller is authenticated from the headers
/// before any of the body is read ([`body::keyed`]).
pub async fn create(State(st): State<AppState>, req: Request) -> Response {
    match body::keyed(&st, req, super::MAX_BODY).await {
        Ok((p, parts, bytes)) => create_from(&st, p, &parts.headers, &bytes).await.into_response(),
        Err(refused) => refused,
    }
}

async fn create_from(
    st: &AppState,
    p: super::auth::Principal,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let text = body::checked_text(headers, bytes, super::MAX_DEPTH)?;
    let rt = st.shared.runtime.load_full();
    let ws = rt
        .workspace(p.workspace())
        .ok_or_else(|| ApiError::Forbidden("the key's workspace is no longer configured".into()))?;
    let input = parse_event(text, &ws.id).map_err(body::syntax_error)?.map_err(bad_request)?;
    let now = clock::now_ms();
    let key = idempotency_key(headers, &p, bytes)?;
    let (ev, conditions) = new_event(ws, input, &created_by(&p), now, key);
    let mut out = ingest(st, vec![ev], now).await?;
    report_conditions(&out, [conditions]);
    let done = out.remove(0);
    let mut body = Vec::with_capacity(320);
    render::write_created(&done.event, &mut body);
    let mut resp = json_response(StatusCode::CREATED, body);
    if done.duplicate {
        mark_replayed(&mut resp);
    }
    Ok(resp)
}

/// `Idempotent-Replayed: true`: the answer is the original one, for a key
/// seen before (single events and bulk requests alike).
pub(super) fn mark_replayed(resp: &mut Response) {
    resp.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
}

/// A JSON body with the header axum's `Json` sets.
pub(super) fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let json = axum::http::HeaderValue::from_static("application/json");
    (status, [(axum::http::header::CONTENT_TYPE, json)], body).into_response()
}

fn bad_request(errs: Vec<FieldError>) -> ApiError {
    let message =
        errs.iter().map(|e| format!("{}: {}", e.param, e.msg)).collect::<Vec<_>>().join("; ");
    ApiError::BadRequest { message, data: errs }
}

pub(super) fn created_by(p: &super::auth::Principal) -> String {
    match p {
        super::auth::Principal::Publishable { .. } => "publishable_key".to_string(),
        super::auth::Principal::Machine { access_key, .. } => access_key.clone(),
    }
}

/// The handles the ingest routes record into, looked up in the recorder
/// once (when the server is built, after the recorder is installed) rather
/// than per request: each `counter!`/`histogram!` call hashes its key into
/// the registry and allocates.
#[derive(Clone)]
pub struct IngestMetrics {
    pub(super) duration: metrics::Histogram,
    pub(super) ingested: metrics::Counter,
}

impl IngestMetrics {
    /// Handles from the installed recorder (no-ops without one).
    pub fn new() -> Self {
        IngestMetrics {
            duration: metrics::histogram!("meshes_ingest_duration_seconds"),
            ingested: metrics::counter!("meshes_events_ingested_total"),
        }
    }
}

impl Default for IngestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for IngestMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestMetrics").finish_non_exhaustive()
    }
}

/// Query of `GET /events`.
#[derive(Debug, Deserialize)]
// A mistyped filter (`?evnet=`) is refused: ignored, it returned everything.
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
    event: Option<String>,
    status: Option<String>,
    resource: Option<String>,
    resource_id: Option<String>,
}

/// `GET /events`.
pub async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let limit = super::page_limit(q.limit.as_deref())?;
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(store::event_key(c).ok_or_else(|| {
            ApiError::field("cursor", "expected the `next_cursor` of a previous page")
        })?),
    };
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| ApiError::field("status", &format!("expected one of: pending, processing, retrying, completed, failed, canceled; found `{s}`")))?),
    };
    let filter =
        ListFilter { event: q.event, status, resource: q.resource, resource_id: q.resource_id };
    let ws = p.workspace().to_string();
    let page = read(&st, move |sh| {
        sh.store.list(&ws, &filter, cursor, limit, &|e, r| sh.in_flight.contains(e, r))
    })
    .await?;
    let in_flight = |e: u128, r: &str| st.shared.in_flight.contains(e, r);
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|v| {
            let id = store::event_key(&v.event.id).unwrap_or_default();
            render::event_detail(v, &|r| in_flight(id, r))
        })
        .collect();
    Ok(Json(
        json!({ "count": records.len(), "limit": limit, "next_cursor": page.next_cursor, "records": records }),
    ))
}

fn unavailable(e: store::StoreError) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

/// The event, if it exists in the caller's workspace (404 otherwise, so ids
/// of other workspaces are indistinguishable from unknown ones).
async fn find(st: &AppState, ws: &str, id: &str) -> Result<(u128, store::EventView), ApiError> {
    let not_found = || ApiError::NotFound(format!("no event `{id}` in this workspace"));
    let key = store::event_key(id).ok_or_else(not_found)?;
    let view = read(st, move |sh| sh.store.event(key)).await?.ok_or_else(not_found)?;
    if view.event.workspace != ws {
        return Err(not_found());
    }
    Ok((key, view))
}

/// The 404 of an event `find` saw that was pruned before the rest of the
/// request could read it.
fn pruned(id: &str) -> ApiError {
    ApiError::NotFound(format!("no event `{id}` in this workspace (pruned by delivery.retention)"))
}

/// `GET /events/{id}`.
pub async fn get(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let (key, view) = find(&st, p.workspace(), &id).await?;
    Ok(Json(
        json!({ "event": render::event_detail(&view, &|r| st.shared.in_flight.contains(key, r)) }),
    ))
}

/// `GET /events/{id}/payload`: the payload as receivers get it (the text a
/// webhook sends), written without building a tree of it.
pub async fn payload(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let p = machine(&st, &headers)?;
    let (key, _) = find(&st, p.workspace(), &id).await?;
    // Gone since `find` looked: pruned, as if it had been before.
    let raw = read(&st, move |sh| sh.store.payload(key)).await?.ok_or_else(|| pruned(&id))?;
    let text = crate::adapters::payload::Payload::from_stored(&raw);
    let mut body = Vec::with_capacity(text.as_str().len() + 12);
    body.extend_from_slice(b"{\"payload\":");
    body.extend_from_slice(text.as_str().as_bytes());
    body.push(b'}');
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /events/{id}/rules/{rule_id}/retry`.
pub async fn retry(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath((id, rule)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let p = machine(&st, &headers)?;
    let (key, view) = find(&st, p.workspace(), &id).await?;
    let rec = view.rule_events.iter().find(|r| r.rule_id == rule).ok_or_else(|| {
        ApiError::NotFound(format!("event `{id}` has no delivery for rule `{rule}`"))
    })?;
    let now = clock::now_ms();
    let soon =
        !rec.status.is_terminal() && rec.next_attempt_at.is_some_and(|t| t <= now + RETRY_GUARD_MS);
    if st.shared.in_flight.contains(key, &rule) || soon {
        return Err(ApiError::TooEarly {
            message: format!(
                "rule `{rule}` has an attempt in flight or due within 5 s; retry after it finishes"
            ),
            retry_after_secs: 5,
        });
    }
    let to = retry_route(&st, key, rec, now)?;
    match queue_retry(&st, key, rec, to, now).await.map_err(unavailable)? {
        // It was there when `find` looked: pruned since.
        RetryOutcome::NotFound => Err(pruned(&id)),
        RetryOutcome::Scheduled => {
            st.shared.wake.notify_one();
            let (key, view) = find(&st, p.workspace(), &id).await?;
            let rec = view
                .rule_events
                .iter()
                .find(|r| r.rule_id == rule)
                .map(|r| render::rule_event(r, st.shared.in_flight.contains(key, &rule)));
            Ok((StatusCode::ACCEPTED, Json(json!({ "rule_event": rec }))).into_response())
        }
    }
}

/// Where a retried delivery is queued: under the connection its rule
/// targets in the config in force (a rule edit applies to its deliveries).
/// Queued under the one it last used, it would be attempted under that
/// one's lane. A delivery the config can no longer make (its rule or
/// connection removed) is refused with the reason: queued, it would sit
/// under a connection nothing reads, pending, until the next reload.
fn retry_route(
    st: &AppState,
    event: u128,
    rec: &store::RuleEventRecord,
    now: u64,
) -> Result<Option<store::Route>, ApiError> {
    let due = DueKey { conn_key: rec.conn_key.clone(), due: now, event, rule: rec.rule_id.clone() };
    match fate(&st.shared.runtime.load(), &due) {
        Fate::Move(to) => Ok(Some(to)),
        Fate::Keep => Ok(None),
        Fate::Cancel(reason) => Err(ApiError::Conflict(format!(
            "rule `{}` cannot be retried: {reason}; restore it in the config first",
            rec.rule_id
        ))),
    }
}

/// Schedules a delivery again now, under `to` when its rule moved.
async fn queue_retry(
    st: &AppState,
    event: u128,
    rec: &store::RuleEventRecord,
    to: Option<store::Route>,
    now: u64,
) -> Result<RetryOutcome, store::StoreError> {
    let rule = rec.rule_id.clone();
    st.shared.store.writer().run(move |t| t.retry_via(event, &rule, to.as_ref(), now)).await
}

/// `POST /events/{id}/cancel`.
pub async fn cancel(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    cancel_inner(&st, &headers, &id, None).await
}

/// `POST /events/{id}/rules/{rule_id}/cancel`.
pub async fn cancel_rule(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath((id, rule)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    cancel_inner(&st, &headers, &id, Some(&rule)).await
}

async fn cancel_inner(
    st: &AppState,
    headers: &HeaderMap,
    id: &str,
    rule: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(st, headers)?;
    let (key, _) = find(st, p.workspace(), id).await?;
    let reason = format!("canceled through the API by {}", created_by(&p));
    let n = st
        .shared
        .store
        .writer()
        .cancel(key, rule, &reason, clock::now_ms())
        .await
        .map_err(unavailable)?;
    let n = n.ok_or_else(|| {
        ApiError::NotFound(format!(
            "event `{id}` has no delivery for rule `{}`",
            rule.unwrap_or_default()
        ))
    })?;
    let (key, view) = find(st, p.workspace(), id).await?;
    let running = |r: &str| st.shared.in_flight.contains(key, r);
    let in_flight: Vec<&str> = (view.rule_events.iter())
        .filter(|r| r.status == Status::Canceled && running(&r.rule_id))
        .map(|r| r.rule_id.as_str())
        .collect();
    Ok(Json(json!({
        "canceled": n,
        "in_flight": in_flight,
        "event": render::event_detail(&view, &running),
    })))
}

/// `GET /events/{id}/rules/{rule_id}/attempts`.
pub async fn attempts(
    State(st): State<AppState>,
    headers: HeaderMap,
    ApiPath((id, rule)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let p = machine(&st, &headers)?;
    let (key, view) = find(&st, p.workspace(), &id).await?;
    if !view.rule_events.iter().any(|r| r.rule_id == rule) {
        return Err(ApiError::NotFound(format!("event `{id}` has no delivery for rule `{rule}`")));
    }
    let list = read(&st, move |sh| sh.store.attempts_of_event(key, &rule))
        .await?
        .ok_or_else(|| pruned(&id))?;
    let records: Vec<Value> = list
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt,
                "started_at": clock::rfc3339(a.started_at),
                "duration_ms": a.duration_ms,
                "outcome": a.outcome,
                "http_status": a.http_status,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
            })
        })
        .collect();
    Ok(Json(json!({ "count": records.len(), "records": records })))
}
