//! `meshes serve`: run the gateway until SIGTERM/SIGINT.

use super::logging;
use super::output::say;
use crate::gateway::{Gateway, GatewayError, GatewayOptions, start};
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `--listen`'s default, also when `MESHES_LISTEN` is set but empty.
const DEFAULT_LISTEN: &str = "127.0.0.1:8700";

/// Arguments of `meshes serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config files or directories (repeat the flag, or comma-separate them
    /// in MESHES_CONFIG; the flag wins) [default: meshes.yaml].
    /// A directory's configs are the *.yaml/*.yml files with a top-level
    /// `workspace` key (see `meshes validate --help`). On reload, a file that
    /// served a workspace and is now empty or no longer a config is rejected;
    /// deleting the file removes its workspace.
    #[arg(long = "config", short = 'c', value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Address to listen on (empty: the default).
    #[arg(long, env = "MESHES_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Where the embedded store lives.
    #[arg(long, env = "MESHES_DATA_DIR", default_value = "./.meshes")]
    data_dir: PathBuf,
    /// Log format.
    #[arg(long, env = "MESHES_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Seconds given to running attempts and requests at shutdown.
    #[arg(long, env = "MESHES_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Requests per second allowed per credential, at least 1 (burst: twice that).
    #[arg(
        long,
        env = "MESHES_RATE_LIMIT",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    rate_limit: u32,
    /// Store page cache in MiB (memory use is flat beyond it, whatever the backlog).
    #[arg(long, env = "MESHES_STORE_CACHE_MB", default_value_t = 32)]
    store_cache_mb: usize,
    /// Do not watch the config for changes (SIGHUP still reloads).
    #[arg(long)]
    no_watch: bool,
    #[command(flatten)]
    trust: super::Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Runs the gateway.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_format)?;
    std::panic::set_hook(Box::new(log_panic));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("meshes").build()?;
    runtime.block_on(serve(args))
}

