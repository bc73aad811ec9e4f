//! The accept loop against real sockets on loopback.

use super::body::deadline;
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
        res.is_ok() || res.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
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
    let opts =
        ServerOptions { keep_alive_idle: Duration::from_millis(200), ..ServerOptions::default() };
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
        start(app(entered.clone(), gate.clone(), Arc::default()), ServerOptions::default()).await;
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
    assert_eq!(timeout(WAIT, read_response(&mut open)).await.unwrap(), (200, "done".to_owned()));
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
    let (addr, _token, _task) = start(app(entered.clone(), gate.clone(), hits.clone()), opts).await;
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
    assert_eq!(timeout(WAIT, read_response(&mut first)).await.unwrap(), (200, "done".to_owned()));
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

/// A client that asks for a large answer and never reads it holds its
/// slot only until the write-stall timeout: then the next client, queued
/// behind the cap of one connection, is served.
#[tokio::test]
async fn clients_that_never_read_their_answers_lose_their_slot() {
    let big = Router::new()
        .route("/big", get(|| async { vec![b'x'; 32 << 20] }))
        .route("/", get(|| async { "hi" }));
    let opts = ServerOptions {
        write_stall_timeout: Duration::from_millis(200),
        max_connections: 1,
        ..ServerOptions::default()
    };
    let (addr, _token, _task) = start(big, opts).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    // 32 MiB cannot fit in the two sockets' buffers, so the server's write
    // blocks for as long as this client does not read.
    send(&mut stuck, "/big").await;
    let mut next = TcpStream::connect(addr).await.unwrap();
    send(&mut next, "/").await;
    assert_eq!(timeout(WAIT, read_response(&mut next)).await.unwrap(), (200, "hi".to_owned()));
    drop(stuck);
}
