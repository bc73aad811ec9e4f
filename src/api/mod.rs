//! HTTP API under `/api/v1` (wire-compatible with Meshes) and the ops routes.

pub mod auth;
pub mod body;
pub mod bulk;
pub mod contacts;
pub mod error;
pub mod events;
pub mod hot;
pub mod ingest;
pub mod numbers;
pub mod openapi;
pub mod ops;
pub mod raw;
pub mod reads;
pub mod render;
pub mod resources;

use crate::delivery::engine::Shared;
use crate::gateway::reload::ReloadStatus;
use auth::{Principal, RateLimits};
use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, Method};
use axum::middleware::Next;
use axum::routing::{MethodRouter, delete, get, post};
use bytes::Bytes;
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::sync::Arc;
use tower_http::cors::{Any, CorsLayer};

/// Largest single-event body.
pub const MAX_BODY: usize = 1 << 20;
/// Largest bulk body.
pub const MAX_BULK_BODY: usize = 8 << 20;
/// Deepest JSON nesting accepted.
pub const MAX_DEPTH: usize = 32;

/// What every handler reads.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Store, config and delivery state.
    pub shared: Arc<Shared>,
    /// Per-credential rate limits.
    pub limits: Arc<RateLimits>,
    /// Last reload result.
    pub reload: Arc<ReloadStatus>,
    /// Prometheus exposition, when a recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// The ingest routes' metrics, looked up once.
    pub ingest_metrics: events::IngestMetrics,
    /// The handlers' store reads: their limit, and the shared queue-depth scan.
    pub reads: Arc<reads::Reads>,
}

/// An `AppState` over a store in `dir` and the config `text`, for handler
/// tests (rate limits high enough never to trip).
#[cfg(test)]
pub(crate) fn test_state(dir: &std::path::Path, text: String, reads: reads::Reads) -> AppState {
    use crate::delivery::engine::Engine;
    use arc_swap::ArcSwap;
    #[allow(clippy::unwrap_used)]
    let store = crate::store::Store::open(dir).unwrap();
    let rt = crate::gateway::runtime::from_text(text);
    let engine = Engine::new(store, Arc::new(ArcSwap::from_pointee(rt)));
    AppState {
        shared: engine.shared(),
        limits: Arc::new(RateLimits::new(1_000_000, 2_000_000)),
        reload: Arc::new(ReloadStatus::default()),
        metrics: None,
        ingest_metrics: events::IngestMetrics::new(),
        reads: Arc::new(reads),
    }
}

/// Authenticates and rate-limits a request.
pub fn principal(st: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let rt = st.shared.runtime.load_full();
    let p = rt.keys.authenticate(headers, crate::clock::now_ms() / 1000)?;
    st.limits.check(p.rate_key())?;
    Ok(p)
}

/// Like [`principal`], but read and retry routes need a machine key.
pub fn machine(st: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let p = principal(st, headers)?;
    p.require_machine()?;
    Ok(p)
}

