//! Request bodies, bounded in time and in memory: each must arrive within a
//! total deadline (a trickled body cannot hold a connection forever), and
//! all the bodies being read or handled at once share one byte budget (many
//! large bodies cannot exhaust memory between them).

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::Service;

use super::leftover::{self, Draining};

/// The body was not complete within `body_read_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("was not received within {0:?} (body read timeout)")]
pub struct BodyTimeout(pub Duration);

/// Taking this body would put the server over its budget of request-body
/// bytes (`ServerOptions::body_memory`).
#[derive(Debug, thiserror::Error)]
#[error("was refused: the server already holds its limit of {0} bytes of request bodies")]
pub struct BodyBudgetFull(pub usize);

/// Bytes of request bodies held across all connections, and the limit.
#[derive(Debug)]
pub(super) struct BodyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    pub(super) fn new(limit: usize) -> Arc<Self> {
        Arc::new(BodyBudget { limit, used: AtomicUsize::new(0) })
    }

    /// Reserves `n` bytes unless that would pass the limit.
    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }
}

/// One connection's share of the budget: the bytes of its current request's
/// body. HTTP/1.1 handles a connection's requests one after another, so one
/// counter per connection is enough, and no request allocates for it.
#[derive(Debug)]
struct ConnBodies {
    budget: Arc<BodyBudget>,
    held: AtomicUsize,
    /// The current request's body, when its handler dropped it unread
    /// (see [`super::leftover`]).
    leftover: Mutex<Option<Incoming>>,
}

impl ConnBodies {
    fn take(&self, n: usize) -> bool {
        let taken = self.budget.take(n);
        if taken {
            self.held.fetch_add(n, Ordering::AcqRel);
        }
        taken
    }

    /// The request is answered: its body (read into buffers the handler
    /// has dropped by now) no longer counts.
    fn release(&self) {
        let n = self.held.swap(0, Ordering::AcqRel);
        self.budget.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes read and thrown away (a refused body drained so its client
    /// can read the answer) are not held: they leave the budget at once.
    fn forget(&self, n: usize) {
        let Ok(before) = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| Some(held.saturating_sub(n)))
        else {
            return;
        };
        self.budget.used.fetch_sub(before.min(n), Ordering::AcqRel);
    }
}

/// Handed to handlers in the request's extensions (for bodies that may be
/// large, see [`SMALL_BODY`]): a body they discard
/// frame by frame is returned to the budget as it goes, so draining a
/// refused upload (up to tens of MiB, to answer it cleanly) does not
/// crowd out the bodies being accepted meanwhile.
#[derive(Clone, Debug)]
pub struct BodyCredit(Arc<ConnBodies>);

impl BodyCredit {
    /// `n` bytes of this request's body were read and dropped.
    pub fn discarded(&self, n: usize) {
        self.0.forget(n);
    }
}

impl Drop for ConnBodies {
    fn drop(&mut self) {
        self.release();
    }
}

/// The per-connection service: wraps each request's body, and releases its
/// bytes when the response is ready.
#[derive(Clone)]
pub(super) struct Guarded<S> {
    inner: S,
    body_timeout: Duration,
    bodies: Arc<ConnBodies>,
}

impl<S> Guarded<S> {
    pub(super) fn new(inner: S, body_timeout: Duration, budget: Arc<BodyBudget>) -> Self {
        let leftover = Mutex::new(None);
        let bodies = Arc::new(ConnBodies { budget, held: AtomicUsize::new(0), leftover });
        Guarded { inner, body_timeout, bodies }
    }
}

impl<S> Service<hyper::Request<Incoming>> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: hyper::Request<Incoming>) -> Self::Future {
        let (limit, bodies) = (self.body_timeout, self.bodies.clone());
        let credit = may_be_refused_large(&req).then(|| BodyCredit(self.bodies.clone()));
        let waits = waits_to_send(req.headers());
        let mut req = req.map(|body| Body::new(GuardedBody::new(body, limit, bodies, waits)));
        if let Some(credit) = credit {
            req.extensions_mut().insert(credit);
        }
        Answering { inner: self.inner.call(req), bodies: self.bodies.clone(), draining: None }
    }
}

