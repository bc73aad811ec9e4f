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
use std::path::Path;
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

/// What the scenario measured.
#[derive(Debug, Default)]
struct Figures {
    ceiling_idle: u64,
    idle: u64,
    start_empty: Duration,
    tenth: (u64, u64),
    full: (u64, u64),
    ingest_rate: f64,
    peak_ingest: u64,
    start_backlog: Duration,
    rss_start: u64,
    drained: u64,
    took: Duration,
    peak_drain: u64,
}

/// Runs the scenario and returns its rows.
pub async fn run(work: &WorkDir, o: &BacklogOpts) -> Result<Vec<Row>> {
    let mut f = Figures { ceiling_idle: ceiling_idle_rss(work).await?, ..Figures::default() };
    let port = process::free_port()?;
    let hooks = [configs::Hook::parked("later", port, o.lane_concurrency)];
    let rules = [configs::rule("backlog", "bench.backlog", "later")];
    let text = configs::gateway(&hooks, &rules, "[0s, 1h]");
    let config = configs::write(&work.path, "backlog.yaml", &text)?;
    let data = work.fresh("backlog-data")?;
    let log = work.path.join("meshes.log");
    let client = process::control_client()?;
    build_backlog(&mut f, o, &config, &data, &log, &client).await?;
    let receiver =
        process::start_helper("receiver", &[], port, &work.path.join("receiver.log")).await?;
    let (server, start_backlog) = process::start_meshes(&config, &data, &log).await?;
    f.start_backlog = start_backlog;
    f.rss_start = rss(server.pid())?;
    progress(&format!("  restarted with the backlog in {start_backlog:.2?}; draining"));
    (f.drained, f.took) = drain(&server, &client, o.lane_concurrency).await?;
    f.peak_drain = status_bytes(server.pid(), "VmHWM")?;
    server.stop(Duration::from_secs(60)).await?;
    receiver.stop(Duration::from_secs(10)).await?;
    work.discard(&data);
    progress(&format!("  drained {} in {:.2?}", f.drained, f.took));
    Ok(rows(&f))
}

/// First life of the server: idle RSS, then N/10 and N pending deliveries.
async fn build_backlog(
    f: &mut Figures,
    o: &BacklogOpts,
    config: &Path,
    data: &Path,
    log: &Path,
    client: &reqwest::Client,
) -> Result<()> {
    let (server, start_empty) = process::start_meshes(config, data, log).await?;
    f.start_empty = start_empty;
    tokio::time::sleep(Duration::from_secs(1)).await;
    f.idle = rss(server.pid())?;
    progress(&format!("Backlog: idle RSS {} (pid {})", mb(f.idle), server.pid()));
    let tenth = (o.events / 10).max(ingest_size());
    ingest(&server, tenth, o.ingest_concurrency).await?;
    f.tenth = settle(&server, client).await?;
    f.ingest_rate = ingest(&server, o.events.saturating_sub(tenth), o.ingest_concurrency).await?;
    f.full = settle(&server, client).await?;
    f.peak_ingest = status_bytes(server.pid(), "VmHWM")?;
    progress(&format!(
        "  {} pending: {}; {} pending: {}",
        f.tenth.1,
        mb(f.tenth.0),
        f.full.1,
        mb(f.full.0)
    ));
    server.stop(Duration::from_secs(60)).await?;
    Ok(())
}

/// Backlogs below this still fill the store's page cache (RSS grows to
/// ~54 MB by 100,000 pending on the reference VM, then stays), so growth
/// between two smaller ones says nothing about memory being flat.
const PLATEAU: u64 = 100_000;

/// The flatness verdict, given only when the N/10 backlog is past the
/// page cache's fill (a `--quick` run's 2,000 / 20,000 are not).
fn flat(row: Row, f: &Figures) -> Row {
    const TARGET: &str = "flat: ≤ 1.25× the N/10 figure";
    if f.tenth.1 < PLATEAU {
        return row.unjudged("flat: judged from 100,000 pending up (the full run)");
    }
    row.target(TARGET, f.full.0 as f64 <= 1.25 * f.tenth.0 as f64)
}

fn rows(f: &Figures) -> Vec<Row> {
    let b = "Backlog & memory";
    let n = thousands(f.full.1 as f64);
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let drain_rate = f.drained as f64 / f.took.as_secs_f64();
    vec![
        Row::info(b, "RSS idle (empty store)", mb(f.idle))
            .target("< 15 MB", f.idle < 15_000_000)
            .ceiling(mb(f.ceiling_idle), ratio(f.idle as f64, f.ceiling_idle as f64)),
        Row::info(b, "RSS peak while ingesting (VmHWM)", mb(f.peak_ingest)),
        Row::info(b, &format!("RSS with {} pending", thousands(f.tenth.1 as f64)), mb(f.tenth.0)),
        flat(Row::info(b, &format!("RSS with {n} pending"), mb(f.full.0)), f),
        Row::info(
            b,
            "bulk ingest while building the backlog",
            format!("{} events/s", thousands(f.ingest_rate)),
        ),
        Row::info(b, "startup to ready, empty store", ms(f.start_empty)),
        Row::info(b, &format!("startup to ready with {n} pending"), ms(f.start_backlog)),
        Row::info(b, "RSS right after that startup", mb(f.rss_start)),
        Row::info(
            b,
            "drain rate (receiver back, restart)",
            format!(
                "{} deliveries/s ({} in {:.1} s)",
                thousands(drain_rate),
                thousands(f.drained as f64),
                f.took.as_secs_f64()
            ),
        ),
        Row::info(b, "RSS peak while draining (VmHWM)", mb(f.peak_drain)),
    ]
}

fn ingest_size() -> u64 {
    super::ingest::BULK as u64
}

/// Ingests `events` (rounded up to whole bulk requests); returns events/s.
async fn ingest(server: &Proc, events: u64, concurrency: usize) -> Result<f64> {
    let requests = events.div_ceil(ingest_size());
    if requests == 0 {
        return Ok(0.0);
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
    Ok(r.events_per_sec())
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
    let p =
        process::start_helper("ceiling-server", &[], port, &work.path.join("ceiling.log")).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss(p.pid())?;
    p.stop(Duration::from_secs(10)).await?;
    Ok(idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatness_is_judged_only_past_the_page_cache_fill() {
        let mb = |n: u64| n * 1_000_000;
        let quick =
            Figures { tenth: (mb(19), 2_000), full: (mb(35), 20_000), ..Figures::default() };
        let row = flat(Row::info("b", "f", String::new()), &quick);
        assert_eq!((row.met, row.target.contains("full run")), ("—", true));
        let full =
            Figures { tenth: (mb(54), 100_000), full: (mb(54), 1_000_000), ..Figures::default() };
        assert_eq!(flat(Row::info("b", "f", String::new()), &full).met, "yes");
        let grows =
            Figures { tenth: (mb(54), 100_000), full: (mb(90), 1_000_000), ..Figures::default() };
        assert_eq!(flat(Row::info("b", "f", String::new()), &grows).met, "NO");
    }
}
