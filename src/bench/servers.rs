//! The reference servers: the ceiling (what any JSON ingest must do, and
//! nothing else), the durable ceiling (the same, answering only after an
//! `fdatasync` of the body) and a minimal webhook receiver that measures delivery.
//!
//! All three use the same stack as `meshes serve` (tokio multi-thread, hyper 1
//! HTTP/1.1, keep-alive), so the ratio to the ceiling isolates the gateway's
//! own work (auth, validation, rule matching, durable storage), and the ratio
//! to the durable ceiling all of it but the fsync every durable server waits for.

use super::hist::Histogram;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Serves `handler` on every accepted connection until the task is dropped.
async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let h = handler.clone();
                async move { Ok::<_, Infallible>(h(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn body_bytes(req: Request<Incoming>) -> Option<Bytes> {
    req.into_body().collect().await.ok().map(http_body_util::Collected::to_bytes)
}

/// What both ceilings do before storing anything: a GET is a health check
/// (its 200 is the `Err` side), a POST's body is read and parsed with
/// serde_json. `Ok`: the body and its number of events.
async fn accept(req: Request<Incoming>) -> Result<(Bytes, usize), Response<Full<Bytes>>> {
    if req.method() == Method::GET {
        return Err(reply(StatusCode::OK, &json!({"status": "ok"})));
    }
    let Some(body) = body_bytes(req).await else {
        return Err(reply(StatusCode::BAD_REQUEST, &json!({"message": "unreadable body"})));
    };
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let count = v.as_array().map_or(1, Vec::len);
            Ok((body, count))
        }
        Err(e) => Err(reply(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()}))),
    }
}

/// The 201 both ceilings answer: a fresh id and the number of events.
fn created(count: usize) -> Response<Full<Bytes>> {
    let id = uuid::Uuid::now_v7().to_string();
    reply(StatusCode::CREATED, &json!({"event": {"id": id}, "count": count}))
}

/// The ceiling: parse the JSON body with serde_json, answer 201 with a small
/// JSON body (an id and the number of events). No auth, no storage.
pub async fn ceiling(listener: TcpListener) {
    serve(listener, |req: Request<Incoming>| async move {
        match accept(req).await {
            Ok((_, count)) => created(count),
            Err(answer) => answer,
        }
    })
    .await;
}

/// One request's body waiting for the log's next `fdatasync`, and who to tell.
type Pending = (Bytes, tokio::sync::oneshot::Sender<bool>);

/// The durable ceiling: the ceiling plus the least any server that keeps
/// "a 201 means it is on disk" must add. Each parsed body is written to one
/// log file and `fdatasync`'d before the 201; bodies that arrive while a sync
/// runs share the next one (group commit, as in meshes' writer). No index,
/// no records, no deliveries: nothing can be read back but by replaying the log.
///
/// A log made by [`preallocate`] is overwritten in place, round and round,
/// as a write-ahead log reuses its segments: an `fdatasync` after writes into
/// blocks the file already has flushes only the data, while one after an
/// append also writes the file's block map (a second device round trip on
/// ext4). Any other file is appended to.
pub async fn durable_ceiling(listener: TcpListener, log: std::fs::File) {
    let (tx, rx) = std::sync::mpsc::channel::<Pending>();
    std::thread::spawn(move || group_commit(log, &rx));
    serve(listener, move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let (body, count) = match accept(req).await {
                Ok(accepted) => accepted,
                Err(answer) => return answer,
            };
            let (done, synced) = tokio::sync::oneshot::channel();
            if tx.send((body, done)).is_err() || synced.await != Ok(true) {
                return reply(StatusCode::SERVICE_UNAVAILABLE, &json!({"message": "log failed"}));
            }
            created(count)
        }
    })
    .await;
}

/// Size of the durable ceiling's preallocated log: a few seconds of
/// single-event ingest at the ceiling's rate, so the ring wraps in a long run.
pub const LOG_RING: u64 = 64 << 20;