/// Bodies up to this size (declared) get no [`BodyCredit`]: inserting it
/// costs the request two allocations (its extension map and the entry),
/// on the hot path, and what such bodies hold while drained is bounded
/// anyway: 4 KiB times the default 10,000 connections is 40 MiB, under the
/// default 64 MiB budget.
const SMALL_BODY: u64 = 4 << 10;

/// Whether a refused body could be large enough to matter to the budget:
/// one declared over [`SMALL_BODY`], or one of unknown length (chunked).
/// hyper has parsed the framing already: its size hint is exact for a
/// `Content-Length` (and zero for no body), unknown when chunked.
fn may_be_refused_large(req: &hyper::Request<Incoming>) -> bool {
    hyper::body::Body::size_hint(req.body()).exact().is_none_or(|n| n > SMALL_BODY)
}

/// Whether the client waits for `100 Continue` before it sends the body.
fn waits_to_send(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

pin_project_lite::pin_project! {
    /// The handler's future; its body's bytes are released when it is
    /// ready, and a body it left unread is drained before the answer goes.
    pub(super) struct Answering<F> {
        #[pin]
        inner: F,
        bodies: Arc<ConnBodies>,
        draining: Option<Draining>,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Answering<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if let Some(draining) = this.draining {
            return draining.as_mut().poll(cx).map(Ok);
        }
        let Ok(resp) = std::task::ready!(this.inner.poll(cx));
        this.bodies.release();
        let leftover = this.bodies.leftover.lock().ok().and_then(|mut slot| slot.take());
        match leftover {
            Some(body) if !leftover::closes(&resp) => {
                let draining = this.draining.insert(leftover::drain_then(body, resp));
                draining.as_mut().poll(cx).map(Ok)
            }
            _ => Poll::Ready(Ok(resp)),
        }
    }
}

/// A body that fails with [`BodyTimeout`] once its deadline passes, and
/// with [`BodyBudgetFull`] when a frame does not fit in the budget. The
/// deadline is total, not per frame, so a trickle does not extend it.
///
/// The timer is armed the first time the body is not ready: most bodies
/// arrive with their headers and never need one, and a timer per request
/// (allocated, registered, cancelled) showed in the ingest profile.
///
/// Dropped before its end, it hands the rest of the body to
/// [`Answering`] to drain; unless it was never asked for a byte and the
/// client waits for `100 Continue`: reading it is what would send the
/// `100`, and the client then sends nothing that needs draining.
struct GuardedBody {
    /// `None` only once dropped.
    body: Option<Incoming>,
    started: Instant,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    limit: Duration,
    bodies: Arc<ConnBodies>,
    /// The client waits for `100 Continue` and nothing was read yet.
    waits_to_send: bool,
    /// The body ended or failed: nothing is left to drain.
    finished: bool,
}

impl GuardedBody {
    fn new(body: Incoming, limit: Duration, bodies: Arc<ConnBodies>, waits: bool) -> Self {
        let (started, body) = (Instant::now(), Some(body));
        GuardedBody {
            body,
            started,
            deadline: None,
            limit,
            bodies,
            waits_to_send: waits,
            finished: false,
        }
    }

    /// Counts a data frame against the budget.
    fn admit(&self, frame: Frame<Bytes>) -> Result<Frame<Bytes>, axum::BoxError> {
        let n = frame.data_ref().map_or(0, Bytes::len);
        if n == 0 || self.bodies.take(n) {
            Ok(frame)
        } else {
            Err(Box::new(BodyBudgetFull(self.bodies.budget.limit)))
        }
    }
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        this.waits_to_send = false;
        let Some(body) = this.body.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(frame) = Pin::new(body).poll_frame(cx) {
            // A frame over the budget still leaves the rest to drain; an
            // end or a broken connection leaves nothing.
            this.finished = !matches!(frame, Some(Ok(_)));
            let frame = frame.map(|f| f.map_err(Into::into).and_then(|f| this.admit(f)));
            return Poll::Ready(frame);
        }
        let (started, limit) = (this.started, this.limit);
        let deadline = this.deadline.get_or_insert_with(|| Box::pin(deadline(started, limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                // Past its deadline, a body is not waited for any longer.
                this.finished = true;
                Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(hyper::body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else { return };
        if self.finished || self.waits_to_send || hyper::body::Body::is_end_stream(&body) {
            return;
        }
        if let Ok(mut slot) = self.bodies.leftover.lock() {
            *slot = Some(body);
        }
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
