//! The composition root: everything `meshes serve` runs, startable from
//! tests on `127.0.0.1:0` with a temporary data directory.

use super::reload::{self, ReloadStatus};
use crate::adapters::token_store::TokenStore;
use crate::api::AppState;
use crate::api::auth::RateLimits;
use crate::api::hot::app;
use crate::config::watch::{ConfigWatcher, Trigger, WatchError, forward_sighup, listen_sighup};
use crate::delivery::engine::{Engine, Shared};
use crate::server::{ServerOptions, serve};
use crate::store::{Store, StoreError, WriterDeath};
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How to run.
#[derive(Clone)]
pub struct GatewayOptions {
    /// Config files or directories.
    pub config: Vec<PathBuf>,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// Watch the config for changes (and SIGHUP).
    pub watch: bool,
    /// Quiet time before a change is reloaded.
    pub debounce: Duration,
    /// Time given to running attempts and requests at shutdown.
    pub drain: Duration,
    /// Requests per second per credential (burst is twice that).
    pub rate_limit: u32,
    /// The Prometheus handle (installed once per process by the CLI).
    pub metrics: Option<PrometheusHandle>,
    /// Accept-loop settings.
    pub server: ServerOptions,
    /// How the store file is opened (tests inject disk faults here).
    pub store_opener: Option<crate::store::db::Opener>,
    /// How the config watcher is started (tests inject failures here).
    pub watcher_starter: Option<WatcherStarter>,
}

/// Starts a config watcher on the config paths with the debounce.
pub type WatcherStarter = Arc<
    dyn Fn(&[PathBuf], Duration) -> Result<(ConfigWatcher, mpsc::Receiver<Trigger>), WatchError>
        + Send
        + Sync,
>;

