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
        // SIGHUP only: `--no-watch`, or the watcher could not start (see the log).
        "config_reloads_on": if st.reload.watched() { "file changes and SIGHUP" } else { "SIGHUP only" },
        "store": match &store { Ok(n) => json!({ "status": "ok", "pending_deliveries": n }), Err(e) => json!({ "status": "error", "error": e.to_string() }) },
        "in_flight": st.shared.in_flight.len(),
    });
    let code = if store.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

/// Prometheus text exposition.
pub async fn metrics(State(st): State<AppState>) -> Response {
    let shared = st.shared.clone();
    // Unauthenticated and linear in the backlog: scrapes share one scan (up
    // to `DEPTHS_MAX_AGE` old) rather than each walking the due index.
    let scan = move || {
        let running = |event: u128, rule: &str| shared.in_flight.contains(event, rule);
        shared.store.queue_depths(crate::clock::now_ms(), &running)
    };
    let depths = st.reads.depths.get(scan).await;
    if let Err(e) = &depths {
        tracing::warn!(error = ?e, "cannot read queue depths for /metrics");
    }
    let depths = depths.as_deref().ok().map(Vec::as_slice);
    st.shared.lanes.export(&st.shared.runtime.load(), depths, crate::clock::now_ms());
    metrics::gauge!("meshes_deliveries_in_flight").set(st.shared.in_flight.len() as f64);
    let text = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The Prometheus recorder: latencies are exported as histograms (bucketed
/// from 100 µs to 10 min, so one set fits ingest, attempts and end to end),
/// and ingest to delivery up to a day, as the default retry schedule does.
pub fn prometheus_builder() -> metrics_exporter_prometheus::PrometheusBuilder {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    const BUCKETS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0, 300.0, 600.0,
    ];
    const RETRIED: &[f64] = &[1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0];
    let end_to_end: Vec<f64> = BUCKETS.iter().chain(RETRIED).copied().collect();
    // A full name wins over a suffix, whatever the order they are set in.
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("meshes_event_to_delivery_seconds".into()),
                &end_to_end,
            )
        })
        .unwrap_or_else(|_| PrometheusBuilder::new())
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
