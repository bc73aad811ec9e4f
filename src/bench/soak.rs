//! Soak: a long run of steady mixed traffic against one `meshes serve`,
//! sampled, to find what a ten-second benchmark cannot: memory or disk that
//! creeps, a backlog that slowly grows, a reload or retry path that leaks.
//!
//! Everything a production sidecar sees runs at once, at a steady rate well
//! under capacity:
//! - single events fanned out to two connections, and bulk requests to one;
//! - one destination (`flaky`) refuses the first attempt of a share of its
//!   deliveries with a 503, so retries run all the time;
//! - the config is rewritten every `reload_every`, one write in three
//!   invalid (broken YAML or a rule naming no connection);
//! - `delivery.retention` is short, so pruning runs and the store must stop growing.
//!
//! At the end, with ingest stopped and the backlog drained, every
//! acknowledged event must have reached each of its destinations exactly
//! once, every valid write must have been applied and every invalid one rejected.

use super::configs::{self, Hook};
use super::e2e::{ingest_spec, received, received_window, wait_drained};
use super::ingest::BULK;
use super::load::{self, LoadSpec};
use super::process::{self, Proc, get_json, mb};
use super::report::{Row, thousands};
use super::soak_report::{Outcome, Sample, Series};
use super::soak_window::{Counters, Interval, Worst, metric};
use super::{BenchError, Result, Timing, WorkDir, progress};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct SoakOpts {
    /// How long traffic runs.
    pub duration: Duration,
    /// Events/s acknowledged: a quarter as single events, the rest in bulk.
    pub rate: f64,
    /// Time between samples.
    pub sample: Duration,
    /// `delivery.retention` of the config.
    pub retention: Duration,
    /// Time between config writes.
    pub reload_every: Duration,
    /// Percent of the flaky destination's deliveries refused once.
    pub fail_first: u8,
}

impl SoakOpts {
    /// 30 minutes at 2,000 events/s; `quick`: 1 minute, to check that all works.
    pub fn new(quick: bool) -> Self {
        let secs = Duration::from_secs;
        let (duration, sample, retention, reload_every) = if quick {
            (secs(60), secs(5), secs(10), secs(5))
        } else {
            (secs(1800), secs(60), secs(120), secs(30))
        };
        SoakOpts { duration, rate: 2_000.0, sample, retention, reload_every, fail_first: 10 }
    }
}

/// The processes under test and the config file they share.
struct Rig {
    steady: Proc,
    flaky: Proc,
    server: Proc,
    config: PathBuf,
    data: PathBuf,
    hooks: [Hook; 2],
}

/// Config writes made during the run.
#[derive(Debug, Default, Clone, Copy)]
struct Writes {
    valid: u64,
    invalid: u64,
}

/// Runs the soak; returns the summary rows and the sampled series.
pub async fn run(work: &WorkDir, o: &SoakOpts) -> Result<(Vec<Row>, Series)> {
    let rig = Rig::start(work, o).await?;
    progress(&format!(
        "Soak: {} events/s for {:?} (meshes pid {}), a sample every {:?}",
        thousands(o.rate),
        o.duration,
        rig.server.pid(),
        o.sample
    ));
    let client = process::control_client()?;
    let t0 = Instant::now();
    let single = tokio::spawn(load::run(rig.ingest(false, o), t0));
    let bulk = tokio::spawn(load::run(rig.ingest(true, o), t0));
    let writer = tokio::spawn(rewrite(rig.config.clone(), rig.hooks.clone(), *o, t0));
    let series = rig.sample(&client, o, t0).await?;
    let joined = |e: tokio::task::JoinError| BenchError::Failed(format!("soak task: {e}"));
    let (single, bulk) = (single.await.map_err(joined)?, bulk.await.map_err(joined)?);
    let writes = writer.await.map_err(joined)??;
    let reloads = rig.reloads_settled(&client, writes).await?;
    let drained = wait_drained(&client, &rig.server, Duration::from_secs(300)).await?;
    progress(&format!("  ingest stopped; backlog drained in {drained:.1?}"));
    let outcome = Outcome {
        acknowledged: (single.ok_total, bulk.ok_total * BULK as u64),
        errors: (single.errors_text(), bulk.errors_text()),
        steady: received(&client, &rig.steady.base).await?,
        flaky: received(&client, &rig.flaky.base).await?,
        writes: (writes.valid, writes.invalid),
        reloads,
    };
    let rows = summary(o, &series, &outcome);
    rig.stop().await?;
    Ok((rows, series))
}

