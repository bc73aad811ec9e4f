//! Backlog and memory: RSS idle, under ingest load and with N pending
//! deliveries; startup time with that backlog; drain rate.
//!
//! The webhook points at a port nothing listens on, retry schedule
//! `[0s, 1h]`, breaker opening after one failure for an hour: at most the
//! lane's concurrency (64) is attempted, everything else stays pending and
//! unattempted. Then the server is stopped, the receiver is started on that
//! very port and the server restarted on the same data directory: startup
//! time is measured with the backlog on disk, and the drain begins at once
//! (a restart resets the in-memory breaker; waiting for a probe instead
//! would add up to the cooldown to the figure).

use super::load::{self, LoadSpec};
use super::process::{self, Proc, get_json, mb, rss, status_bytes};
use super::report::{Row, ratio, thousands};
use super::{BenchError, Result, WorkDir, configs, progress};
use std::time::Duration;
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct BacklogOpts {
    /// Pending deliveries to build (N).
    pub events: u64,
    /// Bulk ingest connections used to build it.
    pub ingest_concurrency: usize,
    /// Attempts in flight on the webhook's connection (as in the end-to-end
    /// benchmark); also the most attempts spent while the port is dead.
    pub lane_concurrency: u32,
}

/// Runs the scenario and returns its rows.
pub async fn run(work: &WorkDir, o: &BacklogOpts) -> Result<Vec<Row>> {
    let ceiling_idle = ceiling_idle_rss(work).await?;
    let port = process::free_port()?;
    let hooks = [configs::Hook::parked("later", port, o.lane_concurrency)];
    let rules = [configs::rule("backlog", "bench.backlog", "later")];
    let config =
        configs::write(&work.path, "backlog.yaml", &configs::gateway(&hooks, &rules, "[0s, 1h]"))?;
    let data = work.fresh("backlog-data")?;
    let log = work.path.join("meshes.log");
    let client = process::control_client()?;
    let (server, start_empty) = process::start_meshes(&config, &data, &log).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss(server.pid())?;
    progress(&format!("Backlog: idle RSS {} (pid {})", mb(idle), server.pid()));
    let tenth = (o.events / 10).max(ingest_size());
    let (_, _) = ingest(&server, tenth, o.ingest_concurrency).await?;
    let (rss_tenth, pending_tenth) = settle(&server, &client).await?;
    let (rate, _) = ingest(&server, o.events.saturating_sub(tenth), o.ingest_concurrency).await?;
    let (rss_full, pending_full) = settle(&server, &client).await?;
    let peak_ingest = status_bytes(server.pid(), "VmHWM")?;
    progress(&format!(
        "  {pending_tenth} pending: {}; {pending_full} pending: {}",
        mb(rss_tenth),
        mb(rss_full)
    ));
    server.stop(Duration::from_secs(60)).await?;
    let receiver = process::start_helper("receiver", port, &work.path.join("receiver.log")).await?;
    let (server, start_backlog) = process::start_meshes(&config, &data, &log).await?;
    let rss_start = rss(server.pid())?;
    progress(&format!(
        "  restarted with backlog in {start_backlog:.2?}; draining into the receiver"
    ));
    let (drained, took) = drain(&server, &client, o.lane_concurrency).await?;
    let peak_drain = status_bytes(server.pid(), "VmHWM")?;
    server.stop(Duration::from_secs(60)).await?;
    receiver.stop(Duration::from_secs(10)).await?;
    let drain_rate = drained as f64 / took.as_secs_f64();
    progress(&format!("  drained {drained} in {took:.2?}"));
    let b = "Backlog & memory";
    let n = thousands(pending_full as f64);
    Ok(vec![
        Row::info(b, "RSS idle (empty store)", mb(idle))
            .target("< 15 MB", idle < 15_000_000)
            .ceiling(mb(ceiling_idle), ratio(idle as f64, ceiling_idle as f64)),
        Row::info(b, "RSS peak while ingesting (VmHWM)", mb(peak_ingest)),
        Row::info(
            b,
            &format!("RSS with {} pending", thousands(pending_tenth as f64)),
            mb(rss_tenth),
        ),
        Row::info(b, &format!("RSS with {n} pending"), mb(rss_full))
            .target("flat: ≤ 1.25× the N/10 figure", rss_full as f64 <= 1.25 * rss_tenth as f64)
            .ceiling("—".into(), None),
        Row::info(
            b,
            "bulk ingest while building the backlog",
            format!("{} events/s", thousands(rate)),
        ),
        Row::info(
            b,
            "startup to ready, empty store",
            format!("{:.0} ms", start_empty.as_secs_f64() * 1000.0),
        ),
        Row::info(
            b,
            &format!("startup to ready with {n} pending"),
            format!("{:.0} ms", start_backlog.as_secs_f64() * 1000.0),
        ),
        Row::info(b, "RSS right after that startup", mb(rss_start)),
        Row::info(
            b,
            "drain rate (receiver back, restart)",
            format!(
                "{} deliveries/s ({} in {:.1} s)",
                thousands(drain_rate),
                thousands(drained as f64),
                took.as_secs_f64()
            ),
        ),
        Row::info(b, "RSS peak while draining (VmHWM)", mb(peak_drain)),
    ])
}