impl std::fmt::Debug for GatewayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayOptions")
            .field("config", &self.config)
            .field("data_dir", &self.data_dir)
            .field("watch", &self.watch)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl GatewayOptions {
    /// Defaults for the given config and data directory.
    pub fn new(config: Vec<PathBuf>, data_dir: PathBuf) -> Self {
        GatewayOptions {
            config,
            data_dir,
            watch: true,
            debounce: Duration::from_millis(250),
            drain: Duration::from_secs(30),
            rate_limit: 1_000,
            metrics: None,
            server: ServerOptions::default(),
            store_opener: None,
            watcher_starter: None,
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The config is invalid (each line a diagnostic or build error).
    #[error("invalid config:\n{}", .0.join("\n"))]
    Config(Vec<String>),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener or watcher failed.
    #[error("{0}")]
    Io(String),
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// The bound address.
    pub addr: SocketAddr,
    /// Cancel to shut down.
    pub shutdown: CancellationToken,
    /// Store, config and delivery state (tests inspect it).
    pub shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Gateway {
    /// Waits until the gateway has shut down and its store is closed.
    pub async fn join(self) {
        // Our handle on the store must go before the store can be released.
        let Gateway { task, shared, .. } = self;
        drop(shared);
        let _ = task.await;
    }
    /// Shuts down and waits.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.join().await;
    }
}

/// Loads the config, opens the store and serves on `listener` until `shutdown`.
pub async fn start(
    opts: GatewayOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<Gateway, GatewayError> {
    // First of all: a SIGHUP during the load and the store open (a repair
    // after a crash takes seconds) would kill the process. It is kept, and
    // reloads once the reloader runs.
    let hup = listen_sighup()
        .map_err(|e| tracing::warn!(error = %e, "SIGHUP will not reload the config"))
        .ok();
    // The port answers from now on ("starting" until the app is ready);
    // a failed start stops it again.
    let addr = listener.local_addr().map_err(|e| GatewayError::Io(e.to_string()))?;
    let (switch, ready) = super::starting::Switch::new();
    let serving = shutdown.child_token();
    let failed = serving.clone().drop_guard();
    let server = tokio::spawn(serve(listener, switch, serving, opts.server.clone()));
    let client = http_client()?;
    // Before the token store looks in it, so the one error says what is wrong.
    Store::check_dir(&opts.data_dir)?;
    let tokens = TokenStore::open(&opts.data_dir);
    let mut rt = reload::load(&opts.config, 1, &client, None, Some(&tokens))
        .map_err(GatewayError::Config)?
        .ok_or_else(|| GatewayError::Config(vec!["no config".into()]))?;
    let opener = opts.store_opener.clone().unwrap_or_else(crate::store::db::file_opener);
    let store = Store::open_with(&opts.data_dir, opener)?;
    super::clock_check::warn_if_behind(&store, crate::clock::now_ms());
    // In force from now: the store open (a repair can take longer than the
    // cancellation grace) must not use up the grace.
    rt.applied = tokio::time::Instant::now();
    let engine = Engine::new(store.clone(), Arc::new(ArcSwap::from_pointee(rt)));
    let shared = engine.shared();
    let status = Arc::new(ReloadStatus::default());
    let state = AppState {
        shared: shared.clone(),
        limits: Arc::new(RateLimits::new(opts.rate_limit, opts.rate_limit.saturating_mul(2))),
        reload: status.clone(),
        metrics: opts.metrics.clone(),
        ingest_metrics: crate::api::events::IngestMetrics::new(),
        reads: Default::default(),
    };
    let (watcher, rx, tx) = start_watcher(&opts);
    status.set_watched(watcher.is_some());
    if let Some(hup) = hup {
        forward_sighup(hup, tx);
    }
    let reloader = Reloader { paths: opts.config.clone(), shared: shared.clone(), status, client };
    let reloader = reloader.spawn(rx, tokens.clone(), shutdown.clone());
    let background = Background::spawn(engine, &shared, &shutdown, opts.drain);
    // Set once, here: connections switch to it at their next request.
    let _ = ready.set(app(state));
    failed.disarm();
    stop_if_the_writer_dies(store.writer_death(), shutdown.clone());
    let task = tokio::spawn(async move {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "server stopped with an error"),
            Err(e) => tracing::error!(error = %e, "server task failed"),
        }
        background.finish(watcher, reloader).await;
        // A token request still running (its caller gone) may bring a
        // rotated refresh token, the old one revoked: keep it before the
        // process ends (each is bounded by its own 60 s timeout).
        tokens.settle().await;
        store.close().await;
    });
    if shutdown.is_cancelled() {
        // A signal came during the start: it stops at once, and a "serving"
        // line between "shutting down" and "stopped" misleads.
        tracing::debug!(%addr, "started, but a signal came meanwhile: stopping");
    } else {
        tracing::info!(%addr, "meshes is serving");
    }
    Ok(Gateway { addr, shutdown, shared, task })
}

/// A dead store writer stops the gateway: a process that can no longer
/// write must not look alive, or no supervisor restarts it.
fn stop_if_the_writer_dies(death: WriterDeath, shutdown: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            () = death.wait() => shutdown.cancel(),
            () = shutdown.cancelled() => {}
        }
    });
}

/// The one HTTP client every adapter shares.
fn http_client() -> Result<reqwest::Client, GatewayError> {
    crate::adapters::http::client_builder()
        // Shorter than common servers' keep-alive timeouts (Node's 5 s): a
        // connection reused just as its server closes it fails the attempt
        // with nothing delivered (retried, but a wasted try and a breaker strike).
        .pool_idle_timeout(std::time::Duration::from_secs(4))
        .build()
        .map_err(|e| GatewayError::Io(e.to_string()))
}

/// The tasks that run beside the HTTP server.
struct Background {
    shared: Arc<Shared>,
    engine: JoinHandle<()>,
    cleanup: JoinHandle<()>,
    pruner: JoinHandle<()>,
    sequences: JoinHandle<()>,
    inbox: JoinHandle<()>,
}

