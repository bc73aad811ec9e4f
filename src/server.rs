//! The HTTP accept loop: header-read timeouts (slowloris), a connection
//! cap, and graceful shutdown.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so we
//! drive hyper ourselves: one HTTP/1.1 connection task per accepted socket,
//! each watched by a [`GracefulShutdown`].

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service, ServiceExt};

/// How long the loop pauses after a failed `accept` (EMFILE, ENFILE, …).
/// Retrying at once would spin while the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accept-loop settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// A client must finish sending a request's headers within this time,
    /// or the connection is closed without an answer (slowloris defence).
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may sit idle between requests.
    ///
    /// hyper 1 times the idle gap and the next request's headers with one
    /// clock (started when the connection goes idle), so the limit applied
    /// is the smaller of this and `header_read_timeout`: a larger value has
    /// no effect unless `header_read_timeout` is raised too. Zero turns
    /// keep-alive off.
    pub keep_alive_idle: Duration,
    /// A client must finish sending a request's body within this time after
    /// its headers, or the read fails (408): a stalled or trickled body
    /// (slow POST) cannot hold a connection and a handler forever.
    pub body_read_timeout: Duration,
    /// Most connections served at once; further ones wait in the listen
    /// backlog until a slot frees up.
    pub max_connections: usize,
    /// Time given to in-flight requests at shutdown; connections still open
    /// after it are closed.
    pub drain_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets in-flight requests finish (up to `drain_timeout`),
/// closes whatever is still open, and returns.
///
/// Accept errors are logged and retried; they never end the loop.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    shutdown: CancellationToken,
    opts: ServerOptions,
) -> std::io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let builder = http1_builder(&opts);
    let app = with_body_deadline(app, opts.body_read_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    // Cancelled only when draining times out: drops the stragglers so no
    // connection (and no handler holding app state) outlives `serve`.
    let hard_stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    while let Some((stream, permit)) = next_connection(&listener, &slots, &shutdown).await {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let hard_stop = hard_stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                // Errors are per connection (client gone, header timeout).
                result = conn => if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                () = hard_stop.cancelled() => {}
            }
            drop(permit);
        });
    }
    // Close the socket now so new clients are refused instead of queued.
    drop(listener);
    drain(graceful, &tasks, &hard_stop, opts.drain_timeout).await;
    Ok(())
}

/// Every request body must be complete `limit` after the headers.
fn with_body_deadline<S>(
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
fn deadline(started: Instant, limit: Duration) -> tokio::time::Sleep {
    match started.checked_add(limit) {
        Some(at) => tokio::time::sleep_until(at),
        None => tokio::time::sleep(limit),
    }
}

/// One HTTP/1.1 builder shared by every connection.
fn http1_builder(opts: &ServerOptions) -> http1::Builder {
    let keep_alive = !opts.keep_alive_idle.is_zero();
    let limit = if keep_alive {
        opts.header_read_timeout.min(opts.keep_alive_idle)
    } else {
        opts.header_read_timeout
    };
    let mut builder = http1::Builder::new();
    // hyper needs a timer for the header-read timeout (it panics without one).
    builder.timer(TokioTimer::new()).header_read_timeout(limit).keep_alive(keep_alive);
    builder
}

/// Waits for a free slot, then for a connection; `None` once `shutdown` is
/// cancelled. Holding the permit before `accept` is what bounds the number
/// of connections: at the cap we simply stop accepting.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            permit = slots.clone().acquire_owned() => permit.ok()?,
        };
        let error = tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => return Some((stream, permit)),
                Err(e) => e,
            },
        };
        drop(permit);
        // EMFILE and friends: keep serving the open connections, retry later.
        tracing::warn!(error = %error, "accept failed; retrying");
        tokio::select! {
            () = shutdown.cancelled() => return None,
            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
        }
    }
}