/// Makes `file` a [`LOG_RING`]-byte log of written zeros, synced: every block
/// allocated and written once before the first request.
pub fn preallocate(file: &std::fs::File) -> std::io::Result<()> {
    use std::io::Write as _;
    let chunk = vec![0u8; 1 << 20];
    let mut w = file;
    w.set_len(0)?;
    for _ in 0..LOG_RING / chunk.len() as u64 {
        w.write_all(&chunk)?;
    }
    file.sync_all()
}

/// The log's one writer: takes every body queued, writes them
/// (length-prefixed) with one `pwrite` and one `fdatasync`, then answers them
/// all. In a preallocated log the next batch that would pass the end starts
/// again at offset 0; a length of 0 ends the records.
fn group_commit(log: std::fs::File, rx: &std::sync::mpsc::Receiver<Pending>) {
    use std::os::unix::fs::FileExt as _;
    let ring = log.metadata().map_or(0, |m| m.len());
    let mut at = 0;
    let (mut buf, mut waiting) = (Vec::new(), Vec::new());
    while let Ok(first) = rx.recv() {
        waiting.push(first);
        waiting.extend(rx.try_iter());
        buf.clear();
        for (body, _) in &waiting {
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(body);
        }
        let written = if ring == 0 {
            std::io::Write::write_all(&mut &log, &buf)
        } else {
            if at + buf.len() as u64 + 4 > ring {
                at = 0;
            }
            // The zero length after the batch marks where this pass ends.
            buf.extend_from_slice(&[0; 4]);
            let r = log.write_all_at(&buf, at);
            at += buf.len() as u64 - 4;
            r
        };
        let ok = written.and_then(|()| log.sync_data()).is_ok();
        for (_, done) in waiting.drain(..) {
            let _ = done.send(ok);
        }
    }
}

/// What the receiver has seen.
#[derive(Debug)]
pub struct ReceiverState {
    /// Percent of deliveries (by id) whose first attempt gets a 503.
    fail_first: u8,
    refused: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    first_ms: AtomicU64,
    last_ms: AtomicU64,
    ids: [Mutex<Ids>; ID_SHARDS],
    /// Since the start (or the last reset), and since the last `/stats?window`.
    latency: Mutex<(Histogram, Histogram)>,
}

/// The ids are kept in shards, each under its own lock. One set of 15 M
/// ids (45 min at 6,000 events/s) rehashes for about half a second when it
/// grows, holding every delivery behind its lock; the gateway's lane then
/// backs up and its latency tail would be the receiver's pause.
const ID_SHARDS: usize = 64;

/// One shard's delivery ids: accepted, and refused once.
#[derive(Debug, Default)]
struct Ids {
    seen: HashSet<u128>,
    refused: HashSet<u128>,
}

impl ReceiverState {
    fn new(fail_first: u8) -> Self {
        ReceiverState {
            fail_first: fail_first.min(100),
            refused: AtomicU64::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            first_ms: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
            ids: std::array::from_fn(|_| Mutex::default()),
            latency: Mutex::default(),
        }
    }

    /// Whether delivery `id` is one whose first attempt is refused. The low
    /// bits of a UUID v7 are random, so this picks `fail_first` % of them.
    fn picked(&self, id: u128) -> bool {
        id % 100 < u128::from(self.fail_first)
    }

    fn shard(&self, id: u128) -> &Mutex<Ids> {
        &self.ids[((id >> 8) % ID_SHARDS as u128) as usize]
    }

