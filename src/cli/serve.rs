//! `meshes serve`: run the gateway until SIGTERM/SIGINT.

use crate::gateway::{GatewayOptions, start};
use clap::ValueEnum;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Arguments of `meshes serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config files or directories (repeat, or comma-separate in MESHES_CONFIG).
    /// A directory's configs are the *.yaml/*.yml files with a top-level
    /// `workspace` key (see `meshes validate --help`). On reload, a file that
    /// served a workspace and is now empty or no longer a config is rejected;
    /// deleting the file removes its workspace.
    #[arg(
        long = "config",
        short = 'c',
        value_name = "PATH",
        env = "MESHES_CONFIG",
        value_delimiter = ',',
        default_value = "meshes.yaml"
    )]
    config: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "MESHES_LISTEN", default_value = "127.0.0.1:8700")]
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
    init_tracing(args.log_format);
    std::panic::set_hook(Box::new(log_panic));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("meshes").build()?;
    runtime.block_on(serve(args))
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("MESHES_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
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
    raise_open_file_limit();
    if let Err(e) = args.trust.install() {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(1));
    }
    let metrics = crate::api::ops::prometheus_builder().install_recorder()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let mut opts = GatewayOptions::new(args.config.clone(), args.data_dir.clone());
    opts.watch = !args.no_watch;
    opts.drain = Duration::from_secs(args.shutdown_timeout);
    opts.server.drain_timeout = opts.drain;
    opts.rate_limit = args.rate_limit;
    opts.metrics = Some(metrics);
    opts.store_opener =
        Some(crate::store::db::file_opener_with_cache(args.store_cache_mb.saturating_mul(1 << 20)));
    let shutdown = CancellationToken::new();
    let gateway = match start(opts, listener, shutdown.clone()).await {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if args.log_format == LogFormat::Text {
        // For people and scripts; JSON logs carry the address in `meshes is serving`.
        eprintln!(
            "meshes listening on http://{} (data in {})",
            gateway.addr,
            args.data_dir.display()
        );
    }
    wait_for_signal().await;
    tracing::info!(
        "shutting down: no new requests; running attempts get {} s (a second signal stops at once)",
        args.shutdown_timeout
    );
    tokio::select! {
        () = gateway.stop() => Ok(ExitCode::SUCCESS),
        // Safe as a crash is: every 201 is on disk already, and attempts
        // whose outcome is not are sent again at the next start.
        () = wait_for_signal() => {
            tracing::warn!("second signal: stopping without waiting; running attempts stay pending and are retried at the next start");
            Ok(ExitCode::from(1))
        }
    }
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

/// Until SIGTERM or Ctrl-C.
pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
