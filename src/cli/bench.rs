//! `meshes bench …`: reproducible benchmarks (see BENCHMARKS.md). Progress
//! goes to stderr, the Markdown results to stdout.

use super::bench_tools::{CeilingArgs, Helper, LoadArgs, ReceiverArgs, helper, load_cmd, open_log};
use crate::bench::report::{Machine, Row, markdown};
use crate::bench::{Timing, WorkDir, backlog, config, e2e, ingest, soak};
use anyhow::Context;
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
        /// Events/s of the paced single-event case, which shows latency and
        /// disk bytes per event at an ordinary rate (0 to skip).
        #[arg(long, default_value_t = ingest::PACED_RATE)]
        paced_rate: f64,
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
    fn ingest(
        &self,
        concurrency: Vec<usize>,
        bulk_concurrency: usize,
        paced_rate: f64,
    ) -> ingest::IngestOpts {
        let concurrency = concurrency.into_iter().filter(|c| *c > 0).collect();
        ingest::IngestOpts {
            concurrency,
            bulk_concurrency,
            timing: self.timing(),
            ceiling: !self.no_ceiling,
            paced_rate,
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

pub(super) fn duration(s: &str) -> Result<Duration, String> {
    crate::config::duration::parse(s).map(|d| d.get()).map_err(|e| e.to_string())
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
        Command::All(c) => return all_cmd(c).await,
        Command::Ingest { common, concurrency, bulk_concurrency, paced_rate } => {
            let w = common.scratch.work_dir()?;
            let opts = common.ingest(concurrency.clone(), *bulk_concurrency, *paced_rate);
            (common, ingest::run(&w, &opts).await?)
        }
        Command::E2e { common, rate, sustain } => {
            (common, e2e::run(&common.scratch.work_dir()?, &common.e2e(*rate, *sustain)).await?)
        }
        Command::Backlog(c) => (c, backlog::run(&c.scratch.work_dir()?, &c.backlog()).await?),
        Command::Config(c) => (c, config::run(&c.scratch.work_dir()?, &c.config()).await?),
    };
    let dir = common.scratch.parent_dir()?;
    Ok(super::output::print(&markdown(&Machine::detect(&dir), &command_line(), &rows)))
}

/// Every part in turn. A part that fails ends the run, but the table of the
/// parts before it is still printed (a full disk in the backlog part does
/// not throw away the ingest figures).
async fn all_cmd(c: &Common) -> anyhow::Result<ExitCode> {
    let w = c.scratch.work_dir()?;
    let mut rows = Vec::new();
    let failed = all(c, &w, &mut rows).await.err();
    let dir = c.scratch.parent_dir()?;
    let printed = super::output::print(&markdown(&Machine::detect(&dir), &command_line(), &rows));
    match failed {
        Some(e) => Err(e.context("the table above has only the parts that finished")),
        None => Ok(printed),
    }
}

async fn all(c: &Common, w: &crate::bench::WorkDir, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    rows.extend(
        ingest::run(w, &c.ingest(vec![64, 256], 16, ingest::PACED_RATE)).await.context("ingest")?,
    );
    rows.extend(e2e::run(w, &c.e2e(None, 10_000.0)).await.context("end to end")?);
    rows.extend(backlog::run(w, &c.backlog()).await.context("backlog")?);
    rows.extend(config::run(w, &c.config()).await.context("config")?);
    Ok(())
}

async fn soak_cmd(a: &SoakArgs) -> anyhow::Result<ExitCode> {
    let (rows, series) = soak::run(&a.scratch.work_dir()?, &a.opts()).await?;
    let machine = Machine::detect(&a.scratch.parent_dir()?);
    let text = markdown(&machine, &command_line(), &rows) + &series.markdown();
    let failed = rows.iter().any(|r| r.met == "NO");
    let code = if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
    Ok(super::output::finish(code, super::output::out(&text)))
}

pub(super) fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "meshes".into();
    }
    args.join(" ")
}
