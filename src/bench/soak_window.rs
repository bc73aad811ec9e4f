//! What happened between two soak samples, beyond the server's own figures:
//! enough to tell a slow interval's cause apart. A slow fsync shows as slow
//! commits and I/O wait; the hypervisor taking the CPU as stolen time; the
//! load generator or a receiver crowding the two cores as rig CPU and CPU
//! wait. Nothing here is sampled faster than the soak's interval, so a
//! cause shorter than a sample is diluted but not hidden.

use super::Result;
use super::process;
use tokio::time::Instant;

/// The interval's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Interval {
    /// The server's CPU, in cores.
    pub cores: f64,
    /// The soak's own process (load generator, sampler) and both receivers'
    /// CPU, in cores: they share the machine with the server.
    pub rig_cores: f64,
    /// Store commits (fsync included) over 50 ms.
    pub slow_commits: u64,
    /// Share of the machine's CPU time the hypervisor took (%): time no
    /// process here could run.
    pub stolen: f64,
    /// Share of the time some runnable task waited for a CPU (%), from the
    /// kernel's pressure stall information; `None` where it is off.
    pub cpu_wait: Option<f64>,
    /// Share of the time some task waited for I/O (%), likewise.
    pub io_wait: Option<f64>,
    /// The store commits' mean time (ms; 0 without a commit).
    pub commit_ms: f64,
    /// Bytes the store's writer thread waited for the disk to read (page
    /// cache misses); `None` where `/proc` does not say.
    pub writer_reads: Option<u64>,
    /// The worst second of the interval, filled in by the sampler.
    pub worst: Worst,
}

/// The worst second of an interval. A stall of a second or two, diluted in
/// a 30 s average, still shows here: a disk whose fsync slows from 0.5 to
/// 3 ms for a second holds up every ingest and attempt record in it, though
/// no single commit comes near 50 ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Worst {
    /// The highest mean store commit time of any second (ms).
    pub commit_ms: f64,
    /// The highest I/O wait share of any second (%).
    pub io_wait: Option<f64>,
}

impl Worst {
    /// Takes in one second's interval.
    pub fn absorb(&mut self, second: &Interval) {
        self.commit_ms = self.commit_ms.max(second.commit_ms);
        self.io_wait = match (self.io_wait, second.io_wait) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Running totals, read at each sample; an [`Interval`] is the change
/// between two readings.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    /// When they were read.
    taken: Instant,
    /// The server's CPU seconds.
    server_cpu: f64,
    /// The rig's CPU seconds (see [`Interval::rig_cores`]).
    rig_cpu: f64,
    /// Store commits that took over 50 ms.
    slow_commits: u64,
    /// Store commits, and the seconds they took.
    commits: (u64, f64),
    /// The machine's CPU ticks stolen by the hypervisor, and all of them.
    cpu: (u64, u64),
    /// Microseconds some task stalled on CPU and on I/O (PSI `some` totals).
    stalls: (Option<u64>, Option<u64>),
    /// Bytes the writer thread has read from the disk.
    writer_reads: Option<u64>,
}

impl Counters {
    /// Reads them now: `metrics` is the server's exporter text, `server` its
    /// pid, `rig` the receivers' pids (this process is added).
    pub fn read(metrics: &str, server: u32, rig: &[u32], ticks: f64) -> Result<Counters> {
        let mut rig_cpu = process::cpu_seconds(std::process::id(), ticks)?;
        for &pid in rig {
            rig_cpu += process::cpu_seconds(pid, ticks)?;
        }
        Ok(Counters {
            taken: Instant::now(),
            server_cpu: process::cpu_seconds(server, ticks)?,
            rig_cpu,
            slow_commits: slow_commits(metrics),
            commits: (
                metric(metrics, "meshes_store_commit_seconds_count").unwrap_or(0.0) as u64,
                metric(metrics, "meshes_store_commit_seconds_sum").unwrap_or(0.0),
            ),
            cpu: process::machine_cpu()?,
            stalls: (stall_micros("cpu"), stall_micros("io")),
            // The thread's name, as the kernel truncates it to 15 bytes.
            writer_reads: process::thread_disk_reads(server, "meshes-store-wr"),
        })
    }