impl Background {
    fn spawn(
        engine: Engine,
        shared: &Arc<Shared>,
        shutdown: &CancellationToken,
        drain: Duration,
    ) -> Self {
        use crate::automations::worker;
        let cleanup = {
            let (shared, stop) = (shared.clone(), shared.cleanups.begin());
            async move { reload::cleanup(&shared, &stop).await }
        };
        Background {
            shared: shared.clone(),
            engine: tokio::spawn(engine.run(shutdown.clone(), drain)),
            cleanup: tokio::spawn(cleanup),
            pruner: tokio::spawn(super::prune::prune_loop(shared.clone(), shutdown.clone())),
            sequences: tokio::spawn(worker::sequences(shared.clone(), shutdown.clone())),
            inbox: tokio::spawn(worker::inbox(shared.clone(), shutdown.clone())),
        }
    }

    /// Waits for the tasks once the server has stopped, so that the store
    /// closes with nothing left writing to it.
    async fn finish(self, watcher: Option<ConfigWatcher>, reloader: JoinHandle<()>) {
        let _ = self.engine.await;
        // Their writer jobs are either committed or never started: stopping
        // them between two jobs loses nothing.
        let _ = self.sequences.await;
        let _ = self.inbox.await;
        self.pruner.abort();
        // Reload cleanups stop between two writer jobs; the pass of the next
        // start picks up where they left off.
        self.shared.cleanups.stop_all();
        self.cleanup.abort();
        drop(watcher);
        let _ = reloader.await;
        let _ = self.pruner.await;
        let _ = self.cleanup.await;
    }
}

/// The file watcher (unless `--no-watch`), its trigger channel and a
/// sender into it for SIGHUP. A watcher that cannot start leaves SIGHUP.
fn start_watcher(
    opts: &GatewayOptions,
) -> (Option<ConfigWatcher>, mpsc::Receiver<Trigger>, mpsc::Sender<Trigger>) {
    let started = opts.watch.then(|| match &opts.watcher_starter {
        Some(starter) => starter(&opts.config, opts.debounce),
        None => ConfigWatcher::start(&opts.config, opts.debounce),
    });
    let (watcher, rx, tx) = match started {
        Some(Ok((watcher, rx))) => {
            let tx = watcher.sender();
            // Changes made since the first load, before the first watch.
            let _ = tx.try_send(Trigger::Startup);
            (Some(watcher), rx, tx)
        }
        other => {
            if let Some(Err(e)) = other {
                tracing::warn!(
                    error = %e,
                    "the config is not watched: changes apply on SIGHUP only; when the error is \
                     `Too many open files` or says a watch limit was reached, the node is out of inotify \
                     instances or watches (per user, shared by all its processes): raise the sysctl \
                     fs.inotify.max_user_instances or fs.inotify.max_user_watches"
                );
            }
            let (tx, rx) = mpsc::channel(1);
            (None, rx, tx)
        }
    };
    metrics::gauge!("meshes_config_watcher_active").set(if watcher.is_some() { 1.0 } else { 0.0 });
    (watcher, rx, tx)
}

/// What a reload needs.
struct Reloader {
    paths: Vec<PathBuf>,
    shared: Arc<Shared>,
    status: Arc<ReloadStatus>,
    client: reqwest::Client,
}

impl Reloader {
    /// Reloads on each trigger until shutdown or until every sender is gone.
    fn spawn(
        self,
        mut rx: mpsc::Receiver<Trigger>,
        tokens: Arc<TokenStore>,
        shutdown: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let trigger = tokio::select! {
                    t = rx.recv() => t,
                    () = shutdown.cancelled() => None,
                };
                let Some(trigger) = trigger else { break };
                let Reloader { paths, shared, status, client } = &self;
                let outcome = reload::reload(paths, shared, status, client, Some(&tokens)).await;
                reload::report(&trigger, &outcome);
            }
        })
    }
}
