//! The load generator: one keep-alive HTTP/1.1 connection per concurrency
//! slot, driven with hyper's client connection directly (no pool, no
//! per-request allocation beyond the request head), bodies serialized once.
//!
//! Closed loop: each slot sends its next request when the previous answer
//! has been read, optionally paced to a total request rate. Only requests
//! that *complete* inside the measured window count; the warm-up is
//! excluded. Every other status, and every transport error, is counted
//! separately and never as throughput.

use super::hist::Histogram;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// What to send, where and how hard.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: String,
    /// Request path (and query).
    pub path: String,
    /// Extra headers (`content-type: application/json` is always sent).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Bodies, sent in rotation.
    pub bodies: Vec<Bytes>,
    /// Connections, each with one request in flight.
    pub concurrency: usize,
    /// Not measured.
    pub warmup: Duration,
    /// Measured (after the warm-up); with `max_requests` set, a time limit.
    pub duration: Duration,
    /// Events carried by one request (100 for a full bulk request).
    pub events_per_request: u64,
    /// Statuses that count as success.
    pub ok_statuses: Vec<u16>,
    /// Total requests per second across all slots (paced), or as fast as possible.
    pub rate: Option<f64>,
    /// Stop after this many requests have been sent (all slots together).
    pub max_requests: Option<u64>,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Successful requests inside the window.
    pub ok: u64,
    /// Successful requests over the whole run (warm-up included).
    pub ok_total: u64,
    /// Failures by kind (`status 429`, `connect: …`) over the whole run.
    pub errors: BTreeMap<String, u64>,
    /// Latency of successful requests inside the window, µs.
    pub latency: Histogram,
    /// The measured window.
    pub window: Duration,
    /// Events per request.
    pub events_per_request: u64,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl LoadResult {
    /// Successful events per second in the window.
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs == 0.0 { 0.0 } else { (self.ok * self.events_per_request) as f64 / secs }
    }

    /// Events in the window.
    pub fn events(&self) -> u64 {
        self.ok * self.events_per_request
    }

    /// Failures of any kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `none`, or `12 × status 429, 1 × connect: …`.
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors.iter().map(|(k, n)| format!("{n} × {k}")).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Default)]
struct SlotStats {
    ok: u64,
    ok_total: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram,
}

impl SlotStats {
    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
    }

    /// Counts an answer; its latency only when it completed in the window.
    fn outcome(&mut self, ok: &[u16], status: u16, sent_at: Instant, window: (Instant, Instant)) {
        if !ok.contains(&status) {
            self.error(format!("status {status}"));
            return;
        }
        let done = Instant::now();
        self.ok_total += 1;
        if done >= window.0 && done < window.1 {
            self.ok += 1;
            self.latency.record((done - sent_at).as_micros() as u64);
        }
    }
}

/// Runs `spec`; the warm-up starts at `t0` (callers sample `/proc` at
/// `t0 + warmup` and `t0 + warmup + duration` to match the window).
pub async fn run(spec: LoadSpec, t0: Instant) -> LoadResult {
    let spec = Arc::new(spec);
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency.max(1) {
        tasks.push(tokio::spawn(slot(spec.clone(), i, t0, sent.clone())));
    }
    let mut out = LoadResult {
        window: spec.duration,
        events_per_request: spec.events_per_request,
        ..LoadResult::default()
    };
    for t in tasks {
        let Ok(s) = t.await else {
            *out.errors.entry("load task panicked".into()).or_default() += 1;
            continue;
        };
        out.ok += s.ok;
        out.ok_total += s.ok_total;
        out.latency.merge(&s.latency);
        for (k, n) in s.errors {
            *out.errors.entry(k).or_default() += n;
        }
    }
    let elapsed = t0.elapsed();
    out.elapsed = elapsed;
    if spec.max_requests.is_some() {
        // A fixed amount of work: the window is however long it took.
        out.ok = out.ok_total;
        out.window = elapsed;
    }
    out
}