    /// The interval from `prev` to these.
    pub fn since(&self, prev: &Counters) -> Interval {
        let secs = (self.taken - prev.taken).as_secs_f64().max(1e-9);
        let stolen = self.cpu.0.saturating_sub(prev.cpu.0) as f64;
        let total = self.cpu.1.saturating_sub(prev.cpu.1).max(1) as f64;
        let share = |now: Option<u64>, then: Option<u64>| {
            Some(now?.saturating_sub(then?) as f64 / (secs * 1e4))
        };
        let commits = self.commits.0.saturating_sub(prev.commits.0);
        let commit_secs = (self.commits.1 - prev.commits.1).max(0.0);
        Interval {
            cores: (self.server_cpu - prev.server_cpu) / secs,
            rig_cores: (self.rig_cpu - prev.rig_cpu) / secs,
            slow_commits: self.slow_commits.saturating_sub(prev.slow_commits),
            stolen: 100.0 * stolen / total,
            cpu_wait: share(self.stalls.0, prev.stalls.0),
            io_wait: share(self.stalls.1, prev.stalls.1),
            commit_ms: if commits == 0 { 0.0 } else { 1e3 * commit_secs / commits as f64 },
            writer_reads: self
                .writer_reads
                .zip(prev.writer_reads)
                .map(|(a, b)| a.saturating_sub(b)),
            worst: Worst::default(),
        }
    }
}

/// Store commits so far that took over 50 ms (a bound of the histogram's buckets).
fn slow_commits(metrics: &str) -> u64 {
    let all = metric(metrics, "meshes_store_commit_seconds_count").unwrap_or(0.0);
    let fast = metric(metrics, r#"meshes_store_commit_seconds_bucket{le="0.05"}"#);
    (all - fast.unwrap_or(all)).max(0.0) as u64
}

/// The value of the Prometheus sample named exactly `name` (labels included).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Microseconds, since boot, during which some task waited for `resource`
/// (`cpu`, `io`): the `total` of the `some` line of `/proc/pressure/<resource>`.
fn stall_micros(resource: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/pressure/{resource}")).ok()?;
    pressure_total(&text)
}

fn pressure_total(text: &str) -> Option<u64> {
    let some = text.lines().find_map(|l| l.strip_prefix("some "))?;
    some.split_whitespace().find_map(|f| f.strip_prefix("total=")?.parse().ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn slow_commits_are_read_from_the_exporters_own_text() {
        let recorder = crate::api::ops::prometheus_builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let h = metrics::histogram!("meshes_store_commit_seconds");
            [0.002, 0.049, 0.05, 0.051, 0.7].into_iter().for_each(|s| h.record(s));
        });
        // The bucket `le="0.05"` holds 0.05 itself: only 51 and 700 ms are
        // over 50 ms.
        assert_eq!(slow_commits(&handle.render()), 2);
        assert_eq!(slow_commits(""), 0, "no commit yet");
    }

    #[test]
    fn an_interval_is_the_change_per_second_and_the_shares() {
        let t = Instant::now();
        let prev = Counters {
            taken: t,
            server_cpu: 5.0,
            rig_cpu: 1.0,
            slow_commits: 3,
            commits: (100, 0.05),
            cpu: (10, 1_000),
            stalls: (Some(1_000_000), Some(0)),
            writer_reads: Some(4_096),
        };
        let now = Counters {
            taken: t + Duration::from_secs(4),
            server_cpu: 11.0,
            rig_cpu: 3.0,
            slow_commits: 7,
            commits: (300, 0.25),
            cpu: (30, 1_200),
            // 0.4 s of CPU wait and 2 s of I/O wait in 4 s.
            stalls: (Some(1_400_000), Some(2_000_000)),
            writer_reads: Some(1_052_672),
        };
        let i = now.since(&prev);
        assert_eq!((i.cores, i.rig_cores, i.slow_commits, i.stolen), (1.5, 0.5, 4, 10.0));
        assert_eq!((i.cpu_wait, i.io_wait), (Some(10.0), Some(50.0)));
        assert_eq!(i.writer_reads, Some(1 << 20));
        assert!((i.commit_ms - 1.0).abs() < 1e-9, "0.2 s over 200 commits: {}", i.commit_ms);
        assert_eq!(now.since(&now).commit_ms, 0.0, "no commit: no mean");
        let no_proc = Counters { stalls: (None, None), writer_reads: None, ..now };
        let i = no_proc.since(&prev);
        assert_eq!((i.cpu_wait, i.writer_reads), (None, None), "no figure rather than a wrong one");
    }

    #[test]
    fn the_worst_second_keeps_each_figures_peak() {
        let second = |commit_ms, io_wait| Interval { commit_ms, io_wait, ..Interval::default() };
        let mut w = Worst::default();
        for s in [second(0.5, Some(12.0)), second(3.8, Some(30.0)), second(0.6, Some(37.0))] {
            w.absorb(&s);
        }
        assert_eq!(w, Worst { commit_ms: 3.8, io_wait: Some(37.0) });
        w.absorb(&second(0.4, None));
        assert_eq!(w.io_wait, Some(37.0), "a second without PSI does not erase the peak");
    }

    #[test]
    fn counters_read_this_machine() {
        let (stolen, total) = process::machine_cpu().unwrap();
        assert!(total > 0 && stolen <= total, "steal is part of the total: {stolen} of {total}");
        let c = Counters::read("", std::process::id(), &[], process::clock_ticks()).unwrap();
        let psi = std::path::Path::new("/proc/pressure/io").exists();
        assert_eq!(c.stalls.1.is_some(), psi, "{c:?}");
    }

    #[test]
    fn a_threads_disk_reads_are_found_by_its_name() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new().name("soak-probe-thread".into());
        // The new thread names itself once running: wait for it.
        let t = t.spawn(move || ready_tx.send(()).map(|()| rx.recv())).unwrap();
        ready.recv().unwrap();
        let me = std::process::id();
        // The kernel keeps 15 bytes of the name.
        let reads = process::thread_disk_reads(me, "soak-probe-thre");
        let readable = std::path::Path::new("/proc/thread-self/io").exists();
        assert_eq!(reads.is_some(), readable, "{reads:?}");
        assert_eq!(process::thread_disk_reads(me, "no-such-thread"), None);
        drop(tx);
        assert!(t.join().unwrap().unwrap().is_err(), "woken by the sender's drop");
    }

    #[test]
    fn the_pressure_total_is_the_some_lines() {
        let text = "some avg10=1.50 avg60=0.20 avg300=0.09 total=6612317332\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=12\n";
        assert_eq!(pressure_total(text), Some(6_612_317_332));
        assert_eq!(pressure_total("full avg10=0.00 total=12\n"), None);
    }

    #[test]
    fn metric_reads_exact_names_only() {
        let text = "meshes_events_ingested_total 42\nmeshes_config_reloads_total{result=\"applied\"} 3\nmeshes_config_reloads_total{result=\"rejected\"} 1\n";
        assert_eq!(metric(text, "meshes_events_ingested_total"), Some(42.0));
        assert_eq!(metric(text, "meshes_config_reloads_total{result=\"rejected\"}"), Some(1.0));
        assert_eq!(metric(text, "meshes_events_ingested"), None);
    }
}
