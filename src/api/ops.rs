//! `/healthz`, `/readyz`, `/metrics`.

use super::AppState;
use crate::clock::rfc3339;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Liveness: the process answers.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: a config is in force and the store answers. Shows the config
/// version and hash, and the last reload error (the old config keeps serving).
pub async fn readyz(State(st): State<AppState>) -> Response {
    let rt = st.shared.runtime.load_full();
    let store = st.shared.store.due_len();
    let last = st.reload.last_error();
    let body = json!({
        "status": if store.is_ok() { "ready" } else { "unavailable" },
        "config": {
            "version": rt.version,
            "hash": rt.hash,
            "loaded_at": rfc3339(rt.loaded_at),
            "workspaces": rt.workspaces.len(),
        },
        "last_reload_error": last.map(|(at, errors)| json!({ "at": rfc3339(at), "errors": errors })),
        "store": match &store { Ok(n) => json!({ "status": "ok", "pending_deliveries": n }), Err(e) => json!({ "status": "error", "error": e.to_string() }) },
        "in_flight": st.shared.in_flight.len(),
    });
    let code = if store.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(st): State<AppState>) -> Response {
    if let Ok(n) = st.shared.store.due_len() {
        metrics::gauge!("meshes_pending_deliveries").set(n as f64);
    }
    metrics::gauge!("meshes_deliveries_in_flight").set(st.shared.in_flight.len() as f64);
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
