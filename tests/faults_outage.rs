//! Downstream outage: connection A's receiver refuses connections, then
//! hangs, then answers 500, then 429 with `Retry-After`, while events keep
//! arriving. Connection B stays healthy throughout and its latency must not
//! move; A's circuit breaker must pause it without spending the deliveries'
//! attempts; once A recovers, every A event arrives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::time::Instant;

const THRESHOLD: u64 = 3;
const COOLDOWN_MS: u64 = 300;
const CONCURRENCY_A: u64 = 4;

fn config(a: &str, b: &str) -> String {
    // 50 attempts (the schema's maximum), mostly 500 ms apart: enough that no
    // A delivery runs out during the outage, since the breaker saves them.
    let mut schedule = vec!["0s", "100ms", "200ms", "400ms"];
    schedule.resize(50, "500ms");
    format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: test\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: {SECRET}\nconnections:\n  a:\n    type: webhook\n    url: {a}\n    delivery:\n      timeout: 1s\n      concurrency: {CONCURRENCY_A}\n      circuit_breaker: {{ failure_threshold: {THRESHOLD}, cooldown: {COOLDOWN_MS}ms }}\n  b:\n    type: webhook\n    url: {b}\n    delivery: {{ timeout: 2s }}\nrules:\n  - id: a-rule\n    event: user.a\n    connection: a\n    metadata: {{ action: send_webhook }}\n  - id: b-rule\n    event: user.b\n    connection: b\n    metadata: {{ action: send_webhook }}\ndelivery:\n  retry: {{ schedule: [{}], jitter: 0, max_retry_after: 1s }}\n",
        schedule.join(", ")
    )
}

