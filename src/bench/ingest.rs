//! Ingest: single-event POSTs at several concurrencies and bulk POSTs of
//! 100 events, against the ceiling server and against `meshes serve`. The
//! single-event cases also run against the durable ceiling (the ceiling with
//! an fsync'd log), which bounds any server that answers after its fsync.
//!
//! Every event matches one rule whose webhook is parked (nothing listens;
//! the breaker opens after the first failure), so each ingest writes what a
//! real one writes (event, payload, delivery, due index) while delivery
//! costs nothing. Each case gets a fresh process and an empty store.
//!
//! Every case also reports the bytes the server wrote to disk per event,
//! and one case paces single events at a modest rate: a group commit of
//! one event writes every B-tree page it touched, so a server that is
//! cheap on disk at full speed can be costly at the rates most users run.

use super::load::{self, LoadResult, LoadSpec};
use super::process::{self, clock_ticks, cpu_seconds};
use super::report::{Row, ratio, thousands};
use super::{Result, Timing, WorkDir, configs, progress};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::time::Instant;

/// Events per bulk request (the API's maximum).
pub const BULK: usize = 100;

/// What to run.
#[derive(Debug, Clone)]
pub struct IngestOpts {
    /// Concurrencies of the single-event runs (none: skip them).
    pub concurrency: Vec<usize>,
    /// Concurrency of the bulk run (0: skip it).
    pub bulk_concurrency: usize,
    /// Warm-up and window.
    pub timing: Timing,
    /// Also measure the ceiling servers (for the ratios).
    pub ceiling: bool,
    /// Events/s of the paced single-event case (0: skip it).
    pub paced_rate: f64,
}

/// Default events/s of the paced case: an ordinary production rate.
pub const PACED_RATE: f64 = 1000.0;

/// Connections of the paced case: enough that the pace, not the
/// connections, sets the rate.
const PACED_CONCURRENCY: usize = 16;

/// A load run with the server's CPU over the same window.
#[derive(Debug, Clone)]
pub struct Measured {
    /// What the load generator saw.
    pub load: LoadResult,
    /// CPU seconds the server used in the window.
    pub server_cpu: f64,
    /// CPU seconds the load generator (this process) used in the window.
    pub client_cpu: f64,
    /// Bytes written to the data dir's disk in the window, by any process
    /// ([`process::device_written`]; the benchmarks are all that runs).
    pub disk_written: Option<u64>,
}

impl Measured {
    /// Server CPU seconds per 1,000 successful events.
    pub fn cpu_per_1k(&self) -> f64 {
        let events = self.load.events();
        if events == 0 { f64::NAN } else { self.server_cpu * 1000.0 / events as f64 }
    }

    /// Disk bytes written per successful event, when known.
    pub fn disk_per_event(&self) -> Option<f64> {
        let events = self.load.events();
        self.disk_written.filter(|_| events > 0).map(|b| b as f64 / events as f64)
    }
}

/// Runs `spec` while sampling `pid`'s CPU at the window's edges.
pub async fn measure(spec: LoadSpec, pid: u32) -> Result<Measured> {
    measure_on(spec, pid, None).await
}

/// [`measure`], also counting what the device behind `stat`
/// ([`process::device_stat`]) wrote in the window.
pub async fn measure_on(spec: LoadSpec, pid: u32, stat: Option<PathBuf>) -> Result<Measured> {
    let ticks = clock_ticks();
    let written = move || stat.as_deref().and_then(process::device_written);
    let me = std::process::id();
    let t0 = Instant::now();
    let (warmup, window) = (spec.warmup, spec.duration);
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(t0 + warmup).await;
        let a = (cpu_seconds(pid, ticks), cpu_seconds(me, ticks), written());
        tokio::time::sleep_until(t0 + warmup + window).await;
        let b = (cpu_seconds(pid, ticks), cpu_seconds(me, ticks), written());
        (a, b)
    });
    let load = load::run(spec, t0).await;
    let ((s0, c0, d0), (s1, c1, d1)) =
        sampler.await.map_err(|e| super::BenchError::Failed(format!("cpu sampler: {e}")))?;
    let disk_written = d0.zip(d1).map(|(a, b)| b.saturating_sub(a));
    Ok(Measured { load, server_cpu: s1? - s0?, client_cpu: c1? - c0?, disk_written })
}