/// The body as JSON: size (`limit`), content type, UTF-8 and depth checked.
pub fn body_json(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<serde_json::Value, ApiError> {
    let bytes = body_bytes(body, limit)?;
    let value = body::parse_json(headers, &bytes, MAX_DEPTH)?;
    // The text is valid JSON (it parsed), so valid UTF-8.
    let too_long = numbers::value_suspect(&value)
        .then(|| numbers::find(std::str::from_utf8(&bytes).unwrap_or_default()))
        .flatten();
    match too_long {
        Some(bad) => Err(ApiError::field(bad.path.trim_start_matches('.'), &bad.problem)),
        None => Ok(value),
    }
}

/// The `limit` of a paged route: 1 to 200, 50 when absent.
pub fn page_limit(q: Option<&str>) -> Result<usize, ApiError> {
    match q {
        None => Ok(50),
        Some(s) => s.parse::<usize>().ok().filter(|n| (1..=200).contains(n)).ok_or_else(|| {
            ApiError::field("limit", &format!("expected an integer from 1 to 200, found `{s}`"))
        }),
    }
}

/// The body's bytes, or why they could not be read (413 past `limit`).
pub fn body_bytes(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|r| body::from_rejection(r, limit))
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let cors = ingest_cors();
    let ingest = Router::new()
        .route("/events", ingest_route(post(events::create).get(events::list), &cors))
        .route("/events/bulk", ingest_route(post(bulk::bulk), &cors));
    let managed = || {
        post(resources::managed_in_git)
            .put(resources::managed_in_git)
            .patch(resources::managed_in_git)
            .delete(resources::managed_in_git)
    };
    let api = Router::new()
        .merge(ingest)
        .route("/events/{id}", get(events::get))
        .route("/events/{id}/payload", get(events::payload))
        .route("/events/{id}/cancel", post(events::cancel))
        .route("/events/{id}/rules/{rule_id}/retry", post(events::retry))
        .route("/events/{id}/rules/{rule_id}/cancel", post(events::cancel_rule))
        .route("/events/{id}/rules/{rule_id}/attempts", get(events::attempts))
        .route("/integrations", get(resources::integrations))
        .route("/connections", get(resources::connections).merge(managed()))
        .route("/connections/{id}", get(resources::connection).merge(managed()))
        .route("/connections/{id}/actions", get(resources::actions))
        .route("/rules", get(resources::rules).merge(managed()))
        .route("/rules/{id}", get(resources::rule).merge(managed()))
        .route("/workspaces/{id}", get(resources::workspace_get))
        .merge(contact_routes(&state));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state)
}

/// The contacts API. Static segments (`upsert`, `unsubscribed`, `track`)
/// take precedence over `{id}`.
fn contact_routes(st: &AppState) -> Router<AppState> {
    use contacts::MAX_CONTACT_BODY as LIMIT;
    let body_route = |route, limit| body_route(route, limit, st);
    Router::new()
        .route("/contacts", get(contacts::find))
        .route("/contacts/upsert", body_route(post(contacts::upsert), LIMIT))
        .route("/contacts/unsubscribed", get(contacts::unsubscribed))
        .route("/contacts/{id}", get(contacts::get))
        .route("/contacts/{id}/tags", body_route(post(contacts::add_tags), LIMIT))
        .route("/contacts/{id}/tags/{name}", delete(contacts::remove_tag))
        .route("/contacts/{id}/unsubscribe", body_route(post(contacts::unsubscribe), LIMIT))
        .route("/contacts/{id}/resubscribe", post(contacts::resubscribe))
        .route("/contacts/{id}/activity", get(contacts::activity))
        .route("/events/track", body_route(post(contacts::track), LIMIT))
}

/// A machine-key route that reads a JSON body: the caller is checked and
/// the declared size limited before the body is read
/// ([`body::machine_first`]); the handler takes the principal as an
/// `Extension`.
fn body_route(
    route: MethodRouter<AppState>,
    limit: usize,
    st: &AppState,
) -> MethodRouter<AppState> {
    route.layer::<_, Infallible>(DefaultBodyLimit::max(limit)).layer::<_, Infallible>(
        axum::middleware::from_fn_with_state(
            st.clone(),
            move |State(st): State<AppState>, req: Request, next: Next| {
                body::machine_first(st, limit, req, next)
            },
        ),
    )
}

/// The CORS of the ingest routes: any origin may send events with a
/// publishable key. The starting gateway answers with it too, so that a
/// browser sees its 503 and `Retry-After` rather than a CORS failure.
pub(crate) fn ingest_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("x-meshes-publishable-key"),
            HeaderName::from_static("idempotency-key"),
        ])
        // Without these a browser's script cannot read when to retry a 429
        // or 503, nor whether its request was a replay.
        .expose_headers(hot::EXPOSED)
        .max_age(std::time::Duration::from_secs(600))
}

/// An ingest route: CORS (the handlers read and limit their own bodies, see
/// [`body::read_limited`]). The explicit OPTIONS handler keeps preflights
/// away from the router's 405 fallback; the CORS layer answers them before
/// it runs.
pub(crate) fn ingest_route<S: Clone + Send + Sync + 'static>(
    route: MethodRouter<S>,
    cors: &CorsLayer,
) -> MethodRouter<S> {
    route.options(|| async { axum::http::StatusCode::NO_CONTENT }).layer(cors.clone())
}
