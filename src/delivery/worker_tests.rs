//! Attempts: what counts against the breaker, what the attempt log says,
//! and what a finished attempt tells the metrics and the log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;

fn delivery() -> Delivery {
    Delivery::sample(serde_json::json!({}))
}

fn report(result: AttemptResult) -> AttemptReport {
    AttemptReport { result, http_status: None, response_excerpt: None }
}

#[test]
fn only_outages_and_account_quotas_count_against_the_breaker() {
    let deferred = |scope| AttemptResult::Deferred {
        code: Outcome::RateLimited,
        until: 0,
        scope,
        message: String::new(),
    };
    assert!(healthy(&deferred(QuotaScope::Delivery)), "one registrant's daily limit");
    assert!(!healthy(&deferred(QuotaScope::Connection)));
    let retry = AttemptResult::Retry { code: Outcome::Timeout, after: None, message: "".into() };
    assert!(!healthy(&retry));
    let auth = AttemptResult::Permanent { code: Outcome::AuthFailed, message: "".into() };
    assert!(!healthy(&auth));
    let rejected =
        AttemptResult::Permanent { code: Outcome::RejectedClientError, message: "".into() };
    assert!(healthy(&rejected) && healthy(&AttemptResult::Delivered));
}

#[test]
fn mapping_warnings_reach_the_attempt_message() {
    let d = delivery();
    let took = std::time::Duration::from_millis(3);
    assert_eq!(record(&d, &report(AttemptResult::Delivered), 1, took).error, None);
    d.warnings.push("mapping field `seats`: bad".into());
    let done = record(&d, &report(AttemptResult::Delivered), 1, took);
    assert_eq!(
        (done.outcome, done.error.as_deref()),
        (Outcome::Delivered, Some("mapping field `seats`: bad"))
    );
    let failed =
        AttemptResult::Permanent { code: Outcome::RejectedClientError, message: "400".into() };
    let done = record(&d, &report(failed), 1, took);
    assert_eq!(done.error.as_deref(), Some("400 (mapping warnings: mapping field `seats`: bad)"));
}

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

/// Connection `out` (log, default retry schedule).
fn conn() -> Arc<ConnectionRt> {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out: {{ type: log }}\nrules: []\n"
    );
    crate::gateway::runtime::from_text(text).connections().next().unwrap().clone()
}

/// A lane whose breaker opens on the first failure.
fn lane(conn: &ConnectionRt) -> Lane {
    let mut settings = conn.lane.clone();
    settings.breaker.failure_threshold = 1;
    Lane::new(settings)
}

/// `conclude` for the second attempt of `delivery()`, sent with `report`.
fn conclude_with(
    conn: &ConnectionRt,
    lane: &Lane,
    report: AttemptReport,
    fds: bool,
) -> AttemptDone {
    let key = DueKey { conn_key: conn.conn_key.clone(), due: 0, event: 1, rule: "r1".into() };
    let sent = Sent { report, out_of_fds: fds, started: 0, duration: Default::default() };
    conclude(conn, lane, &key, &delivery(), retry::Spent { attempts: 2, deferrals: 0 }, sent)
}

fn http(result: AttemptResult, status: u16, body: &str) -> AttemptReport {
    AttemptReport { result, http_status: Some(status), response_excerpt: Some(body.into()) }
}

/// It sent nothing and spends no retry budget: it is no network error, has
/// no duration and leaves no row for the next try to replace.
#[test]
fn a_try_without_descriptors_counts_only_as_postponed() {
    use crate::delivery::observe::tests::{recorder, sample};
    let (_guard, handle) = recorder();
    let (conn, network) = (conn(), || {
        let message = "could not connect: Too many open files (os error 24)".into();
        report(AttemptResult::Retry { code: Outcome::NetworkError, after: None, message })
    });
    let lane = lane(&conn);
    let done = conclude_with(&conn, &lane, network(), true);
    assert!(matches!(done.next, Next::Postponed { .. }), "{:?}", done.next);
    assert!(done.attempt.is_none(), "no row of its own");
    assert!(!lane.is_open(), "the destination did nothing wrong");
    let text = handle.render();
    assert_eq!(sample(&text, "meshes_deliveries_postponed_total"), Some(1.0));
    for name in ["meshes_deliveries_total", "meshes_delivery_duration_seconds"] {
        assert!(!text.contains(name), "{name}:\n{text}");
    }
    // The same failure with descriptors to spare is the network's.
    let done = conclude_with(&conn, &lane, network(), false);
    assert!(matches!(done.next, Next::Retry { .. }) && done.attempt.is_some());
    let series = format!(
        "meshes_deliveries_total{{connection=\"{}\",outcome=\"network_error\"}}",
        conn.conn_key
    );
    assert_eq!(sample(&handle.render(), &series), Some(1.0));
}

/// At the default level: one line per delivery failed for good (ids,
/// outcome, status; never the body), and one per breaker opening or closing.
#[test]
fn final_failures_and_breakers_opening_and_closing_are_logged() {
    let (_guard, logs) = crate::delivery::observe::tests::Logs::capture();
    let conn = conn();
    let lane = lane(&conn);
    let echoed = r#"{"error":"bad","token":"sk_live_echoed"}"#;
    let rejected = AttemptResult::Permanent {
        code: Outcome::RejectedClientError,
        message: format!("HTTP 400: {echoed}"),
    };
    let done = conclude_with(&conn, &lane, http(rejected, 400, echoed), false);
    assert_eq!(done.next, Next::Failed);
    let failing = AttemptResult::Retry {
        code: Outcome::RejectedServerError,
        after: None,
        message: "HTTP 500".into(),
    };
    assert!(matches!(
        conclude_with(&conn, &lane, http(failing, 500, ""), false).next,
        Next::Retry { .. }
    ));
    conclude_with(&conn, &lane, http(AttemptResult::Delivered, 200, ""), false);
    let lines = logs.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let failed = &lines[0];
    for part in [
        "delivery failed for good",
        "delivery=dlv",
        "event=evt",
        "rule=r1",
        &format!("connection={}", conn.conn_key),
        "attempt=2",
        "outcome=\"rejected_client_error\"",
        "http_status=400",
    ] {
        assert!(failed.contains(part), "{part} in {failed}");
    }
    assert!(lines.iter().all(|l| !l.contains("sk_live")), "{lines:#?}");
    assert!(lines[1].contains("WARN") && lines[1].contains("circuit breaker open"), "{}", lines[1]);
    assert!(
        lines[2].contains("INFO") && lines[2].contains("circuit breaker closed"),
        "{}",
        lines[2]
    );
}