impl Rig {
    async fn start(work: &WorkDir, o: &SoakOpts) -> Result<Rig> {
        let (p1, p2) = (process::free_port()?, process::free_port()?);
        let steady =
            process::start_helper("receiver", &[], p1, &work.path.join("steady.log")).await?;
        let refuse = ["--fail-first-percent".into(), o.fail_first.to_string().into()];
        let flaky =
            process::start_helper("receiver", &refuse, p2, &work.path.join("flaky.log")).await?;
        let hooks = [
            Hook::new("steady", &format!("{}/hook", steady.base), 16),
            Hook::new("flaky", &format!("{}/hook", flaky.base), 8),
        ];
        let config = configs::write(&work.path, "soak.yaml", &config_text(&hooks, o, 0))?;
        let data = work.fresh("soak-data")?;
        let (server, _) =
            process::start_meshes(&config, &data, &work.path.join("meshes.log")).await?;
        Ok(Rig { steady, flaky, server, config, data, hooks })
    }

    /// Single events (a quarter of the rate, 8 connections) or bulk requests
    /// of [`BULK`] (the rest, 2 connections), paced for the whole run.
    fn ingest(&self, bulk: bool, o: &SoakOpts) -> LoadSpec {
        let (event, share, concurrency) =
            if bulk { ("soak.bulk", 0.75, 2) } else { ("soak.single", 0.25, 8) };
        let timing = Timing { warmup: Duration::ZERO, duration: o.duration };
        let mut spec = ingest_spec(&self.server, event, bulk, concurrency, timing);
        spec.rate = Some(o.rate * share / spec.events_per_request as f64);
        spec
    }

    /// Samples until the end of the run: the server's figures every
    /// `o.sample`, its store and the machine's I/O every second in between
    /// (the worst of those seconds goes in the sample).
    async fn sample(&self, client: &reqwest::Client, o: &SoakOpts, t0: Instant) -> Result<Series> {
        let ticks = process::clock_ticks();
        let mut series = Series::default();
        let metrics = metrics_text(client, &self.server.base).await?;
        let mut start = Counters::read(&metrics, self.server.pid(), &self.rig_pids(), ticks)?;
        let mut n = 1;
        while o.sample * n <= o.duration {
            let end = t0 + o.sample * n;
            let (now, metrics, worst) = self.seconds(client, start, end, o.sample, ticks).await?;
            let window = Interval { worst, ..now.since(&start) };
            let s = self.reading(client, end - t0, &metrics, window).await?;
            progress(&s.line());
            series.samples.push(s);
            (start, n) = (now, n + 1);
        }
        Ok(series)
    }

    /// Reads the counters every second (or less: `sample` is cut into equal
    /// steps) up to `end`; returns the last reading, its metrics text and
    /// the worst second.
    async fn seconds(
        &self,
        client: &reqwest::Client,
        from: Counters,
        end: Instant,
        sample: Duration,
        ticks: f64,
    ) -> Result<(Counters, String, Worst)> {
        let steps = (sample.as_secs_f64().ceil() as u32).max(1);
        let (mut last, mut worst) = (from, Worst::default());
        let mut metrics = String::new();
        for k in (0..steps).rev() {
            tokio::time::sleep_until(end - sample * k / steps).await;
            metrics = metrics_text(client, &self.server.base).await?;
            let now = Counters::read(&metrics, self.server.pid(), &self.rig_pids(), ticks)?;
            worst.absorb(&now.since(&last));
            last = now;
        }
        Ok((last, metrics, worst))
    }