async fn slot(spec: Arc<LoadSpec>, i: usize, t0: Instant, sent: Arc<AtomicU64>) -> SlotStats {
    let start = t0 + spec.warmup;
    let end = start + spec.duration;
    let mut stats = SlotStats::default();
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    // Pacing: each slot sends every `concurrency / rate` seconds, staggered.
    let interval = match pacing(&spec) {
        Ok(iv) => iv,
        Err(e) => {
            stats.error(e);
            return stats;
        }
    };
    let mut next = t0 + interval.map_or(Duration::ZERO, |iv| iv.mul_f64(stagger(&spec, i)));
    let mut n = i;
    while Instant::now() < end {
        // Paced, a request's latency runs from when it was due, not from
        // when a slot still waiting for the previous answer got to send it:
        // a stall then shows in the latency it caused (no coordinated omission).
        let mut due = None;
        if let Some(iv) = interval {
            if next >= end {
                break;
            }
            tokio::time::sleep_until(next).await;
            due = Some(next);
            next += iv;
        }
        if spec.max_requests.is_some_and(|max| sent.fetch_add(1, Ordering::Relaxed) >= max) {
            break;
        }
        let Some(mut sender) = connected(&spec, &mut conn, &mut stats).await else { continue };
        let body = spec.bodies[n % spec.bodies.len()].clone();
        n += spec.concurrency;
        let Some(req) = request(&spec, body) else {
            stats.error("cannot build the request".into());
            break;
        };
        let sent_at = due.unwrap_or_else(Instant::now);
        match exchange(&mut sender, req).await {
            Ok(status) => {
                stats.outcome(&spec.ok_statuses, status, sent_at, (start, end));
                conn = Some(sender);
            }
            Err(e) => stats.error(e),
        }
    }
    stats
}

/// Each slot's interval between sends when the load is paced.
fn pacing(spec: &LoadSpec) -> Result<Option<Duration>, String> {
    let Some(rate) = spec.rate else { return Ok(None) };
    let per_slot = spec.concurrency.max(1) as f64 / rate;
    match Duration::try_from_secs_f64(per_slot) {
        Ok(iv) if rate.is_finite() && rate > 0.0 => Ok(Some(iv)),
        _ => Err(format!("rate {rate}/s gives no usable interval between requests")),
    }
}

/// Where slot `i` starts within its interval, so the slots' sends interleave.
fn stagger(spec: &LoadSpec, i: usize) -> f64 {
    i as f64 / spec.concurrency.max(1) as f64
}

