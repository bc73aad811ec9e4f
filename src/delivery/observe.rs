//! What deliveries tell the operator: the per-attempt metrics, the
//! per-connection gauges `/metrics` exports, and the log lines of final
//! failures and of breakers opening and closing.

use super::lane::{Change, Lane};
use crate::adapters::adapter::{AttemptReport, Delivery};
use crate::config::model::Outcome;
use crate::gateway::runtime::{ConnectionRt, Runtime};
use crate::store::QueueDepth;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The scheduler's lanes, for `/metrics` to read their breakers when it is
/// scraped (a gauge set on changes only kept reading "open" after the
/// cooldown for as long as nothing was sent), and the connections whose
/// gauges the last scrape exported (the exporter cannot drop a label set:
/// a connection gone from the config is set to 0 once, or it would keep
/// its last values forever).
#[derive(Debug, Default)]
pub struct Lanes {
    live: Mutex<HashMap<String, Arc<Lane>>>,
    exported: Mutex<HashSet<String>>,
}

impl Lanes {
    /// The lane the scheduler now uses for `conn_key`.
    pub(crate) fn track(&self, conn_key: &str, lane: Arc<Lane>) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(conn_key.to_string(), lane);
        }
    }

    /// Forgets the lanes of connections not in `keep` (the scheduler dropped them).
    pub(super) fn retain(&self, keep: &HashSet<&str>) {
        if let Ok(mut live) = self.live.lock() {
            live.retain(|k, _| keep.contains(k.as_str()));
        }
    }

    fn snapshot(&self) -> HashMap<String, Arc<Lane>> {
        self.live.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sets the per-connection gauges for a scrape at `now` (Unix ms), from
    /// the config, the breakers and the queue scan (`None` when it failed:
    /// the queue gauges then keep their values). A connection is exported
    /// while it is configured or has deliveries queued; a connection
    /// exported before and now neither reads 0 once.
    pub fn export(&self, rt: &Runtime, depths: Option<&[QueueDepth]>, now: u64) {
        let lanes = self.snapshot();
        let pausing = |k: &str| lanes.get(k).is_some_and(|l| l.pausing(now));
        let mut shown: HashSet<String> = rt.connections().map(|c| c.conn_key.clone()).collect();
        shown.extend(depths.unwrap_or_default().iter().map(|d| d.conn_key.clone()));
        for k in &shown {
            circuit_gauge(k, pausing(k));
        }
        let Some(depths) = depths else { return };
        queue_gauges(&shown, depths, &pausing);
        let Ok(mut exported) = self.exported.lock() else { return };
        for gone in exported.difference(&shown) {
            circuit_gauge(gone, false);
            set_queue(gone, 0, 0);
        }
        *exported = shown;
    }
}

/// `meshes_queue_depth` (due, not dispatched, not held by the breaker; a
/// dispatched delivery waiting for the rate limit is in flight, not here),
/// `meshes_retry_backlog` (scheduled later, or held by an open breaker)
/// for each of `shown`, and `meshes_pending_deliveries` (every entry of the
/// due index, running ones too).
fn queue_gauges(shown: &HashSet<String>, depths: &[QueueDepth], pausing: &dyn Fn(&str) -> bool) {
    let by_conn: HashMap<&str, &QueueDepth> =
        depths.iter().map(|d| (d.conn_key.as_str(), d)).collect();
    for k in shown {
        match by_conn.get(k.as_str()) {
            None => set_queue(k, 0, 0),
            Some(d) if pausing(k) => set_queue(k, 0, d.due + d.later),
            Some(d) => set_queue(k, d.due, d.later),
        }
    }
    let total: u64 = depths.iter().map(|d| d.due + d.later + d.running).sum();
    metrics::gauge!("meshes_pending_deliveries").set(total as f64);
}

fn set_queue(conn_key: &str, due: u64, later: u64) {
    metrics::gauge!("meshes_queue_depth", "connection" => conn_key.to_string()).set(due as f64);
    metrics::gauge!("meshes_retry_backlog", "connection" => conn_key.to_string()).set(later as f64);
}

/// `meshes_circuit_open{connection}`: 1 while the breaker (or a spent
/// account quota) holds the connection's sends back, else 0.
fn circuit_gauge(conn_key: &str, open: bool) {
    metrics::gauge!("meshes_circuit_open", "connection" => conn_key.to_string())
        .set(f64::from(u8::from(open)));
}

/// The metrics of an attempt that went to the destination (not of one
/// postponed for this server's own reason: it sent nothing).
pub fn attempt(
    conn: &ConnectionRt,
    report: &AttemptReport,
    duration: std::time::Duration,
    age_ms: u64,
) {
    let outcome = report.outcome();
    metrics::counter!("meshes_deliveries_total", "connection" => conn.conn_key.clone(), "outcome" => outcome.as_str()).increment(1);
    metrics::histogram!("meshes_delivery_duration_seconds", "connection" => conn.conn_key.clone())
        .record(duration.as_secs_f64());
    if outcome == Outcome::Delivered {
        // Ingest to delivery, retries included: what the user of the event waits.
        metrics::histogram!("meshes_event_to_delivery_seconds", "connection" => conn.conn_key.clone())
            .record(age_ms as f64 / 1000.0);
    }
}

/// One line per delivery that fails for good. Ids, outcome and status
/// only: the response body and the attempt's message can quote what the
/// destination echoed back, secrets included.
pub fn failed(d: &Delivery, conn_key: &str, report: &AttemptReport) {
    tracing::warn!(
        delivery = %d.delivery_id,
        event = %d.event_id,
        rule = %d.rule_id,
        connection = %conn_key,
        attempt = d.attempt,
        outcome = report.outcome().as_str(),
        http_status = report.http_status,
        "delivery failed for good: it is not retried"
    );
}

/// A breaker opening (once per cooldown at most, as a failed probe opens
/// it again) or closing.
pub fn breaker(conn_key: &str, change: Change) {
    match change {
        Change::Opened { until } => tracing::warn!(
            connection = %conn_key,
            until = %crate::clock::rfc3339(until),
            "circuit breaker open: the connection failed too often in a row and is paused, then one probe goes"
        ),
        Change::Closed => tracing::info!(
            connection = %conn_key,
            "circuit breaker closed: the connection answers again and is sent to as usual"
        ),
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
pub(crate) mod tests;