    /// Counts a delivery; `false` when this is the refused first attempt.
    fn record(&self, delivery: Option<u128>, body: &[u8]) -> bool {
        let now_us = crate::clock::now_ms() * 1000;
        // `time_created` is the gateway's ingest time (ms) in the wrapped body.
        let created = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("time_created").and_then(Value::as_u64));
        if let Some(id) = delivery {
            let Ok(mut ids) = self.shard(id).lock() else { return true };
            if self.picked(id) && ids.refused.insert(id) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if !ids.seen.insert(id) {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        let _ =
            self.first_ms.compare_exchange(0, now_us / 1000, Ordering::Relaxed, Ordering::Relaxed);
        self.last_ms.fetch_max(now_us / 1000, Ordering::Relaxed);
        if let Some(ms) = created
            && let Ok(mut latency) = self.latency.lock()
        {
            let us = now_us.saturating_sub(ms * 1000);
            latency.0.record(us);
            latency.1.record(us);
        }
        true
    }

    /// The counts and the latency since the start; with `window`, also the
    /// latency since the last `window` call (which starts a new window).
    fn stats(&self, window: bool) -> Value {
        let unique: usize = self.ids.iter().map(|s| s.lock().map_or(0, |ids| ids.seen.len())).sum();
        let Ok(mut latency) = self.latency.lock() else { return json!({}) };
        let last = if window { Some(std::mem::take(&mut latency.1)) } else { None };
        let mut v = json!({
            "received": self.received.load(Ordering::Relaxed),
            "unique": unique,
            "duplicates": self.duplicates.load(Ordering::Relaxed),
            "refused": self.refused.load(Ordering::Relaxed),
            "first_ms": self.first_ms.load(Ordering::Relaxed),
            "last_ms": self.last_ms.load(Ordering::Relaxed),
            "latency_ms": latency_ms(&latency.0),
        });
        if let Some(w) = last {
            v["window_latency_ms"] = latency_ms(&w);
        }
        v
    }

    fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
        self.refused.store(0, Ordering::Relaxed);
        self.first_ms.store(0, Ordering::Relaxed);
        self.last_ms.store(0, Ordering::Relaxed);
        for shard in &self.ids {
            if let Ok(mut ids) = shard.lock() {
                *ids = Ids::default();
            }
        }
        if let Ok(mut latency) = self.latency.lock() {
            *latency = Default::default();
        }
    }
}

fn latency_ms(l: &Histogram) -> Value {
    let ms = |q: f64| l.quantile(q) as f64 / 1000.0;
    json!({
        "count": l.count(), "p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999),
        "max": l.max() as f64 / 1000.0, "mean": l.mean() / 1000.0,
    })
}

/// The webhook receiver: every POST is a delivery (answered 200 after
/// reading and parsing the body); `GET /stats` reports counts, duplicates
/// (by `webhook-id`) and ingest-to-delivery latency (`GET /stats?window`
/// adds the latency since the last such call); `POST /reset` clears them.
/// With `fail_first` > 0, the first attempt of that percent of deliveries
/// gets a 503 (counted as `refused`, not received), so retries run.
pub async fn receiver(listener: TcpListener, fail_first: u8) {
    let state = Arc::new(ReceiverState::new(fail_first));
    serve(listener, move |req: Request<Incoming>| {
        let state = state.clone();
        async move {
            match (req.method().clone(), req.uri().path()) {
                (Method::GET, "/stats") => {
                    let window = req.uri().query() == Some("window");
                    reply(StatusCode::OK, &state.stats(window))
                }
                (Method::GET, _) => reply(StatusCode::OK, &json!({"status": "ok"})),
                (Method::POST, "/reset") => {
                    state.reset();
                    reply(StatusCode::OK, &json!({"reset": true}))
                }
                _ => {
                    let id = req
                        .headers()
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| uuid::Uuid::parse_str(s).ok())
                        .map(|u| u.as_u128());
                    let body = body_bytes(req).await.unwrap_or_default();
                    if state.record(id, &body) {
                        reply(StatusCode::OK, &json!({"ok": true}))
                    } else {
                        reply(StatusCode::SERVICE_UNAVAILABLE, &json!({"message": "refused once"}))
                    }
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
#[path = "servers_tests.rs"]
mod tests;
