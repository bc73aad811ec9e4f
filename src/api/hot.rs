//! The two ingest routes, answered without the router.
//!
//! `POST /api/v1/events` and `POST /api/v1/events/bulk` are nearly all of a
//! gateway's traffic. Through axum's router each of them paid for path
//! matching, a boxed clone of the route's service stack, three more boxed
//! futures and the CORS layer, which rebuilds its `Vary` value per request:
//! together about a sixth of the server's instructions per single event
//! (callgrind; BENCHMARKS.md). Here a POST to either path is one string
//! compare, the same handler, and two static headers.
//!
//! Everything else goes to the router, including the ingest paths' other
//! methods and CORS preflights. The headers below are the ones the router's
//! CORS layer adds to an ingest response; a test sends the same requests
//! both ways and compares the answers.

use super::{AppState, bulk, events, router};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, CONTENT_LENGTH, RETRY_AFTER, VARY,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::Response;
use futures::future::{BoxFuture, Either};
use std::convert::Infallible;
use std::task::{Context, Poll};
use tower::Service;

/// The answer headers a browser's script may read besides the safelisted
/// ones (the CORS layer's `expose_headers`).
pub const EXPOSED: [HeaderName; 2] = [RETRY_AFTER, HeaderName::from_static("idempotent-replayed")];

/// [`EXPOSED`] as the CORS layer writes it.
const EXPOSED_VALUE: &str = "retry-after,idempotent-replayed";

/// The whole HTTP surface: the ingest fast path in front of [`router`].
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").finish_non_exhaustive()
    }
}

/// The service `meshes serve` runs.
pub fn app(state: AppState) -> App {
    App { router: router(state.clone()), state }
}

type Answer = Result<Response, Infallible>;

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<<Router as Service<Request>>::Future, BoxFuture<'static, Answer>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready, and so is the fast path.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if req.method() == Method::POST {
            let st = State(self.state.clone());
            match req.uri().path() {
                "/api/v1/events" => {
                    return Either::Right(Box::pin(async move {
                        Ok(with_cors(events::create(st, req).await))
                    }));
                }
                "/api/v1/events/bulk" => {
                    return Either::Right(Box::pin(async move {
                        Ok(with_cors(bulk::bulk(st, req).await))
                    }));
                }
                _ => {}
            }
        }
        Either::Left(self.router.call(req))
    }
}

/// What the router adds to a handler's answer: `Content-Length` when the
/// body's size is known, and from the CORS layer (any origin, not a
/// preflight) `Vary` appended to any the handler set, the origin header and
/// the exposed headers.
fn with_cors(mut resp: Response) -> Response {
    let size = hyper::body::Body::size_hint(resp.body()).exact();
    let headers = resp.headers_mut();
    if let Some(size) = size
        && !headers.contains_key(CONTENT_LENGTH)
    {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
    }
    headers.append(
        VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_VALUE));
    resp
}

#[cfg(test)]
#[path = "hot_tests.rs"]
mod tests;