    async fn reading(
        &self,
        client: &reqwest::Client,
        at: Duration,
        metrics: &str,
        window: Interval,
    ) -> Result<Sample> {
        let ready = get_json(client, &format!("{}/readyz", self.server.base)).await?;
        // The steady receiver's latency since the last sample: a stall shows
        // in the minute it happened, not diluted into the whole run.
        let steady = received_window(client, &self.steady.base).await?;
        let flaky = received(client, &self.flaky.base).await?;
        let count = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        let ms = |k: &str| steady["window_latency_ms"][k].as_f64().unwrap_or(f64::NAN);
        Ok(Sample {
            at,
            ingested: metric(metrics, "meshes_events_ingested_total").unwrap_or(0.0) as u64,
            delivered: count(&steady, "received") + count(&flaky, "received"),
            refused: count(&flaky, "refused"),
            pending: ready["store"]["pending_deliveries"].as_u64().unwrap_or(u64::MAX),
            rss: process::rss(self.server.pid())?,
            disk: disk_bytes(&self.data)?,
            tail_ms: (ms("p99"), ms("max")),
            window,
        })
    }

    /// The receivers' pids: with the soak's own process, the rig whose CPU
    /// each sample shows beside the server's.
    fn rig_pids(&self) -> [u32; 2] {
        [self.steady.pid(), self.flaky.pid()]
    }