/// Asks every connection to finish its current request and close, waits up
/// to `timeout`, then closes the rest.
async fn drain(
    graceful: GracefulShutdown,
    tasks: &TaskTracker,
    hard_stop: &CancellationToken,
    timeout: Duration,
) {
    if tokio::time::timeout(timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(?timeout, "drain timeout: closing connections that are still open");
        hard_stop.cancel();
    }
    tasks.close();
    tasks.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;
    use tokio::task::JoinHandle;
    use tokio::time::{Instant, timeout};

    const WAIT: Duration = Duration::from_secs(5);
    /// Bounded negative checks: "nothing happened within this window".
    const QUIET: Duration = Duration::from_millis(300);

    async fn start(
        app: Router,
        opts: ServerOptions,
    ) -> (SocketAddr, CancellationToken, JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let task = tokio::spawn(serve(listener, app, token.clone(), opts));
        (addr, token, task)
    }

    /// `/` answers at once; `/slow` reports entry on `entered` and answers
    /// once `gate` is notified; `/count` counts its calls.
    fn app(entered: Arc<Notify>, gate: Arc<Notify>, hits: Arc<AtomicUsize>) -> Router {
        let slow = move || {
            let (entered, gate) = (entered.clone(), gate.clone());
            async move {
                entered.notify_one();
                gate.notified().await;
                "done"
            }
        };
        let count = move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { "counted" }
        };
        Router::new()
            .route("/", get(|| async { "hi" }))
            .route("/slow", get(slow))
            .route("/count", get(count))
    }

    fn simple() -> Router {
        app(Arc::default(), Arc::default(), Arc::default())
    }

    async fn send(stream: &mut TcpStream, path: &str) {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads one response with a `content-length` body: (status, body).
    async fn read_response(stream: &mut TcpStream) -> (u16, String) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if buf.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                    return (head[9..12].parse().unwrap(), body);
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before a full response");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until the server closes the connection; returns what it sent.
    async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        let res = timeout(WAIT, stream.read_to_end(&mut buf))
            .await
            .expect("the server kept the connection open");
        // A reset is as much a close as a FIN.
        assert!(
            res.is_ok()
                || res.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "{res:?}"
        );
        buf
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_deadline_too_far_to_represent_does_not_panic_or_fire() {
        // The paused clock jumps to each timer, so these take no real time.
        let decade = Duration::from_secs(10 * 365 * 86_400);
        let far = deadline(Instant::now(), Duration::MAX);
        assert!(timeout(decade, far).await.is_err(), "fired within ten years");
        let near = deadline(Instant::now(), Duration::from_secs(1));
        assert!(timeout(Duration::from_secs(2), near).await.is_ok());
    }

    #[tokio::test]
    async fn answers_twice_on_one_kept_alive_connection() {
        let (addr, token, task) = start(simple(), ServerOptions::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            send(&mut s, "/").await;
            assert_eq!(timeout(WAIT, read_response(&mut s)).await.unwrap(), (200, "hi".to_owned()));
        }
        token.cancel();
        timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn slowloris_clients_are_disconnected() {
        let opts = ServerOptions {
            header_read_timeout: Duration::from_millis(200),
            ..ServerOptions::default()
        };
        let (addr, _token, _task) = start(simple(), opts).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let began = Instant::now();
        // Never send the final CRLF CRLF.
        s.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ").await.unwrap();
        let got = read_until_closed(&mut s).await;
        assert!(got.is_empty(), "no response is owed to an unfinished request: {got:?}");
        assert!(
            began.elapsed() >= Duration::from_millis(150),
            "closed before the timeout: {:?}",
            began.elapsed()
        );
    }

    #[tokio::test]
    async fn idle_kept_alive_connections_are_closed() {
        let opts = ServerOptions {
            keep_alive_idle: Duration::from_millis(200),
            ..ServerOptions::default()
        };
        let (addr, _token, _task) = start(simple(), opts).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, "/").await;
        assert_eq!(timeout(WAIT, read_response(&mut s)).await.unwrap().0, 200);
        let idle_since = Instant::now();
        assert!(read_until_closed(&mut s).await.is_empty());
        assert!(
            idle_since.elapsed() >= Duration::from_millis(150),
            "closed too early: {:?}",
            idle_since.elapsed()
        );
    }

    #[tokio::test]
    async fn shutdown_finishes_open_requests_and_refuses_new_ones() {
        let (entered, gate) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (addr, token, task) =
            start(app(entered.clone(), gate.clone(), Arc::default()), ServerOptions::default())
                .await;
        let mut open = TcpStream::connect(addr).await.unwrap();
        send(&mut open, "/slow").await;
        timeout(WAIT, entered.notified()).await.unwrap();
        token.cancel();
        // The loop notices the cancel asynchronously: poll until refused.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting after shutdown");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!task.is_finished(), "serve returned while a request was in flight");
        gate.notify_one();
        assert_eq!(
            timeout(WAIT, read_response(&mut open)).await.unwrap(),
            (200, "done".to_owned())
        );
        timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn drain_timeout_closes_stuck_connections() {
        let entered = Arc::new(Notify::new());
        let opts =
            ServerOptions { drain_timeout: Duration::from_millis(200), ..ServerOptions::default() };
        // The gate is never opened: the handler would wait forever.
        let (addr, token, task) =
            start(app(entered.clone(), Arc::default(), Arc::default()), opts).await;
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        send(&mut stuck, "/slow").await;
        timeout(WAIT, entered.notified()).await.unwrap();
        token.cancel();
        timeout(WAIT, task).await.unwrap().unwrap().unwrap();
        assert!(read_until_closed(&mut stuck).await.is_empty());
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let (entered, gate, hits) =
            (Arc::new(Notify::new()), Arc::new(Notify::new()), Arc::new(AtomicUsize::new(0)));
        let opts = ServerOptions { max_connections: 1, ..ServerOptions::default() };
        let (addr, _token, _task) =
            start(app(entered.clone(), gate.clone(), hits.clone()), opts).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        send(&mut first, "/slow").await;
        timeout(WAIT, entered.notified()).await.unwrap();
        // The kernel completes the handshake, but the server must not serve it.
        let mut second = TcpStream::connect(addr).await.unwrap();
        send(&mut second, "/count").await;
        let mut byte = [0u8; 1];
        assert!(
            timeout(QUIET, second.read(&mut byte)).await.is_err(),
            "second connection served during the first request"
        );
        gate.notify_one();
        assert_eq!(
            timeout(WAIT, read_response(&mut first)).await.unwrap(),
            (200, "done".to_owned())
        );
        // Still kept alive: the slot is per connection, not per request.
        assert!(
            timeout(QUIET, second.read(&mut byte)).await.is_err(),
            "second connection served while the first was open"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 0);
        drop(first);
        assert_eq!(
            timeout(WAIT, read_response(&mut second)).await.unwrap(),
            (200, "counted".to_owned())
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}
