//! The port answers while the gateway starts.
//!
//! `serve` binds its port first (a taken port fails at once); [`super::start`]
//! then loads the config and opens the store: seconds, or minutes for a
//! large store that redb repairs after an unclean stop. A port that accepts
//! and never answers looks hung: a liveness probe would kill the process
//! mid-repair, and it would restart into the same repair. So the accept
//! loop runs from the start, and until the gateway's app is ready each
//! connection gets the "starting" answers: `/healthz` says the process is
//! alive, everything else is `503` with `Retry-After` (an event sent now is
//! not stored). One accept loop for both phases: no connection is dropped
//! at the handover, and a kept-alive one switches at its next request.

use crate::api::error::ApiError;
use crate::api::hot::App;
use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::future::Either;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tower::Service;

/// Where the gateway's app is put once it is ready.
pub type Ready = Arc<OnceLock<App>>;

/// The accept loop's service: the "starting" answers until [`Ready`] is
/// set, the app after. Each connection's copy looks once per request until
/// it has the app, then keeps it (one clone per connection, as before).
#[derive(Clone)]
pub struct Switch {
    ready: Ready,
    starting: Router,
    app: Option<App>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch").field("ready", &self.app.is_some()).finish_non_exhaustive()
    }
}

impl Switch {
    /// A switch in the starting phase, and where to put the app.
    pub fn new() -> (Switch, Ready) {
        let ready = Ready::default();
        (Switch { ready: ready.clone(), starting: starting(), app: None }, ready)
    }
}

impl Service<Request> for Switch {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<<App as Service<Request>>::Future, <Router as Service<Request>>::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both are always ready (see `App::poll_ready`; the router is too).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if self.app.is_none() {
            self.app = self.ready.get().cloned();
        }
        match &mut self.app {
            Some(app) => Either::Left(app.call(req)),
            None => Either::Right(self.starting.call(req)),
        }
    }
}

/// The answers while starting. The ingest paths have the serving router's
/// CORS, preflights included: without it a browser reports a CORS failure
/// and its script never sees the 503 nor when to retry.
fn starting() -> Router {
    let cors = crate::api::ingest_cors();
    let ingest = || crate::api::ingest_route(any(busy), &cors);
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "starting"})) }))
        .route("/api/v1/events", ingest())
        .route("/api/v1/events/bulk", ingest())
        .fallback(busy)
}

async fn busy() -> Response {
    ApiError::Busy(
        "meshes is starting (loading its config and opening its store); try again shortly".into(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(s: &Switch, path: &str) -> (u16, Option<String>, String) {
        let req = Request::builder().uri(path).body(axum::body::Body::empty()).unwrap();
        let resp = s.clone().oneshot(req).await.unwrap();
        let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, retry, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn answers_health_and_refuses_the_rest_while_starting() {
        let (switch, _ready) = Switch::new();
        let (status, _, body) = get(&switch, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, r#"{"status":"starting"}"#));
        let (status, retry, body) = get(&switch, "/api/v1/events").await;
        assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body}");
        assert!(body.contains("meshes is starting"), "{body}");
    }
}