    /// Waits (at most 30 s) until the server has handled every write:
    /// returns (applied, rejected) as its metrics count them.
    async fn reloads_settled(&self, client: &reqwest::Client, w: Writes) -> Result<(u64, u64)> {
        let limit = Instant::now() + Duration::from_secs(30);
        loop {
            let text = metrics_text(client, &self.server.base).await?;
            let count = |r: &str| {
                metric(&text, &format!("meshes_config_reloads_total{{result=\"{r}\"}}"))
                    .unwrap_or(0.0) as u64
            };
            let seen = (count("applied"), count("rejected"));
            if seen == (w.valid, w.invalid) || Instant::now() > limit {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn stop(self) -> Result<()> {
        self.server.stop(Duration::from_secs(30)).await?;
        self.steady.stop(Duration::from_secs(10)).await?;
        self.flaky.stop(Duration::from_secs(10)).await?;
        Ok(())
    }
}

/// Config `n`: both connections, the fan-out rules, one extra rule whose
/// event type changes with `n` (so every write is a new config), a fast
/// retry schedule and the soak's retention.
fn config_text(hooks: &[Hook], o: &SoakOpts, n: u64) -> String {
    let rules = [
        configs::rule("single-steady", "soak.single", "steady"),
        configs::rule("single-flaky", "soak.single", "flaky"),
        configs::rule("bulk-steady", "soak.bulk", "steady"),
        configs::rule("extra", &format!("soak.extra{n}"), "steady"),
    ];
    // `gateway` ends with the `delivery:` block, so this line joins it.
    let retention = format!("  retention: {}s\n", o.retention.as_secs().max(1));
    configs::gateway(hooks, &rules, "[0s, 1s, 2s, 5s, 10s]") + &retention
}

/// Write `n` of the run when it is an invalid one (every third): broken
/// YAML, or a rule naming a connection that does not exist.
fn broken_text(valid: &str, n: u64) -> String {
    if n.is_multiple_of(2) {
        format!("{valid}rules: [unclosed\n")
    } else {
        valid.replacen("connection: steady", "connection: nowhere", 1)
    }
}

/// Rewrites the config every `reload_every` until the run ends (atomically,
/// as a deploy does).
async fn rewrite(path: PathBuf, hooks: [Hook; 2], o: SoakOpts, t0: Instant) -> Result<Writes> {
    let mut w = Writes::default();
    let writes = write_count(o.duration, o.reload_every);
    for n in 1..=writes {
        tokio::time::sleep_until(t0 + o.reload_every * n as u32).await;
        let valid = config_text(&hooks, &o, n);
        if invalid_write(n, writes) {
            write_atomic(&path, &broken_text(&valid, n))?;
            w.invalid += 1;
        } else {
            write_atomic(&path, &valid)?;
            w.valid += 1;
        }
    }
    Ok(w)
}

/// Writes made during the run: one every `every`, strictly before its end.
fn write_count(duration: Duration, every: Duration) -> u64 {
    let every = every.max(Duration::from_millis(100)).as_nanos();
    (duration.as_nanos().saturating_sub(1) / every) as u64
}

/// Every third write is invalid, but never the last: the run must end on a
/// valid config, and a valid write made right after an invalid one would be
/// read as one change (the watcher debounces), so the invalid one would
/// never be seen, let alone rejected.
fn invalid_write(n: u64, writes: u64) -> bool {
    n.is_multiple_of(3) && n != writes
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(super::io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(super::io(format!("rename to {}", path.display())))
}

async fn metrics_text(client: &reqwest::Client, base: &str) -> Result<String> {
    let r = client.get(format!("{base}/metrics")).send().await;
    let r = r.map_err(super::http("GET /metrics"))?;
    r.text().await.map_err(super::http("read /metrics"))
}

/// Bytes allocated on disk under `dir` (what `du` shows, not file lengths).
fn disk_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(super::io(format!("list {}", dir.display())))?;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        total += if meta.is_dir() { disk_bytes(&entry.path())? } else { meta.blocks() * 512 };
    }
    Ok(total)
}

/// The summary rows: trends, then what the end of the run found.
fn summary(o: &SoakOpts, series: &Series, outcome: &Outcome) -> Vec<Row> {
    let b = format!(
        "Soak ({} min, {} events/s, {} % of flaky first attempts refused, retention {} s)",
        o.duration.as_secs() / 60,
        thousands(o.rate),
        o.fail_first,
        o.retention.as_secs()
    );
    let mut rows = series.trend_rows(&b, o.retention * 2);
    rows.extend(outcome.rows(&b));
    let cores = format!("{:.2} cores", series.mean_cores());
    rows.push(Row::info(&b, "server CPU (mean of samples)", cores));
    let peaks = format!("{} / {}", mb(series.max(|s| s.rss)), mb(series.max(|s| s.disk)));
    rows.push(Row::info(&b, "peak RSS / data dir", peaks));
    rows
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::config::{CheckOptions, Source, check_sources};

    fn errors(text: String) -> usize {
        let report =
            check_sources(&[Source { name: "soak.yaml".into(), text }], CheckOptions::default());
        report.diagnostics.len()
    }

    #[test]
    fn every_valid_write_is_valid_and_new_and_every_invalid_one_is_refused() {
        let hooks = [
            Hook::new("steady", "http://127.0.0.1:9/hook", 16),
            Hook::new("flaky", "http://127.0.0.1:9/f", 8),
        ];
        let o = SoakOpts::new(true);
        let texts: Vec<String> = (0..4).map(|n| config_text(&hooks, &o, n)).collect();
        for t in &texts {
            assert_eq!(errors(t.clone()), 0, "{t}");
            assert!(t.contains("retention: 10s"), "{t}");
        }
        assert!(texts.windows(2).all(|w| w[0] != w[1]));
        for n in [3, 6] {
            assert!(errors(broken_text(&texts[1], n)) > 0, "write {n} should be refused");
        }
    }

    #[test]
    fn writes_are_spaced_through_the_run_and_the_last_is_valid() {
        let secs = Duration::from_secs;
        assert_eq!(write_count(secs(1800), secs(30)), 59, "none at the very end");
        assert_eq!(write_count(secs(480), secs(30)), 15);
        let invalid: Vec<u64> = (1..=15).filter(|&n| invalid_write(n, 15)).collect();
        assert_eq!(invalid, [3, 6, 9, 12], "write 15 would be invalid, but it is the last");
    }
}