#[derive(Debug, Clone)]
struct Case {
    label: String,
    bulk: bool,
    concurrency: usize,
    /// Requests/s in total, for the paced case.
    rate: Option<f64>,
}

fn cases(o: &IngestOpts) -> Vec<Case> {
    let mut v: Vec<Case> = o
        .concurrency
        .iter()
        .map(|&c| Case {
            label: format!("Ingest single c={c}"),
            bulk: false,
            concurrency: c,
            rate: None,
        })
        .collect();
    if o.bulk_concurrency > 0 {
        let c = o.bulk_concurrency;
        let label = format!("Ingest bulk×{BULK} c={c}");
        v.push(Case { label, bulk: true, concurrency: c, rate: None });
    }
    if o.paced_rate > 0.0 {
        v.push(Case {
            label: format!("Ingest single paced {}/s", thousands(o.paced_rate)),
            bulk: false,
            concurrency: PACED_CONCURRENCY,
            rate: Some(o.paced_rate),
        });
    }
    v
}

fn spec(case: &Case, addr: SocketAddr, timing: Timing) -> LoadSpec {
    let (path, bodies, per) = if case.bulk {
        ("/api/v1/events/bulk", load::bulk_bodies("bench.ingest", BULK, 64), BULK as u64)
    } else {
        ("/api/v1/events", load::event_bodies("bench.ingest", 1024), 1)
    };
    LoadSpec {
        addr,
        host: addr.to_string(),
        path: path.into(),
        headers: load::publishable_header(configs::PK),
        bodies,
        concurrency: case.concurrency,
        warmup: timing.warmup,
        duration: timing.duration,
        events_per_request: per,
        ok_statuses: vec![201, 207],
        rate: case.rate,
        max_requests: None,
    }
}

/// Runs the ingest benchmarks and returns their rows.
pub async fn run(work: &WorkDir, o: &IngestOpts) -> Result<Vec<Row>> {
    let cases = cases(o);
    let (ceiling, durable) = if o.ceiling {
        let single: Vec<Case> = cases.iter().filter(|c| !c.bulk).cloned().collect();
        (
            ceiling_runs(work, &cases, o.timing, false).await?,
            ceiling_runs(work, &single, o.timing, true).await?,
        )
    } else {
        (HashMap::new(), HashMap::new())
    };
    let port = process::free_port()?;
    let hook = configs::Hook::parked("parked", port, 8);
    let rules = [configs::rule("ingest", "bench.ingest", "parked")];
    let config =
        configs::write(&work.path, "ingest.yaml", &configs::gateway(&[hook], &rules, "[0s, 1h]"))?;
    // Every case's data dir is in the work dir, on the one device.
    let disk = process::device_stat(&work.path);
    let mut rows = Vec::new();
    for case in &cases {
        let data = work.fresh("ingest-data")?;
        let (server, _) =
            process::start_meshes(&config, &data, &work.path.join("meshes.log")).await?;
        progress(&format!("{}: meshes (pid {})", case.label, server.pid()));
        let m = measure_on(spec(case, server.addr, o.timing), server.pid(), disk.clone()).await?;
        server.stop(std::time::Duration::from_secs(30)).await?;
        work.discard(&data);
        progress(&format!(
            "  {} events/s, {}",
            thousands(m.load.events_per_sec()),
            m.load.latency.summary_ms()
        ));
        let d = durable.get(&case.label);
        rows.extend(case_rows(case, &m, ceiling.get(&case.label)));
        rows.push(disk_row(case, &m, d));
        if let (Some(d), None) = (d, case.rate) {
            rows.push(durable_row(case, &m, d));
        }
    }
    Ok(rows)
}

