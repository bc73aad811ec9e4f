//! Request bodies with a total read deadline (a trickled body cannot hold
//! a connection open forever).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// Every request body must be complete `limit` after the headers.
pub(super) fn with_body_deadline<S>(
    app: S,
    limit: Duration,
) -> impl Service<hyper::Request<Incoming>, Response = Response, Error = Infallible, Future = S::Future>
+ Clone
+ Send
+ 'static
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
{
    app.map_request(move |req: hyper::Request<Incoming>| {
        req.map(|body| Body::new(DeadlineBody::new(body, limit)))
    })
}

/// The body was not complete within `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("was not received within {0:?} (body read timeout)")]
pub struct BodyTimeout(pub Duration);

/// A body that fails with [`BodyTimeout`] once its deadline passes. The
/// deadline is total, not per frame, so a trickle does not extend it.
///
/// The timer is armed the first time the body is not ready: most bodies
/// arrive with their headers and never need one, and a timer per request
/// (allocated, registered, cancelled) showed in the ingest profile.
struct DeadlineBody {
    body: Incoming,
    started: Instant,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    limit: Duration,
}

impl DeadlineBody {
    fn new(body: Incoming, limit: Duration) -> Self {
        DeadlineBody { body, started: Instant::now(), deadline: None, limit }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let (started, limit) = (this.started, this.limit);
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(deadline(started, limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A timer for `limit` after `started`. One too far away to represent
/// becomes tokio's "far future" (~30 years, what `tokio::time::sleep` does),
/// where `started + limit` would panic.
pub(super) fn deadline(started: Instant, limit: Duration) -> tokio::time::Sleep {
    match started.checked_add(limit) {
        Some(at) => tokio::time::sleep_until(at),
        None => tokio::time::sleep(limit),
    }
}