/// The log on stderr, which may break at any time without stopping the
/// gateway ([`super::output::Stderr`]; the fmt layer's own report of a failed
/// write would go through `eprintln!`, which panics).
fn init_tracing(format: LogFormat) -> anyhow::Result<()> {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(logging::filter()?)
        .with_writer(|| super::output::Stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(logging::colour_here()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}

/// A panic (a bug: attempts and requests that panic are caught and answered)
/// goes to the log as one record, in the log's format, with where it
/// happened. Its message is kept only when it is a literal in the code: a
/// formatted one (`expect` with a value, an index out of bounds…) could
/// quote a request, a provider's answer or a credential, and std's default
/// hook printed it raw to stderr.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    let literal = info.payload().downcast_ref::<&'static str>().copied();
    let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
    let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
    tracing::error!(
        location = %at,
        thread = %thread,
        message = literal.unwrap_or("(formatted; withheld: it may quote data)"),
        "panicked: a bug in meshes"
    );
}

async fn serve(args: &Args) -> anyhow::Result<ExitCode> {
    // From the first moment: during a long start (a store repair) the
    // default action of SIGTERM would end the process without a word.
    let mut signals = Signals::listen();
    raise_open_file_limit();
    let config = super::config_paths(&args.config)?;
    args.trust.install()?;
    let metrics = crate::api::ops::prometheus_builder().install_recorder()?;
    let listen = listen_addr(&args.listen);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let opts = options(args, config, metrics);
    let gateway = match starting(opts, listener, &mut signals).await {
        Started::Serving(g) => g,
        Started::Stopped(code) => return Ok(code),
    };
    if args.log_format == LogFormat::Text {
        // For people and scripts; JSON logs carry the address in `meshes is serving`.
        let data = super::data_dir(&args.data_dir);
        say!("meshes listening on http://{} (data in {})", gateway.addr, data.display());
    }
    let death = gateway.shared.store.writer_death();
    let code = until_stop(signals.next(), death.wait()).await;
    tracing::info!(
        "shutting down: no new requests; running attempts get {} s (a second signal stops at once)",
        args.shutdown_timeout
    );
    tokio::select! {
        () = gateway.stop() => Ok(ExitCode::from(code)),
        // Safe as a crash is: every 201 is on disk already, and attempts
        // whose outcome is not are sent again at the next start.
        () = signals.next() => {
            tracing::warn!("second signal: stopping without waiting; running attempts stay pending and are retried at the next start");
            Ok(ExitCode::from(1))
        }
    }
}

/// Waits for a signal (exit 0) or the store writer's death (exit 2: a
/// process that cannot write must end, so that a supervisor restarts it;
/// the gateway is already stopping, see `WriterDeath`).
async fn until_stop(signal: impl Future<Output = ()>, writer_died: impl Future<Output = ()>) -> u8 {
    tokio::select! {
        () = signal => 0,
        () = writer_died => 2,
    }
}

fn options(
    args: &Args,
    config: Vec<PathBuf>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> GatewayOptions {
    let mut opts = GatewayOptions::new(config, super::data_dir(&args.data_dir));
    opts.watch = !args.no_watch;
    opts.drain = Duration::from_secs(args.shutdown_timeout);
    opts.server.drain_timeout = opts.drain;
    opts.rate_limit = args.rate_limit;
    opts.metrics = Some(metrics);
    opts.store_opener =
        Some(crate::store::db::file_opener_with_cache(args.store_cache_mb.saturating_mul(1 << 20)));
    opts
}

/// `--listen`, or the default for an empty one: `MESHES_LISTEN=` (a
/// template that left it blank) means "not set", not "no address".
fn listen_addr(flag: &str) -> &str {
    if flag.trim().is_empty() { DEFAULT_LISTEN } else { flag }
}

/// How a start ended: serving, or stopped (a signal, an error) with the exit code.
enum Started {
    Serving(Gateway),
    Stopped(ExitCode),
}

/// Starts the gateway, on a thread of its own: loading the config and
/// opening (or repairing) the store block, and the signals must be heard
/// meanwhile. A signal lets the start finish (the store then closes as
/// after serving) and exits 0; a second one exits at once, which is as
/// safe as a crash (redb commits are atomic).
async fn starting(
    opts: GatewayOptions,
    listener: tokio::net::TcpListener,
    signals: &mut Signals,
) -> Started {
    tracing::info!(config = ?opts.config, data_dir = %opts.data_dir.display(), "starting: loading the config and opening the store");
    let shutdown = CancellationToken::new();
    let handle = tokio::runtime::Handle::current();
    let stop = shutdown.clone();
    let mut start =
        tokio::task::spawn_blocking(move || handle.block_on(start(opts, listener, stop)));
    tokio::select! {
        started = &mut start => return started_or_failed(started),
        () = signals.next() => {}
    }
    tracing::info!(
        "shutting down before serving: stopping once the start in progress is over (a second signal stops at once)"
    );
    shutdown.cancel();
    tokio::select! {
        started = start => match started_or_failed(started) {
            Started::Serving(gateway) => {
                gateway.stop().await;
                tracing::info!("stopped before serving");
                Started::Stopped(ExitCode::SUCCESS)
            }
            stopped => stopped,
        },
        () = signals.next() => {
            tracing::warn!("second signal: stopping at once, before serving");
            std::process::exit(1)
        }
    }
}

/// The started gateway, or the exit code of its error (1 an invalid
/// config, 2 an I/O error: the store, the data directory, the listener).
fn started_or_failed(
    started: Result<Result<Gateway, GatewayError>, tokio::task::JoinError>,
) -> Started {
    let code = match started {
        Ok(Ok(gateway)) => return Started::Serving(gateway),
        Ok(Err(e @ GatewayError::Config(_))) => {
            say!("error: {e}");
            1
        }
        Ok(Err(e)) => {
            say!("error: {e}");
            2
        }
        Err(e) => {
            say!("error: the start failed: {e}");
            2
        }
    };
    Started::Stopped(ExitCode::from(code))
}

/// Every connection, inbound or outbound, takes a descriptor: the soft
/// limit (1,024 under systemd) is raised to the hard one, which is there
/// to be used. The connection cap is then derived from it.
fn raise_open_file_limit() {
    match crate::server::fds::raise_limit() {
        Ok((before, after)) if before != after => {
            tracing::info!(before, after, "raised the open-file limit to its hard limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit; keeping it"),
    }
}

/// SIGTERM and SIGINT (Ctrl-C), heard from when they are listened to on:
/// a signal that comes between two waits is not lost.
pub(super) struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Listens (inside the runtime).
    pub(super) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let unix = signal(SignalKind::terminate()).and_then(|term| {
                let int = signal(SignalKind::interrupt())?;
                Ok((term, int))
            });
            Signals { unix: unix.ok() }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Until the next signal.
    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.unix {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Until SIGTERM or Ctrl-C.
pub(super) async fn wait_for_signal() {
    Signals::listen().next().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_listen_address_means_the_default() {
        assert_eq!(listen_addr(""), "127.0.0.1:8700");
        assert_eq!(listen_addr(" "), "127.0.0.1:8700");
        assert_eq!(listen_addr("0.0.0.0:80"), "0.0.0.0:80");
    }

    #[tokio::test]
    async fn a_dead_store_writer_stops_serve_with_exit_2() {
        let never = std::future::pending::<()>;
        assert_eq!(until_stop(never(), async {}).await, 2);
        assert_eq!(until_stop(async {}, never()).await, 0);
    }
}
