//! The soak's samples and what they say: is memory, disk or the backlog
//! still growing once the run has settled?

use super::process::mb;
use super::report::{Row, thousands};
use super::soak_window::Interval;
use serde_json::Value;
use std::time::Duration;

/// One reading of the running server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Time since traffic started.
    pub at: Duration,
    /// Events acknowledged so far (the server's counter).
    pub ingested: u64,
    /// Deliveries both receivers accepted so far.
    pub delivered: u64,
    /// First attempts the flaky receiver refused so far.
    pub refused: u64,
    /// Deliveries pending in the store.
    pub pending: u64,
    /// Resident memory.
    pub rss: u64,
    /// The data directory's size on disk.
    pub disk: u64,
    /// The steady destination's ingest→delivery p99 and max since the last
    /// sample (ms).
    pub tail_ms: (f64, f64),
    /// CPU, slow commits and stalls since the last sample.
    pub window: Interval,
}

/// The samples' columns, in the order of [`Sample::cells`].
const COLUMNS: [&str; 16] = [
    "t (s)",
    "ingested",
    "delivered",
    "refused once",
    "pending",
    "RSS",
    "data dir",
    "CPU (cores)",
    "delivery p99 / max (ms)",
    "commits > 50 ms",
    "CPU stolen",
    "rig CPU (cores)",
    "CPU wait",
    "I/O wait",
    "worst 1 s: commit mean, I/O wait",
    "store writer's disk reads",
];

impl Sample {
    /// The figures, formatted, in the order of [`COLUMNS`].
    fn cells(&self) -> [String; 16] {
        let t = |v: u64| thousands(v as f64);
        let w = &self.window;
        let share = |v: Option<f64>| v.map_or_else(|| "n/a".into(), |v| format!("{v:.1} %"));
        [
            format!("{:.0}", self.at.as_secs_f64()),
            t(self.ingested),
            t(self.delivered),
            t(self.refused),
            t(self.pending),
            mb(self.rss),
            mb(self.disk),
            format!("{:.2}", w.cores),
            format!("{:.0} / {:.0}", self.tail_ms.0, self.tail_ms.1),
            t(w.slow_commits),
            format!("{:.1} %", w.stolen),
            format!("{:.2}", w.rig_cores),
            share(w.cpu_wait),
            share(w.io_wait),
            format!("{:.1} ms, {}", w.worst.commit_ms, share(w.worst.io_wait)),
            w.writer_reads.map_or_else(|| "n/a".into(), mb),
        ]
    }

    /// One progress line.
    pub fn line(&self) -> String {
        let cells = self.cells();
        // `t (s)` leads the line as `60 s:`; the rest are `name value`.
        let pairs: Vec<String> =
            COLUMNS.iter().zip(&cells).skip(1).map(|(k, v)| format!("{k} {v}")).collect();
        format!("  {:>6} s: {}", cells[0], pairs.join(", "))
    }
}

/// Every sample of a run.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// In time order.
    pub samples: Vec<Sample>,
}

/// A quantity's peak over the two halves of the settled part of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trend {
    /// Peak in the first half.
    pub early: u64,
    /// Peak in the second half.
    pub late: u64,
}

impl Trend {
    /// Flat: the second half's peak is within 10 % (plus `slack`) of the first's.
    pub fn flat(&self, slack: u64) -> bool {
        self.late <= self.early + self.early / 10 + slack
    }

    fn growth(&self) -> f64 {
        (self.late as f64 / self.early.max(1) as f64 - 1.0) * 100.0
    }
}

impl Series {
    /// The peaks of `value` over the two halves of the samples taken at or
    /// after `settle`; `None` with fewer than four of them.
    pub fn trend(&self, settle: Duration, value: impl Fn(&Sample) -> u64) -> Option<Trend> {
        let settled: Vec<u64> =
            self.samples.iter().filter(|s| s.at >= settle).map(&value).collect();
        if settled.len() < 4 {
            return None;
        }
        let (early, late) = settled.split_at(settled.len() / 2);
        let peak = |v: &[u64]| v.iter().copied().max().unwrap_or(0);
        Some(Trend { early: peak(early), late: peak(late) })
    }

