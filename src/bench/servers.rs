//! The reference servers: the ceiling (what any JSON ingest must do, and
//! nothing else) and a minimal webhook receiver that measures delivery.
//!
//! Both use the same stack as `meshes serve` (tokio multi-thread, hyper 1
//! HTTP/1.1, keep-alive), so the ratio between them isolates the gateway's
//! own work: auth, validation, rule matching, durable storage.

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

/// The ceiling: parse the JSON body with serde_json, answer 201 with a small
/// JSON body (an id and the number of events). No auth, no storage.
pub async fn ceiling(listener: TcpListener) {
    serve(listener, |req: Request<Incoming>| async move {
        if req.method() == Method::GET {
            return reply(StatusCode::OK, &json!({"status": "ok"}));
        }
        let Some(body) = body_bytes(req).await else {
            return reply(StatusCode::BAD_REQUEST, &json!({"message": "unreadable body"}));
        };
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => {
                let count = v.as_array().map_or(1, Vec::len);
                let id = uuid::Uuid::now_v7().to_string();
                reply(StatusCode::CREATED, &json!({"event": {"id": id}, "count": count}))
            }
            Err(e) => reply(StatusCode::BAD_REQUEST, &json!({"message": e.to_string()})),
        }
    })
    .await;
}

/// What the receiver has seen.
#[derive(Debug, Default)]
pub struct ReceiverState {
    received: AtomicU64,
    duplicates: AtomicU64,
    first_ms: AtomicU64,
    last_ms: AtomicU64,
    inner: Mutex<ReceiverInner>,
}

#[derive(Debug, Default)]
struct ReceiverInner {
    seen: HashSet<u128>,
    latency: Histogram,
}

impl ReceiverState {
    fn record(&self, delivery: Option<u128>, body: &[u8]) {
        let now_us = crate::clock::now_ms() * 1000;
        // `time_created` is the gateway's ingest time (ms) in the wrapped body.
        let created = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("time_created").and_then(Value::as_u64));
        self.received.fetch_add(1, Ordering::Relaxed);
        let _ =
            self.first_ms.compare_exchange(0, now_us / 1000, Ordering::Relaxed, Ordering::Relaxed);
        self.last_ms.fetch_max(now_us / 1000, Ordering::Relaxed);
        let Ok(mut inner) = self.inner.lock() else { return };
        if let Some(id) = delivery
            && !inner.seen.insert(id)
        {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(ms) = created {
            inner.latency.record(now_us.saturating_sub(ms * 1000));
        }
    }

    fn stats(&self) -> Value {
        let Ok(inner) = self.inner.lock() else { return json!({}) };
        let l = &inner.latency;
        let ms = |q: f64| l.quantile(q) as f64 / 1000.0;
        json!({
            "received": self.received.load(Ordering::Relaxed),
            "unique": inner.seen.len(),
            "duplicates": self.duplicates.load(Ordering::Relaxed),
            "first_ms": self.first_ms.load(Ordering::Relaxed),
            "last_ms": self.last_ms.load(Ordering::Relaxed),
            "latency_ms": {
                "count": l.count(), "p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999),
                "max": l.max() as f64 / 1000.0, "mean": l.mean() / 1000.0,
            },
        })
    }

    fn reset(&self) {
        self.received.store(0, Ordering::Relaxed);
        self.duplicates.store(0, Ordering::Relaxed);
        self.first_ms.store(0, Ordering::Relaxed);
        self.last_ms.store(0, Ordering::Relaxed);
        if let Ok(mut inner) = self.inner.lock() {
            *inner = ReceiverInner::default();
        }
    }
}

/// The webhook receiver: every POST is a delivery (answered 200 after
/// reading and parsing the body); `GET /stats` reports counts, duplicates
/// (by `webhook-id`) and ingest-to-delivery latency; `POST /reset` clears them.
pub async fn receiver(listener: TcpListener) {
    let state = Arc::new(ReceiverState::default());
    serve(listener, move |req: Request<Incoming>| {
        let state = state.clone();
        async move {
            match (req.method().clone(), req.uri().path()) {
                (Method::GET, "/stats") => reply(StatusCode::OK, &state.stats()),
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
                    state.record(id, &body);
                    reply(StatusCode::OK, &json!({"ok": true}))
                }
            }
        }
    })
    .await;
}