/// Runs `cases` against one ceiling server; `durable`: the one that appends
/// each body to a log in the work dir (the disk meshes' store is on) and
/// fsyncs it before answering.
async fn ceiling_runs(
    work: &WorkDir,
    cases: &[Case],
    timing: Timing,
    durable: bool,
) -> Result<HashMap<String, Measured>> {
    let mut out = HashMap::new();
    if cases.is_empty() {
        return Ok(out);
    }
    let log_dir = if durable { Some(work.fresh("durable-ceiling")?) } else { None };
    let (name, extra) = match &log_dir {
        Some(dir) => {
            ("durable ceiling server", vec!["--log-file".into(), dir.join("log").into_os_string()])
        }
        None => ("ceiling server", Vec::new()),
    };
    let port = process::free_port()?;
    let server =
        process::start_helper("ceiling-server", &extra, port, &work.path.join("ceiling.log"))
            .await?;
    let disk = process::device_stat(&work.path);
    for case in cases {
        progress(&format!("{}: {name} (pid {})", case.label, server.pid()));
        let m = measure_on(spec(case, server.addr, timing), server.pid(), disk.clone()).await?;
        progress(&format!(
            "  {} events/s, {}",
            thousands(m.load.events_per_sec()),
            m.load.latency.summary_ms()
        ));
        out.insert(case.label.clone(), m);
    }
    server.stop(std::time::Duration::from_secs(10)).await?;
    if let Some(dir) = log_dir {
        work.discard(&dir);
    }
    Ok(out)
}

fn case_rows(case: &Case, m: &Measured, ceiling: Option<&Measured>) -> Vec<Row> {
    let b = case.label.as_str();
    let eps = m.load.events_per_sec();
    let ceil_eps = ceiling.map(|c| c.load.events_per_sec());
    let shown = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    let mut throughput = Row::info(b, "events/s", thousands(eps))
        .ceiling(shown(ceil_eps.map(thousands)), ceil_eps.and_then(|c| ratio(eps, c)));
    throughput = if case.rate.is_some() {
        // Paced: both servers keep the pace; the rate is the setting, not a result.
        Row::info(b, "events/s (paced)", thousands(eps))
    } else if case.bulk {
        throughput.target("≥ 150,000", eps >= 150_000.0)
    } else if let Some(c) = ceil_eps {
        throughput.target("≥ 0.6× ceiling", eps >= 0.6 * c)
    } else {
        throughput
    };
    let p99_ms = m.load.latency.quantile(0.99) as f64 / 1000.0;
    let mut latency = Row::info(b, "latency p50 / p99 / p999", m.load.latency.summary_ms())
        .ceiling(shown(ceiling.map(|c| c.load.latency.summary_ms())), None);
    if !case.bulk && case.rate.is_none() && case.concurrency == 64 {
        latency = latency.target("p99 < 10 ms", p99_ms < 10.0);
    }
    let cpu = m.cpu_per_1k();
    let cpu_row = Row::info(
        b,
        "server CPU-s per 1,000 events",
        format!("{cpu:.4} (load generator: {:.2} CPU-s in window)", m.client_cpu),
    )
    .ceiling(
        shown(ceiling.map(|c| format!("{:.4}", c.cpu_per_1k()))),
        ceiling.and_then(|c| ratio(cpu, c.cpu_per_1k())),
    );
    let errors = Row::info(b, "failed requests (not 201/207)", m.load.errors_text())
        .target("none", m.load.error_count() == 0);
    vec![throughput, latency, cpu_row, errors]
}

/// Bytes written to disk per event, against the durable ceiling's (its log
/// writes each fsync'd group of bodies in place).
fn disk_row(case: &Case, m: &Measured, durable: Option<&Measured>) -> Row {
    let shown = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), bytes);
    let durable_disk = durable.and_then(Measured::disk_per_event);
    let theirs = durable.map(|_| format!("{} (durable)", shown(durable_disk)));
    let ratio = m.disk_per_event().zip(durable_disk).and_then(|(a, b)| ratio(a, b));
    Row::info(&case.label, "disk written per event (device)", shown(m.disk_per_event()))
        .ceiling(theirs.unwrap_or_else(|| "—".into()), ratio)
}

/// `812 B`, `54.7 KB` (10^3, like the table's MB).
fn bytes(v: f64) -> String {
    if v < 1000.0 { format!("{v:.0} B") } else { format!("{:.1} KB", v / 1000.0) }
}

/// The same throughput against the durable ceiling: how much of what an
/// fsync-before-201 server can reach on this disk meshes reaches (no target:
/// the target is against the plain ceiling, in the row above).
fn durable_row(case: &Case, m: &Measured, durable: &Measured) -> Row {
    let (eps, d) = (m.load.events_per_sec(), durable.load.events_per_sec());
    Row::info(&case.label, "events/s vs the durable ceiling (fsync before 201)", thousands(eps))
        .ceiling(
            format!("{} (durable; {:.4} CPU-s per 1,000)", thousands(d), durable.cpu_per_1k()),
            ratio(eps, d),
        )
}
