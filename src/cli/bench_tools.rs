//! The tools the benchmarks run and a user can run alone: `meshes bench
//! load` (the load generator, against any endpoint), `ceiling-server` and
//! `receiver` (the reference servers).

use super::bench::{command_line, duration};
use super::serve::wait_for_signal;
use crate::bench::report::{Machine, Row, markdown, thousands};
use crate::bench::{load, servers};
use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `--listen` of the helper servers.
#[derive(Debug, clap::Args)]
pub(super) struct Listen {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub(super) listen: String,
}

/// Arguments of `meshes bench receiver`.
#[derive(Debug, clap::Args)]
pub(super) struct ReceiverArgs {
    #[command(flatten)]
    pub(super) listen: Listen,
    /// Answer 503 to the first attempt of this percent of deliveries (by
    /// `webhook-id`), then accept their retries.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub(super) fail_first_percent: u8,
}

/// Arguments of `meshes bench ceiling-server`.
#[derive(Debug, clap::Args)]
pub(super) struct CeilingArgs {
    #[command(flatten)]
    pub(super) listen: Listen,
    /// Durable: write each body to this file and fdatasync it before the 201
    /// (one sync per batch of waiting requests). The file is replaced by a
    /// 64 MiB log of written zeros first, then overwritten in place, as a
    /// write-ahead log reuses its segments. Put it on the disk you measure.
    #[arg(long)]
    pub(super) log_file: Option<PathBuf>,
}

/// Arguments of `meshes bench load`.
#[derive(Debug, clap::Args)]
pub(super) struct LoadArgs {
    /// Target, `http://host:port/path` (plain HTTP/1.1).
    #[arg(long)]
    url: String,
    /// Connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured window.
    #[arg(long, value_parser = duration, default_value = "10s")]
    duration: Duration,
    /// Warm-up, not measured.
    #[arg(long, value_parser = duration, default_value = "2s")]
    warmup: Duration,
    /// The body: a JSON literal (starts with `{` or `[`) or a file.
    #[arg(long)]
    body: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "K:V")]
    headers: Vec<String>,
    /// Statuses counted as success, e.g. `201,207` (default: any 2xx, so a
    /// webhook endpoint answering 200 or 202 counts too).
    #[arg(long, value_delimiter = ',')]
    ok: Vec<u16>,
    /// Events per request, for events/s (e.g. 100 for a bulk body).
    #[arg(long, default_value_t = 1)]
    events_per_request: u64,
    /// Pace to this many requests/s in total (default: as fast as answers come).
    #[arg(long)]
    rate: Option<f64>,
}

/// Which helper server to run.
pub(super) enum Helper {
    /// The ceiling; durable when it has a log file.
    Ceiling(Option<std::fs::File>),
    /// The webhook receiver, refusing first attempts of this percent.
    Receiver(u8),
}

pub(super) fn open_log(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    servers::preallocate(&file)
        .with_context(|| format!("cannot preallocate the log file {}", path.display()))?;
    Ok(file)
}

/// Runs the ceiling server or the receiver until SIGTERM/SIGINT.
pub(super) async fn helper(listen: &str, which: Helper) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let kind = match &which {
        Helper::Ceiling(None) => "ceiling server",
        Helper::Ceiling(Some(_)) => "durable ceiling server",
        Helper::Receiver(_) => "receiver",
    };
    super::output::say!("{kind} listening on http://{}", listener.local_addr()?);
    let server = async move {
        match which {
            Helper::Ceiling(None) => servers::ceiling(listener).await,
            Helper::Ceiling(Some(log)) => servers::durable_ceiling(listener, log).await,
            Helper::Receiver(fail_first) => servers::receiver(listener, fail_first).await,
        }
    };
    tokio::select! {
        () = server => {}
        () = wait_for_signal() => {}
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn load_cmd(a: &LoadArgs) -> anyhow::Result<ExitCode> {
    let spec = load_spec(a).await?;
    crate::bench::progress(&format!(
        "load: {} at c={} for {:?} (+{:?} warm-up)",
        a.url, a.concurrency, a.duration, a.warmup
    ));
    let r = load::run(spec, tokio::time::Instant::now()).await;
    let b = format!("load {}", a.url);
    let rows = vec![
        Row::info(&b, "requests/s", thousands(r.ok as f64 / r.window.as_secs_f64())),
        Row::info(&b, "events/s", thousands(r.events_per_sec())),
        Row::info(&b, "latency p50 / p99 / p999", r.latency.summary_ms()),
        Row::info(&b, "latency max", format!("{:.2} ms", r.latency.max() as f64 / 1000.0)),
        Row::info(&b, "failed requests", r.errors_text()),
    ];
    let machine = Machine::detect(std::path::Path::new("."));
    Ok(super::output::print(&markdown(&machine, &command_line(), &rows)))
}

async fn load_spec(a: &LoadArgs) -> anyhow::Result<load::LoadSpec> {
    let uri: hyper::Uri = a.url.parse().with_context(|| format!("not a URL: {}", a.url))?;
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported (plain HTTP/1.1)");
    }
    let host = uri.host().context("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let addr =
        tokio::net::lookup_host((host, port)).await?.next().context("cannot resolve the host")?;
    let body = if a.body.trim_start().starts_with(['{', '[']) {
        a.body.clone()
    } else {
        std::fs::read_to_string(&a.body).with_context(|| format!("cannot read {}", a.body))?
    };
    if let Some(r) = a.rate.filter(|r| !(r.is_finite() && *r >= 0.01)) {
        bail!("--rate is requests per second in total, at least 0.01; got {r}");
    }
    let mut headers = Vec::new();
    for h in &a.headers {
        let (k, v) =
            h.split_once(':').with_context(|| format!("expected `Name: value`, found `{h}`"))?;
        headers.push((HeaderName::try_from(k.trim())?, HeaderValue::try_from(v.trim())?));
    }
    Ok(load::LoadSpec {
        addr,
        host: uri.authority().map_or_else(|| host.to_string(), ToString::to_string),
        path: uri.path_and_query().map_or_else(|| "/".into(), ToString::to_string),
        headers,
        bodies: vec![Bytes::from(body)],
        concurrency: a.concurrency,
        warmup: a.warmup,
        duration: a.duration,
        events_per_request: a.events_per_request,
        ok_statuses: if a.ok.is_empty() { (200..300).collect() } else { a.ok.clone() },
        rate: a.rate,
        max_requests: None,
    })
}
