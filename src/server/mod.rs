//! The HTTP accept loop: header-read and write-stall timeouts (slowloris
//! both ways), a connection cap, bounded header and body memory, and graceful shutdown.
//!
//! `axum::serve` has no header-read timeout and no connection cap, so we
//! drive hyper ourselves: one HTTP/1.1 connection task per accepted socket,
//! each watched by a [`GracefulShutdown`].

use axum::extract::Request;
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

mod body;
pub mod fds;
mod leftover;
mod stall;

use body::{BodyBudget, Guarded};
pub use body::{BodyBudgetFull, BodyCredit, BodyTimeout};
pub use leftover::{DRAIN_CAP, DRAIN_TIME};

/// How long the loop pauses after a failed `accept` (EMFILE, ENFILE, …).
/// Retrying at once would spin while the process is out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest request head (request line and headers); longer ones are
/// answered 431. Two hyper settings enforce it: the read buffer's cap
/// refuses a head still incomplete once that much is buffered (hyper's
/// default, ~400 KiB, times the connection cap would allow gigabytes of
/// headers), and the header-size cap refuses a complete head longer than
/// this. The buffer cap alone is checked between reads, and one read can
/// overshoot it, so a head that arrived in one piece got through up to
/// nearly twice the limit.
const MAX_HEAD_BUFFER: usize = 64 << 10;

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
    /// A client must take some of an answer within this time once the
    /// server's send buffer is full, or the connection is closed: a client
    /// that pipelines requests and never reads the answers cannot hold its
    /// connection slot forever. Any progress restarts the clock.
    pub write_stall_timeout: Duration,
    /// Most connections served at once; further ones wait in the listen
    /// backlog until a slot frees up. Lowered at start to leave room under
    /// the open-file limit ([`fds::connection_cap`]).
    pub max_connections: usize,
    /// Time given to in-flight requests at shutdown; connections still open
    /// after it are closed.
    pub drain_timeout: Duration,
    /// Most bytes of request bodies held at once, over all connections,
    /// from the first byte read until the answer. A body that would pass it
    /// is refused (503, `Retry-After`), so a crowd of large or stalled
    /// uploads cannot exhaust memory. At least the largest body a route
    /// accepts (8 MiB, bulk ingest).
    pub body_memory: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_idle: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            write_stall_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            drain_timeout: Duration::from_secs(30),
            body_memory: 64 << 20,
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
    let budget = BodyBudget::new(opts.body_memory);
    let graceful = GracefulShutdown::new();
    let limit = fds::soft_limit();
    let cap = fds::connection_cap(opts.max_connections, limit);
    tracing::info!(
        connections = cap,
        configured = opts.max_connections,
        open_file_limit = limit,
        "connection cap (room is kept under the open-file limit for deliveries and the store)"
    );
    let slots = Arc::new(Semaphore::new(cap));
    let mut accept_log = fds::AcceptLog::default();
    // Cancelled only when draining times out: drops the stragglers so no
    // connection (and no handler holding app state) outlives `serve`.
    let hard_stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    while let Some((stream, permit)) =
        next_connection(&listener, &slots, &shutdown, &mut accept_log).await
    {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let guarded = Guarded::new(app.clone(), opts.body_read_timeout, budget.clone());
        let service = TowerToHyperService::new(guarded);
        let io = TokioIo::new(stall::StallGuard::new(stream, opts.write_stall_timeout));
        let conn = graceful.watch(builder.serve_connection(io, service));
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
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limit)
        .keep_alive(keep_alive)
        .max_buf_size(MAX_HEAD_BUFFER)
        .max_header_size(MAX_HEAD_BUFFER);
    builder
}

/// Waits for a free slot, then for a connection; `None` once `shutdown` is
/// cancelled. Holding the permit before `accept` is what bounds the number
/// of connections: at the cap we simply stop accepting.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
    log: &mut fds::AcceptLog,
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
        if let Some(failures) = log.failed(tokio::time::Instant::now()) {
            tracing::warn!(error = %error, failures, "accept failed; retrying");
        }
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
mod tests;
