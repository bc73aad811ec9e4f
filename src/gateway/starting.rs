//! The port answers while the gateway starts.
//!
//! `serve` binds its port first (a taken port fails at once); [`super::start`]
//! then loads the config and opens the store: seconds, or minutes for a large store
//! that redb repairs after an unclean stop. A port that accepts and never
//! answers looks hung: a liveness probe would kill the process mid-repair,
//! and it would restart into the same repair. So until the gateway serves,
//! a second accept loop on the same socket answers `/healthz` (the process
//! is alive) and everything else `503` with `Retry-After` (nothing is
//! accepted: an event sent now is not stored).

use crate::api::error::ApiError;
use crate::server::{ServerOptions, serve};
use axum::Router;
use axum::response::IntoResponse;
use axum::routing::get;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The accept loop answering during startup.
/// Dropping it (startup failed) stops the loop without waiting.
#[derive(Debug)]
pub struct Starting {
    stop: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Starting {
    /// Answers on `listener`'s socket (through a duplicate of it) until
    /// [`Starting::stop`]. `None` when the socket cannot be duplicated:
    /// startup then goes unanswered, as it did before.
    pub fn spawn(listener: &TcpListener) -> Option<Starting> {
        let dup = duplicate(listener)
            .map_err(|e| tracing::debug!(error = %e, "cannot answer during startup"))
            .ok()?;
        let stop = CancellationToken::new();
        let opts = ServerOptions {
            // Every answer closes its connection, so clients come back to
            // the gateway proper once it serves.
            keep_alive_idle: Duration::ZERO,
            drain_timeout: Duration::from_secs(1),
            max_connections: 256,
            ..ServerOptions::default()
        };
        let task = tokio::spawn(serve(dup, router(), stop.clone(), opts));
        Some(Starting { stop, task: Some(task) })
    }

    /// Stops answering and waits for the answers under way: called just
    /// before the gateway's own accept loop takes the socket, so nothing
    /// answers "starting" once "meshes is serving" is logged.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "starting"})) }))
        .fallback(|| async {
            ApiError::Busy(
                "meshes is starting (loading its config and opening its store); try again shortly"
                    .into(),
            )
            .into_response()
        })
}

/// A second handle on the same listening socket: both accept, and closing
/// one leaves the other listening.
#[cfg(unix)]
fn duplicate(listener: &TcpListener) -> std::io::Result<TcpListener> {
    use std::os::fd::AsFd;
    let fd = listener.as_fd().try_clone_to_owned()?;
    let std = std::net::TcpListener::from(fd);
    std.set_nonblocking(true)?;
    TcpListener::from_std(std)
}

#[cfg(not(unix))]
fn duplicate(_: &TcpListener) -> std::io::Result<TcpListener> {
    Err(std::io::Error::other("not on this platform"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Option<String>, String) {
        let resp = reqwest::get(format!("http://{addr}{path}")).await.expect("answered");
        let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_string());
        (resp.status().as_u16(), retry, resp.text().await.unwrap_or_default())
    }

    #[tokio::test]
    async fn answers_health_and_refuses_the_rest_until_stopped() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let starting = Starting::spawn(&listener).expect("duplicated");
        let (status, _, body) = get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, r#"{"status":"starting"}"#));
        let (status, retry, body) = get(addr, "/api/v1/events").await;
        assert_eq!((status, retry.as_deref()), (503, Some("1")), "{body}");
        assert!(body.contains("meshes is starting"), "{body}");
        starting.stop().await;
        // The original socket still listens: a connection is accepted by
        // the kernel and waits for whoever serves next.
        let conn = tokio::net::TcpStream::connect(addr).await;
        assert!(conn.is_ok(), "the socket was closed with the duplicate");
    }
}
