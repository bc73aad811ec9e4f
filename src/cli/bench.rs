//! `meshes bench …`: reproducible benchmarks (see BENCHMARKS.md). Progress
//! goes to stderr, the Markdown results to stdout.

use crate::bench::report::{Machine, Row, markdown, thousands};
use crate::bench::{Timing, WorkDir, backlog, config, e2e, ingest, load, servers, soak};
use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `meshes bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Everything below, then one Markdown table.
    All(Common),
    /// Single-event and bulk ingest vs the ceiling server.
    Ingest {
        #[command(flatten)]
        common: Common,
        /// Single-event concurrencies (repeat or comma-separate; 0 to skip).
        #[arg(long, value_delimiter = ',', default_values_t = [64, 256])]
        concurrency: Vec<usize>,
        /// Concurrency of the bulk run (0 to skip).
        #[arg(long, default_value_t = 16)]
        bulk_concurrency: usize,
    },
    /// Ingest → webhook delivery to a receiver process.
    E2e {
        #[command(flatten)]
        common: Common,
        /// Events/s of the latency phase (default: half the measured delivery rate).
        #[arg(long)]
        rate: Option<f64>,
        /// Events/s of the sustained phase (bulk ingest paced at this rate).
        #[arg(long, default_value_t = 10_000.0)]
        sustain: f64,
    },
    /// RSS idle/loaded/with a backlog, startup with it, drain rate.
    Backlog(Common),
    /// `validate` and reload time for 10,000 rules; rule-matching cost.
    Config(Common),
    /// A long run of steady mixed traffic (fan-out, retries, config writes,
    /// pruning), sampled: RSS, disk and backlog must stay flat and every event
    /// arrive once. Not part of `all`; exits 1 when a check fails.
    Soak(SoakArgs),
    /// Point the load generator at any HTTP/1.1 endpoint (other gateways too).
    Load(LoadArgs),
    /// The ceiling: parse JSON, answer 201, nothing else (used by the benchmarks).
    CeilingServer(CeilingArgs),
    /// A minimal webhook receiver with `/stats` (used by the benchmarks).
    Receiver(ReceiverArgs),
}

/// Options shared by the scenarios.
#[derive(Debug, Clone, clap::Args)]
struct Common {
    /// Short runs (1 s warm-up, 3 s window, 20,000-event backlog) to check that all works.
    #[arg(long)]
    quick: bool,
    /// Measured window of each load run (default 10 s, 3 s with --quick).
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// Warm-up before each window (default 2 s, 1 s with --quick).
    #[arg(long, value_parser = duration)]
    warmup: Option<Duration>,
    /// Pending deliveries built by the backlog benchmark (default 1,000,000).
    #[arg(long)]
    events: Option<u64>,
    /// Rules in the generated config of the config benchmark.
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
    /// Skip the ceiling measurements (no ratios).
    #[arg(long)]
    no_ceiling: bool,
    /// Attempts in flight on the receiver's connection (end to end).
    #[arg(long, default_value_t = 64)]
    lane_concurrency: u32,
    #[command(flatten)]
    scratch: Scratch,
}

/// Where a benchmark's scratch files go.
#[derive(Debug, Clone, clap::Args)]
struct Scratch {
    /// Where scratch configs and data dirs go: put it on the disk you
    /// measure (not a tmpfs). Default: ./target if it exists, else `.`.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the scratch directory (logs: meshes.log, receiver.log).
    #[arg(long)]
    keep: bool,
}

/// Arguments of `meshes bench soak` (defaults: 30 min; `--quick`: 1 min).
#[derive(Debug, Clone, clap::Args)]
struct SoakArgs {
    /// One minute, short retention and reload interval: checks that all works.
    #[arg(long)]
    quick: bool,
    /// How long traffic runs (default 30m).
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// Events/s acknowledged: a quarter single events, the rest bulk.
    #[arg(long)]
    rate: Option<f64>,
    /// Time between samples (default 60s).
    #[arg(long, value_parser = duration)]
    sample: Option<Duration>,
    /// `delivery.retention` of the generated config (default 2m).
    #[arg(long, value_parser = duration)]
    retention: Option<Duration>,
    /// Time between config writes (default 30s; one in three is invalid).
    #[arg(long, value_parser = duration)]
    reload_every: Option<Duration>,
    /// Percent of the flaky destination's deliveries refused once (default 10).
    #[arg(long)]
    fail_first_percent: Option<u8>,
    #[command(flatten)]
    scratch: Scratch,
}

impl SoakArgs {
    fn opts(&self) -> soak::SoakOpts {
        let d = soak::SoakOpts::new(self.quick);
        soak::SoakOpts {
            duration: self.duration.unwrap_or(d.duration),
            rate: self.rate.unwrap_or(d.rate),
            sample: self.sample.unwrap_or(d.sample),
            retention: self.retention.unwrap_or(d.retention),
            reload_every: self.reload_every.unwrap_or(d.reload_every),
            fail_first: self.fail_first_percent.unwrap_or(d.fail_first),
        }
    }
}

impl Common {
    fn timing(&self) -> Timing {
        let d = Timing::new(self.quick);
        Timing {
            warmup: self.warmup.unwrap_or(d.warmup),
            duration: self.duration.unwrap_or(d.duration),
        }
    }
    fn ingest(&self, concurrency: Vec<usize>, bulk_concurrency: usize) -> ingest::IngestOpts {
        let concurrency = concurrency.into_iter().filter(|c| *c > 0).collect();
        ingest::IngestOpts {
            concurrency,
            bulk_concurrency,
            timing: self.timing(),
            ceiling: !self.no_ceiling,
        }
    }
    fn e2e(&self, rate: Option<f64>, sustain: f64) -> e2e::E2eOpts {
        e2e::E2eOpts {
            timing: self.timing(),
            lane_concurrency: self.lane_concurrency,
            ingest_concurrency: 2,
            rate,
            sustain,
            ceiling: !self.no_ceiling,
        }
    }
    fn backlog(&self) -> backlog::BacklogOpts {
        let default = if self.quick { 20_000 } else { 1_000_000 };
        backlog::BacklogOpts {
            events: self.events.unwrap_or(default),
            ingest_concurrency: 4,
            lane_concurrency: self.lane_concurrency,
        }
    }
    fn config(&self) -> config::ConfigOpts {
        config::ConfigOpts {
            rules: self.rules,
            repeats: if self.quick { 1 } else { 3 },
            match_time: Duration::from_millis(if self.quick { 300 } else { 2_000 }),
        }
    }
}

impl Scratch {
    fn parent_dir(&self) -> anyhow::Result<PathBuf> {
        Ok(match &self.work_dir {
            Some(d) => d.clone(),
            None => {
                let cwd = std::env::current_dir()?;
                let target = cwd.join("target");
                if target.is_dir() { target } else { cwd }
            }
        })
    }
    fn work_dir(&self) -> anyhow::Result<WorkDir> {
        Ok(WorkDir::create(&self.parent_dir()?, self.keep)?)
    }
}

/// `--listen` of the helper servers.
#[derive(Debug, clap::Args)]
struct Listen {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// Arguments of `meshes bench receiver`.
#[derive(Debug, clap::Args)]
struct ReceiverArgs {
    #[command(flatten)]
    listen: Listen,
    /// Answer 503 to the first attempt of this percent of deliveries (by
    /// `webhook-id`), then accept their retries.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    fail_first_percent: u8,
}

/// Arguments of `meshes bench ceiling-server`.
#[derive(Debug, clap::Args)]
struct CeilingArgs {
    #[command(flatten)]
    listen: Listen,
    /// Durable: append each body to this file and fdatasync it before the 201
    /// (one sync per batch of waiting requests). Put it on the disk you measure.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

/// Arguments of `meshes bench load`.
#[derive(Debug, clap::Args)]
struct LoadArgs {
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
    /// Statuses counted as success.
    #[arg(long, value_delimiter = ',', default_values_t = [201, 207])]
    ok: Vec<u16>,
    /// Events per request, for events/s (e.g. 100 for a bulk body).
    #[arg(long, default_value_t = 1)]
    events_per_request: u64,
    /// Pace to this many requests/s in total (default: as fast as answers come).
    #[arg(long)]
    rate: Option<f64>,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::config::duration::parse(s).map(|d| d.get())
}

/// Runs `meshes bench …`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(dispatch(&args.command))
}

async fn dispatch(cmd: &Command) -> anyhow::Result<ExitCode> {
    let (common, rows) = match cmd {
        Command::CeilingServer(a) => {
            let log = match &a.log_file {
                Some(path) => Some(open_log(path)?),
                None => None,
            };
            return helper(&a.listen.listen, Helper::Ceiling(log)).await;
        }
        Command::Receiver(r) => {
            return helper(&r.listen.listen, Helper::Receiver(r.fail_first_percent)).await;
        }
        Command::Load(a) => return load_cmd(a).await,
        Command::Soak(a) => return soak_cmd(a).await,
        Command::All(c) => (c, all(c).await?),
        Command::Ingest { common, concurrency, bulk_concurrency } => {
            let w = common.scratch.work_dir()?;
            (common, ingest::run(&w, &common.ingest(concurrency.clone(), *bulk_concurrency)).await?)
        }
        Command::E2e { common, rate, sustain } => {
            (common, e2e::run(&common.scratch.work_dir()?, &common.e2e(*rate, *sustain)).await?)
        }
        Command::Backlog(c) => (c, backlog::run(&c.scratch.work_dir()?, &c.backlog()).await?),
        Command::Config(c) => (c, config::run(&c.scratch.work_dir()?, &c.config()).await?),
    };
    let dir = common.scratch.parent_dir()?;
    print!("{}", markdown(&Machine::detect(&dir), &command_line(), &rows));
    Ok(ExitCode::SUCCESS)
}

async fn all(c: &Common) -> anyhow::Result<Vec<Row>> {
    let w = c.scratch.work_dir()?;
    let mut rows = ingest::run(&w, &c.ingest(vec![64, 256], 16)).await.context("ingest")?;
    rows.extend(e2e::run(&w, &c.e2e(None, 10_000.0)).await.context("end to end")?);
    rows.extend(backlog::run(&w, &c.backlog()).await.context("backlog")?);
    rows.extend(config::run(&w, &c.config()).await.context("config")?);
    Ok(rows)
}

async fn soak_cmd(a: &SoakArgs) -> anyhow::Result<ExitCode> {
    let (rows, series) = soak::run(&a.scratch.work_dir()?, &a.opts()).await?;
    let machine = Machine::detect(&a.scratch.parent_dir()?);
    print!("{}{}", markdown(&machine, &command_line(), &rows), series.markdown());
    let failed = rows.iter().any(|r| r.met == "NO");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "meshes".into();
    }
    args.join(" ")
}

/// Which helper server to run.
enum Helper {
    /// The ceiling; durable when it has a log file.
    Ceiling(Option<std::fs::File>),
    /// The webhook receiver, refusing first attempts of this percent.
    Receiver(u8),
}

fn open_log(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}

/// Runs the ceiling server or the receiver until SIGTERM/SIGINT.
async fn helper(listen: &str, which: Helper) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let kind = match &which {
        Helper::Ceiling(None) => "ceiling server",
        Helper::Ceiling(Some(_)) => "durable ceiling server",
        Helper::Receiver(_) => "receiver",
    };
    eprintln!("{kind} listening on http://{}", listener.local_addr()?);
    let server = async move {
        match which {
            Helper::Ceiling(None) => servers::ceiling(listener).await,
            Helper::Ceiling(Some(log)) => servers::durable_ceiling(listener, log).await,
            Helper::Receiver(fail_first) => servers::receiver(listener, fail_first).await,
        }
    };
    tokio::select! {
        () = server => {}
        () = terminated() => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn terminated() {
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

async fn load_cmd(a: &LoadArgs) -> anyhow::Result<ExitCode> {
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
    print!("{}", markdown(&Machine::detect(std::path::Path::new(".")), &command_line(), &rows));
    Ok(ExitCode::SUCCESS)
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
        ok_statuses: a.ok.clone(),
        rate: a.rate,
        max_requests: None,
    })
}
