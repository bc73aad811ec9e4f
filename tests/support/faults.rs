//! Helpers for the fault tests: a receiver that can stop listening (so the
//! gateway sees "connection refused") and come back on the same port, the
//! real binary with environment variables and the file watcher, and a gateway
//! booted with custom options.

use super::*;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use tokio::task::JoinSet;

/// A [`Receiver`] whose listener can be closed and reopened on the same port.
/// Closing also drops every open connection, so pooled keep-alive
/// connections cannot keep reaching it.
#[derive(Debug)]
pub struct Switchable {
    pub rx: Receiver,
    addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Switchable {
    pub async fn start() -> Switchable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rx = Receiver {
            url: format!("http://{addr}/hook"),
            state: Arc::new(ReceiverState::default()),
        };
        let s = Switchable { rx, addr, server: Mutex::new(None) };
        s.listen(listener);
        s
    }

    /// Stops listening and closes every connection: attempts now get "connection refused".
    pub fn stop(&self) {
        if let Some(task) = self.server.lock().unwrap().take() {
            // Aborting the accept task drops its JoinSet, which aborts every connection task.
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        // The aborted task releases the socket asynchronously; retry the bind briefly.
        let listener = eventually("the port to be free again", Duration::from_secs(5), || async {
            TcpListener::bind(self.addr).await.ok()
        })
        .await;
        self.listen(listener);
    }

    fn listen(&self, listener: TcpListener) {
        let app = Router::new()
            .route("/hook", axum::routing::any(receive))
            .with_state(self.rx.state.clone());
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let svc = TowerToHyperService::new(app.clone());
                conns.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                // Reap finished connections so the set does not grow.
                while conns.try_join_next().is_some() {}
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }
}

impl Drop for Switchable {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestGateway {
    /// `/readyz` as JSON.
    pub async fn readyz(&self) -> Value {
        let resp = self.http.get(format!("{}/readyz", self.base)).send().await.unwrap();
        resp.json().await.unwrap()
    }
}

/// The hash `/readyz` shows for a single config file at `path` holding `text`.
pub fn config_hash(path: &Path, text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(path.display().to_string().as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    h.update([0]);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Server {
    /// Like [`Server::spawn`], with `--config` = `config` (a file or a
    /// directory), extra environment variables, and the file watcher on
    /// when `watch` (so writes and SIGHUP reload).
    pub fn spawn_with(
        dir: &Path,
        config: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        watch: bool,
    ) -> Server {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("meshes"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        if !watch {
            cmd.arg("--no-watch");
        }
        cmd.arg("--config").arg(config).arg("--data-dir").arg(dir.join("data")).args(extra);
        // The gateway follows the environment's proxies; the tests' own
        // loopback destinations must not depend on the machine's.
        for var in PROXY_VARS {
            cmd.env_remove(var);
        }
        cmd.env("MESHES_LOG", "info").envs(env.iter().copied());
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = tx.send(addr);
                }
                seen.lock().unwrap().push(line);
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("meshes did not start:\n{}", lines.lock().unwrap().join("\n"));
        };
        Server { child, base: format!("http://{addr}"), lines }
    }

    /// Sends SIGHUP (a config reload request).
    pub fn sighup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// A small deterministic PRNG (SplitMix64) so fault schedules replay from a printed seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// The seed from `MESHES_FAULT_SEED`, or the clock; printed so a failure can be replayed.
    pub fn from_env(test: &str) -> Rng {
        let seed = std::env::var("MESHES_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| now_secs() ^ u64::from(std::process::id()));
        eprintln!("{test}: seed {seed} (replay with MESHES_FAULT_SEED={seed})");
        Rng(seed)
    }
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}

/// A number from the environment, or `default` when unset. A value that is
/// not a number fails the test: `MESHES_CRASH_CYCLES=1_000` must not quietly
/// run the default 3 cycles and pass as a long run.
pub fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{name}={s:?} is not a whole number")),
        Err(_) => default,
    }
}

/// Waits until the server's due index is empty: every delivery committed so
/// far, acknowledged or not, has its outcome on disk.
pub async fn wait_no_pending(base: &str) {
    let http = reqwest::Client::new();
    eventually("no pending deliveries", Duration::from_secs(60), || async {
        let v: Value = http.get(format!("{base}/readyz")).send().await.ok()?.json().await.ok()?;
        (v["store"]["pending_deliveries"] == 0).then_some(())
    })
    .await;
}

/// Fails if the server printed a panic.
pub fn assert_no_panic(server: &Server) {
    let lines = server.lines.lock().unwrap();
    let panics: Vec<&String> = lines.iter().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "the server panicked: {panics:?}");
}

/// A test that panics must not leave its server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