    /// RSS, data dir and backlog rows; the run settles after `settle` (by
    /// then pruning has deleted at least one retention window) or a fifth of
    /// the run, whichever is later.
    pub fn trend_rows(&self, bench: &str, settle: Duration) -> Vec<Row> {
        let end = self.samples.last().map_or(Duration::ZERO, |s| s.at);
        let settle = settle.max(end / 5);
        let judged = |figure: &str, value: fn(&Sample) -> u64, shown: fn(u64) -> String, slack| {
            let figure =
                format!("{figure}, peak after {} s: 1st half → 2nd half", settle.as_secs());
            let target = format!("flat (≤ +10 % + {})", shown(slack));
            match self.trend(settle, value) {
                Some(t) => Row::info(
                    bench,
                    &figure,
                    format!("{} → {} ({:+.1} %)", shown(t.early), shown(t.late), t.growth()),
                )
                .target(&target, t.flat(slack)),
                None => Row::info(bench, &figure, "too few samples after settling".into())
                    .target(&target, false),
            }
        };
        vec![
            judged("RSS", |s| s.rss, mb, 2_000_000),
            judged("data dir on disk", |s| s.disk, mb, 1_000_000),
            // The backlog holds ~a second of deliveries plus the retries
            // waiting out their delay: allow that much slack.
            judged("pending deliveries", |s| s.pending, |v| thousands(v as f64), 5_000),
        ]
    }

    /// Mean CPU over the samples, in cores.
    pub fn mean_cores(&self) -> f64 {
        let n = self.samples.len().max(1) as f64;
        self.samples.iter().map(|s| s.window.cores).sum::<f64>() / n
    }

    /// The largest `value` of any sample.
    pub fn max(&self, value: impl Fn(&Sample) -> u64) -> u64 {
        self.samples.iter().map(value).max().unwrap_or(0)
    }

    /// The samples as a Markdown table.
    pub fn markdown(&self) -> String {
        let row = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut s = String::from("\n");
        s += &row(&COLUMNS.map(String::from));
        s += &row(&COLUMNS.map(|_| "---:".to_string()));
        for x in &self.samples {
            s += &row(&x.cells());
        }
        s
    }
}

/// What the end of a run found, with ingest stopped and the backlog drained.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events acknowledged as single events and in bulk requests.
    pub acknowledged: (u64, u64),
    /// Ingest errors of the single and the bulk load (`none`, or counts by kind).
    pub errors: (String, String),
    /// The steady receiver's `/stats` (every event).
    pub steady: Value,
    /// The flaky receiver's `/stats` (single events only).
    pub flaky: Value,
    /// Config writes made (valid, invalid).
    pub writes: (u64, u64),
    /// Reloads the server counted (applied, rejected).
    pub reloads: (u64, u64),
}

impl Outcome {
    /// Delivery, latency and reload rows.
    pub fn rows(&self, bench: &str) -> Vec<Row> {
        let (w, r) = (self.writes, self.reloads);
        vec![
            self.delivery(bench),
            Row::info(
                bench,
                "ingest→delivery p50 / p99 / p999 / max (steady)",
                latency(&self.steady["latency_ms"]),
            ),
            Row::info(
                bench,
                "config writes (valid, invalid) → applied, rejected",
                format!("{}, {} → {}, {}", w.0, w.1, r.0, r.1),
            )
            .target("each valid applied, each invalid rejected", w == r),
        ]
    }

    /// Every acknowledged event at each of its destinations exactly once:
    /// single events at both, bulk events at the steady one.
    fn delivery(&self, bench: &str) -> Row {
        let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
        let (singles, bulked) = self.acknowledged;
        let (steady, flaky) = (&self.steady, &self.flaky);
        let once = n(steady, "unique") == singles + bulked
            && n(flaky, "unique") == singles
            && n(steady, "duplicates") + n(flaky, "duplicates") == 0;
        let t = |v: u64| thousands(v as f64);
        let value = format!(
            "{} single + {} bulk → steady {} ({}), flaky {} ({}; {} first attempts refused); ingest errors: {}, {}",
            t(singles),
            t(bulked),
            t(n(steady, "unique")),
            n(steady, "duplicates"),
            t(n(flaky, "unique")),
            n(flaky, "duplicates"),
            t(n(flaky, "refused")),
            self.errors.0,
            self.errors.1
        );
        Row::info(bench, "acknowledged → delivered (unique, duplicates)", value)
            .target("every event to each destination once", once)
    }
}

