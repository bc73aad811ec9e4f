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
    // Inline, not through the read gate: the count is kept in the table's
    // header (no scan), and a probe must not queue behind a crowd of listers.
    let store = match st.shared.store.writable().await {
        Ok(()) => st.shared.store.due_len(),
        Err(e) => Err(e),
    };
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
    let store = st.shared.store.clone();
    // Unauthenticated and linear in the backlog: scrapes share one scan (up
    // to `DEPTHS_MAX_AGE` old) rather than each walking the due index.
    let depths = st.reads.depths.get(move || store.queue_depths(crate::clock::now_ms())).await;
    match depths {
        Ok(depths) => record_depths(&st.shared.runtime.load(), &depths),
        Err(e) => tracing::warn!(error = ?e, "cannot read queue depths for /metrics"),
    }
    metrics::gauge!("meshes_deliveries_in_flight").set(st.shared.in_flight.len() as f64);
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

fn record_depths(rt: &crate::gateway::runtime::Runtime, depths: &[crate::store::QueueDepth]) {
    // A configured connection whose queue emptied must read 0, not its last value.
    for conn in rt.workspaces.values().flat_map(|w| w.connections.values()) {
        if !depths.iter().any(|d| d.conn_key == conn.conn_key) {
            metrics::gauge!("meshes_queue_depth", "connection" => conn.conn_key.clone()).set(0.0);
            metrics::gauge!("meshes_retry_backlog", "connection" => conn.conn_key.clone()).set(0.0);
        }
    }
    let mut total = 0;
    for d in depths {
        let conn = d.conn_key.clone();
        metrics::gauge!("meshes_queue_depth", "connection" => conn.clone()).set(d.due as f64);
        metrics::gauge!("meshes_retry_backlog", "connection" => conn).set(d.later as f64);
        total += d.due + d.later;
    }
    metrics::gauge!("meshes_pending_deliveries").set(total as f64);
}

/// The Prometheus recorder: latencies are exported as histograms (bucketed
/// from 100 µs to 10 min, so one set fits ingest, attempts and end to end).
pub fn prometheus_builder() -> metrics_exporter_prometheus::PrometheusBuilder {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const BUCKETS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .unwrap_or_else(|_| PrometheusBuilder::new())
}