fn ingest_size() -> u64 {
    super::ingest::BULK as u64
}

/// Ingests `events` (rounded up to whole bulk requests); returns events/s.
async fn ingest(server: &Proc, events: u64, concurrency: usize) -> Result<(f64, u64)> {
    let requests = events.div_ceil(ingest_size());
    if requests == 0 {
        return Ok((0.0, 0));
    }
    let spec = LoadSpec {
        addr: server.addr,
        host: server.addr.to_string(),
        path: "/api/v1/events/bulk".into(),
        headers: load::publishable_header(configs::PK),
        bodies: load::bulk_bodies("bench.backlog", super::ingest::BULK, 64),
        concurrency,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3_600),
        events_per_request: ingest_size(),
        ok_statuses: vec![201, 207],
        rate: None,
        max_requests: Some(requests),
    };
    let r = load::run(spec, Instant::now()).await;
    if r.error_count() > 0 {
        progress(&format!("  ingest errors: {}", r.errors_text()));
    }
    Ok((r.events_per_sec(), r.events()))
}

async fn pending(client: &reqwest::Client, server: &Proc) -> Result<u64> {
    let v = get_json(client, &format!("{}/readyz", server.base)).await?;
    v["store"]["pending_deliveries"]
        .as_u64()
        .ok_or_else(|| BenchError::Failed(format!("no pending_deliveries in /readyz: {v}")))
}

/// Lets background work settle for a second, then reads RSS and the backlog.
async fn settle(server: &Proc, client: &reqwest::Client) -> Result<(u64, u64)> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((rss(server.pid())?, pending(client, server).await?))
}

/// Waits until at most the lane's concurrency is pending (those few were
/// attempted while the port was dead and are due in an hour).
async fn drain(server: &Proc, client: &reqwest::Client, lane: u32) -> Result<(u64, Duration)> {
    let start = pending(client, server).await?;
    let t0 = Instant::now();
    loop {
        let now = pending(client, server).await?;
        if now <= u64::from(lane) {
            return Ok((start - now, t0.elapsed()));
        }
        if t0.elapsed() > Duration::from_secs(3_600) {
            return Err(BenchError::Failed(format!(
                "{now} deliveries still pending after an hour"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ceiling_idle_rss(work: &WorkDir) -> Result<u64> {
    let port = process::free_port()?;
    let p = process::start_helper("ceiling-server", port, &work.path.join("ceiling.log")).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss(p.pid())?;
    p.stop(Duration::from_secs(10)).await?;
    Ok(idle)
}