fn latency(l: &Value) -> String {
    let q = |k: &str| l[k].as_f64().unwrap_or(f64::NAN);
    format!("{:.1} / {:.1} / {:.1} / {:.1} ms", q("p50"), q("p99"), q("p999"), q("max"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn series(rss: &[u64]) -> Series {
        let samples = rss
            .iter()
            .enumerate()
            .map(|(i, &rss)| Sample {
                at: Duration::from_secs(10 * i as u64),
                rss,
                ..Sample::default()
            })
            .collect();
        Series { samples }
    }

    #[test]
    fn a_trend_compares_the_peaks_of_the_settled_halves() {
        // The first two samples (before 20 s) are the warm-up and not judged.
        let s = series(&[1, 500, 40, 42, 41, 43]);
        assert_eq!(
            s.trend(Duration::from_secs(20), |x| x.rss),
            Some(Trend { early: 42, late: 43 })
        );
        assert!(s.trend(Duration::from_secs(40), |x| x.rss).is_none(), "two samples are too few");
    }

    #[test]
    fn flat_allows_ten_percent_and_the_slack() {
        assert!(Trend { early: 100, late: 110 }.flat(0));
        assert!(!Trend { early: 100, late: 111 }.flat(0));
        assert!(Trend { early: 100, late: 115 }.flat(5));
        assert!(Trend { early: 0, late: 5_000 }.flat(5_000), "an idle backlog may hold its slack");
    }

    #[test]
    fn a_creeping_series_is_not_flat() {
        let creeping: Vec<u64> = (0..20).map(|i| 40_000_000 + i * 1_000_000).collect();
        let rows = series(&creeping).trend_rows("soak", Duration::from_secs(30));
        assert_eq!(rows[0].met, "NO", "{:?}", rows[0]);
        let steady = series(&[40_000_000; 20]).trend_rows("soak", Duration::from_secs(30));
        assert_eq!(steady[0].met, "yes", "{:?}", steady[0]);
    }

    #[test]
    fn delivery_needs_every_event_once_at_each_destination() {
        let stats =
            |unique: u64, duplicates: u64| json!({"unique": unique, "duplicates": duplicates});
        let outcome = |steady, flaky| Outcome {
            acknowledged: (10, 200),
            errors: ("none".into(), "none".into()),
            steady,
            flaky,
            writes: (2, 1),
            reloads: (2, 1),
        };
        let met = |o: Outcome| o.rows("soak")[0].met;
        assert_eq!(met(outcome(stats(210, 0), stats(10, 0))), "yes");
        assert_eq!(met(outcome(stats(209, 0), stats(10, 0))), "NO", "one lost");
        assert_eq!(met(outcome(stats(210, 1), stats(10, 0))), "NO", "one twice");
        assert_eq!(met(outcome(stats(210, 0), stats(9, 0))), "NO", "one fan-out leg lost");
        let mut rejected_late = outcome(stats(210, 0), stats(10, 0));
        rejected_late.reloads = (2, 0);
        assert_eq!(rejected_late.rows("soak")[2].met, "NO");
    }

    #[test]
    fn the_table_has_a_cell_per_column_in_every_row() {
        let s = series(&[40_000_000, 41_000_000]);
        let table = s.markdown();
        let lines: Vec<&str> = table.trim().lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines.iter().all(|l| l.matches('|').count() == COLUMNS.len() + 1), "{table}");
        assert!(lines[3].contains("| 41.0 MB |"), "{table}");
        assert!(s.samples[1].line().contains("RSS 41.0 MB"));
        assert!(s.samples[1].line().contains("I/O wait n/a"), "no PSI: no figure");
        assert!(s.samples[1].line().contains("worst 1 s: commit mean, I/O wait 0.0 ms, n/a, "));
    }
}