/// The slot's connection, (re)connecting when needed; `None` after a failed
/// attempt (counted, with a short pause so a dead server is not hammered).
async fn connected(
    spec: &LoadSpec,
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    stats: &mut SlotStats,
) -> Option<SendRequest<Full<Bytes>>> {
    if let Some(mut s) = conn.take()
        && s.ready().await.is_ok()
    {
        return Some(s);
    }
    match connect(spec.addr).await {
        Ok(s) => Some(s),
        Err(e) => {
            stats.error(format!("connect: {e}"));
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(spec: &LoadSpec, body: Bytes) -> Option<Request<Full<Bytes>>> {
    let mut b = Request::post(spec.path.as_str())
        .header(hyper::header::HOST, spec.host.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json");
    for (k, v) in &spec.headers {
        b = b.header(k, v);
    }
    b.body(Full::new(body)).ok()
}

/// Sends one request and reads the whole answer (needed to reuse the connection).
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<u16, String> {
    let resp = sender.send_request(req).await.map_err(|e| kind("send", &e))?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.map_err(|e| kind("read", &e))?;
    Ok(status)
}

fn kind(stage: &str, e: &hyper::Error) -> String {
    if e.is_closed() || e.is_incomplete_message() {
        format!("{stage}: connection closed")
    } else if e.is_timeout() {
        format!("{stage}: timeout")
    } else {
        format!("{stage}: {e}")
    }
}

/// Pre-serialized single-event bodies (`count` distinct users).
pub fn event_bodies(event: &str, count: usize) -> Vec<Bytes> {
    (0..count.max(1)).map(|i| Bytes::from(single_event(event, i).to_string())).collect()
}

/// Pre-serialized bulk bodies: a JSON array of `per_request` events.
pub fn bulk_bodies(event: &str, per_request: usize, count: usize) -> Vec<Bytes> {
    (0..count.max(1))
        .map(|b| {
            let items: Vec<serde_json::Value> =
                (0..per_request).map(|i| single_event(event, b * per_request + i)).collect();
            Bytes::from(serde_json::Value::Array(items).to_string())
        })
        .collect()
}

/// One event like a product would send: a few payload fields, ~200 bytes.
fn single_event(event: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "event": event,
        "resource": "user",
        "resource_id": format!("u_{i}"),
        "payload": {
            "email": format!("user{i}@example.com"),
            "name": "Ada Lovelace",
            "plan": "pro",
            "amount": 4200 + (i % 100),
        }
    })
}

/// The publishable-key header the ingest routes take.
pub fn publishable_header(key: &str) -> Vec<(HeaderName, HeaderValue)> {
    let v = HeaderValue::from_str(key).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    vec![(HeaderName::from_static("x-meshes-publishable-key"), v)]
}

/// A test's load: `max` single-event POSTs over 4 connections, 201 = success.
#[cfg(test)]
pub(crate) fn test_spec(addr: SocketAddr, bodies: Vec<Bytes>, max: u64) -> LoadSpec {
    LoadSpec {
        addr,
        host: addr.to_string(),
        path: "/api/v1/events".into(),
        headers: publishable_header("k"),
        bodies,
        concurrency: 4,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        events_per_request: 1,
        ok_statuses: vec![201],
        rate: None,
        max_requests: Some(max),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::test_spec as spec;
    use super::*;

    #[tokio::test]
    async fn counts_successes_and_failures_separately() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(crate::bench::servers::ceiling(listener));
        let ok = run(spec(addr, event_bodies("e", 8), 40), Instant::now()).await;
        assert_eq!((ok.ok, ok.error_count()), (40, 0), "{}", ok.errors_text());
        assert_eq!(ok.latency.count(), 40);
        // The ceiling answers 400 to a body that is not JSON: never a success.
        let bad = run(spec(addr, vec![Bytes::from_static(b"not json")], 10), Instant::now()).await;
        assert_eq!(bad.ok, 0);
        assert_eq!(bad.errors.get("status 400"), Some(&10));
        server.abort();
    }

    /// A paced load at 1 request/s over 8 slots: each slot sends every 8 s,
    /// slot i first at i s, so a 2.5 s window holds the sends due at 0, 1
    /// and 2 s, and nothing is sent after it (on tokio's paused clock).
    #[tokio::test(start_paused = true)]
    async fn a_paced_load_sends_only_what_is_due_inside_its_window() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(crate::bench::servers::ceiling(listener));
        let mut paced = spec(addr, event_bodies("e", 8), u64::MAX);
        (paced.concurrency, paced.rate, paced.max_requests) = (8, Some(1.0), None);
        paced.duration = Duration::from_millis(2_500);
        let t0 = Instant::now();
        let r = run(paced, t0).await;
        assert_eq!((r.ok_total, r.error_count()), (3, 0), "{}", r.errors_text());
        assert!(t0.elapsed() < Duration::from_secs(3), "ran {:?}", t0.elapsed());
        server.abort();
    }

    #[tokio::test]
    async fn a_rate_with_no_usable_interval_is_an_error_not_a_panic() {
        let addr = "127.0.0.1:9".parse().unwrap();
        let mut tiny = spec(addr, event_bodies("e", 1), 1);
        tiny.rate = Some(1e-20);
        let r = run(tiny, Instant::now()).await;
        assert_eq!(r.ok_total, 0);
        assert!(r.errors.keys().all(|k| k.contains("no usable interval")), "{}", r.errors_text());
        assert_eq!(r.error_count(), 4, "one per slot: {}", r.errors_text());
    }

    #[test]
    fn bulk_bodies_are_arrays_of_valid_events() {
        let b = bulk_bodies("e", 100, 2);
        let v: serde_json::Value = serde_json::from_slice(&b[1]).unwrap();
        let items = v.as_array().unwrap();
        assert_eq!(items.len(), 100);
        assert_eq!(items[0]["event"], "e");
        assert_eq!(items[0]["resource_id"], "u_100");
    }
}
