//! Bodies a handler left unread, drained before the answer is sent.
//!
//! A handler that answers without reading the body (a 404, a 405, a GET
//! that ignores one, a 413 that stopped reading at the limit) leaves the
//! rest of it in flight. hyper then closes the connection with those bytes
//! unread, the kernel resets it, and a client that writes its whole body
//! before reading (Python's `http.client`, curl without `Expect`) reports
//! a broken pipe instead of the answer. Reading the rest first, bounded
//! in bytes and time, lets it read the answer and keeps the connection.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Most of an unread body read (and discarded) before answering; a body
/// declared or found longer is cut off and its connection closed.
pub const DRAIN_CAP: u64 = 32 << 20;
/// Longest time spent discarding it.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Discarding a leftover body, then handing back the answer.
pub(super) type Draining = Pin<Box<dyn Future<Output = Response> + Send>>;

/// Discards `body` (at most [`DRAIN_CAP`] bytes, for at most [`DRAIN_TIME`])
/// before `resp` is sent, which closes the connection when the body could
/// not be read to its end.
pub(super) fn drain_then(body: Incoming, resp: Response) -> Draining {
    Box::pin(async move {
        let whole = hyper::body::Body::size_hint(&body).lower() <= DRAIN_CAP
            && tokio::time::timeout(DRAIN_TIME, discard(body)).await.unwrap_or(false);
        let mut resp = resp;
        if !whole {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    })
}

/// Whether `resp` closes its connection anyway (a refusal that already
/// gave up draining): then nothing is gained by reading more.
pub(super) fn closes(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// Reads `body` to its end (at most [`DRAIN_CAP`] bytes), dropping what it
/// reads; `true` when it got to the end.
async fn discard(mut body: Incoming) -> bool {
    let mut drained = 0u64;
    while drained <= DRAIN_CAP {
        match body.frame().await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len() as u64),
        }
    }
    false
}