/// What the load task sent: per seq, the event id, its connection and when it was posted.
#[derive(Default)]
struct Sent {
    events: HashMap<u64, (String, &'static str, Instant, &'static str)>,
    phase: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_down_leaves_the_other_untouched_and_loses_nothing() {
    let a = Switchable::start().await;
    let b = Receiver::start().await;
    let gw = Arc::new(TestGateway::start(&config(&a.rx.url, &b.url)).await);
    let sent: Arc<Mutex<Sent>> =
        Arc::new(Mutex::new(Sent { phase: "baseline", ..Sent::default() }));
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(load(gw.clone(), sent.clone(), stop.clone()));
    let phase = |name: &'static str| sent.lock().unwrap().phase = name;

    // Baseline: both healthy.
    let count = |rx: &Receiver| rx.seen().len();
    eventually("a healthy baseline", Duration::from_secs(10), || {
        std::future::ready((count(&b) >= 20 && count(&a.rx) >= 5).then_some(()))
    })
    .await;
    let outage_ms = outage(&a, &b, &gw, &sent).await;
    phase("recovered");
    a.rx.set_default(Reply::Status(200));
    let n = count(&b);
    eventually("more B deliveries after recovery", Duration::from_secs(10), || {
        std::future::ready((count(&b) > n + 5).then_some(()))
    })
    .await;
    stop.cancel();
    load.await.unwrap();
    let sent = std::mem::take(&mut *sent.lock().unwrap());

    check_all_delivered(&a.rx, &b, &sent).await;
    check_b_latency(&b, &sent);
    check_attempts_bounded(&gw, &sent, outage_ms).await;
}

/// Every event of both connections arrives.
async fn check_all_delivered(a: &Receiver, b: &Receiver, sent: &Sent) {
    for (rx, conn) in [(a, "a"), (b, "b")] {
        let want: HashSet<u64> =
            sent.events.iter().filter(|(_, v)| v.1 == conn).map(|(s, _)| *s).collect();
        eventually(&format!("every {conn} event delivered"), Duration::from_secs(20), || {
            let seen: HashSet<u64> = rx.seen().iter().map(seq_of).collect();
            std::future::ready(want.is_subset(&seen).then_some(()))
        })
        .await;
    }
}

/// Takes A through its failure phases; returns how long the outage lasted (ms).
async fn outage(a: &Switchable, b: &Receiver, gw: &TestGateway, sent: &Mutex<Sent>) -> u64 {
    let count = |rx: &Receiver| rx.seen().len();
    let outage = Instant::now();
    for (name, outcome) in [
        ("refused", "network_error"),
        ("hanging", "timeout"),
        ("500", "rejected_server_error"),
        ("429", "rate_limited"),
    ] {
        sent.lock().unwrap().phase = name;
        match name {
            "refused" => a.stop(),
            "hanging" => {
                a.rx.set_default(Reply::Hang);
                a.resume().await;
            }
            "500" => a.rx.set_default(Reply::Status(500)),
            _ => a.rx.set_default(Reply::RetryAfter(429, 1)),
        }
        // Each phase lasts until A has seen it and B has had some traffic in it.
        let n = count(b);
        wait_outcome(gw, outcome).await;
        eventually(&format!("B traffic while A is {name}"), Duration::from_secs(10), || {
            std::future::ready((count(b) >= n + 10).then_some(()))
        })
        .await;
    }
    outage.elapsed().as_millis() as u64
}

/// Posts an A and a B event every 40 ms until `stop` (load, not synchronisation).
async fn load(
    gw: Arc<TestGateway>,
    sent: Arc<Mutex<Sent>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut seq = 0u64;
    while !stop.is_cancelled() {
        for conn in ["a", "b"] {
            seq += 1;
            let t0 = Instant::now();
            let (status, body) = gw
                .post_event(json!({"event": format!("user.{conn}"), "payload": {"seq": seq}}))
                .await;
            assert_eq!(status, 201, "{body}");
            let id = body["event"]["id"].as_str().unwrap().to_string();
            let mut s = sent.lock().unwrap();
            let phase = s.phase;
            s.events.insert(seq, (id, conn, t0, phase));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Waits until some A delivery's last attempt ended with `outcome` (every page of A events).
async fn wait_outcome(gw: &TestGateway, outcome: &str) {
    eventually(&format!("an A attempt ending `{outcome}`"), Duration::from_secs(15), || async {
        let mut cursor = String::new();
        loop {
            let (_, page) =
                gw.get(&format!("/api/v1/events?event=user.a&limit=200&cursor={cursor}")).await;
            let records = page["records"].as_array()?;
            if records.iter().any(|r| r["rule_events"][0]["last_outcome"] == outcome) {
                return Some(());
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = c.to_string(),
                _ => return None,
            }
        }
    })
    .await;
}

/// B's ingest-to-receipt latency during the outage stays within a generous
/// multiple of its own baseline (a stall behind A would cost ≥ A's 1 s timeout).
fn check_b_latency(b: &Receiver, sent: &Sent) {
    let mut first: HashMap<u64, Instant> = HashMap::new();
    for s in b.seen() {
        first.entry(seq_of(&s)).or_insert(s.at);
    }
    let mut by_phase: HashMap<&str, Vec<Duration>> = HashMap::new();
    for (seq, (_, conn, t0, phase)) in &sent.events {
        if *conn == "b" {
            by_phase.entry(phase).or_default().push(first[seq] - *t0);
        }
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * p) as usize]
    };
    let base = by_phase.get_mut("baseline").unwrap();
    let (base_p50, base_max) = (pct(base, 0.5), pct(base, 1.0));
    let bound = (base_max * 3).max(Duration::from_millis(500));
    eprintln!("B latency baseline: p50 {base_p50:?}, max {base_max:?}; bound {bound:?}");
    for phase in ["refused", "hanging", "500", "429", "recovered"] {
        let Some(v) = by_phase.get_mut(phase) else { continue };
        let (p50, max) = (pct(v, 0.5), pct(v, 1.0));
        eprintln!("B latency while A {phase}: n {}, p50 {p50:?}, max {max:?}", v.len());
        assert!(max <= bound, "B slowed down while A was {phase}: max {max:?} > {bound:?}");
    }
}

/// The breaker paused A: failed attempts are bounded by what it takes to
/// open it, plus one probe per cooldown, not by events × schedule.
async fn check_attempts_bounded(gw: &TestGateway, sent: &Sent, outage_ms: u64) {
    let mut failed = 0u64;
    let mut most = 0u64;
    let a_events: Vec<&String> =
        sent.events.values().filter(|v| v.1 == "a").map(|v| &v.0).collect();
    for id in &a_events {
        let detail = gw.wait_status(id, "completed").await;
        let attempts = detail["rule_events"][0]["attempts"].as_u64().unwrap();
        failed += attempts - 1;
        most = most.max(attempts);
    }
    let probes = outage_ms / COOLDOWN_MS + 1;
    let bound = THRESHOLD + CONCURRENCY_A + probes;
    eprintln!(
        "A: {} events, {failed} failed attempts in a {outage_ms} ms outage (bound {bound}), at most {most} for one event",
        a_events.len()
    );
    assert!(failed <= bound, "the breaker did not pause A: {failed} failed attempts > {bound}");
}

fn seq_of(s: &Seen) -> u64 {
    serde_json::from_slice::<Value>(&s.body).unwrap()["payload"]["seq"].as_u64().unwrap()
}
