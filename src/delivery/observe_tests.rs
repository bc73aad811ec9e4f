//! The per-connection gauges at scrape time: the breaker read against the
//! clock, connections gone from the config set to 0, deliveries held by a
//! breaker counted as backlog. Times are explicit, as in the engine's tests
//! (`clock::now_ms` is shared by every test of the process). Also the
//! helpers other tests use to read metrics and log lines recorded on their
//! own thread.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::delivery::engine::Engine;
use crate::gateway::runtime;
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::PrometheusHandle;
use std::io::Write;
use std::sync::OnceLock;

/// A recorder for this thread only (tests of a current-thread runtime run
/// every task on it), and its exposition.
pub(crate) fn recorder() -> (metrics::LocalRecorderGuard<'static>, PrometheusHandle) {
    let recorder = crate::api::ops::prometheus_builder().build_recorder();
    let recorder: &'static _ = Box::leak(Box::new(recorder));
    (metrics::set_default_local_recorder(recorder), recorder.handle())
}

/// The value of the sample `series` (name and labels as rendered), if any.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    let value = text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?;
    value.parse().ok()
}

/// Log lines written on this thread at the default level (`info`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn capture() -> (tracing::subscriber::DefaultGuard, Logs) {
        // tracing caches each call site's interest for the process. With a
        // single live dispatcher it asks only the default of the thread
        // that first hits a call site: another test's thread, with none,
        // would make this thread's subscriber miss that site for good. A
        // second, silent dispatcher kept for the process makes it ask all.
        static SILENT: OnceLock<tracing::Dispatch> = OnceLock::new();
        SILENT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
        let logs = Logs::default();
        let out = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        (tracing::subscriber::set_default(subscriber), logs)
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap().lines().map(str::to_string).collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
const NOW: u64 = 1_000_000;

/// Log connections named `names`.
fn config(names: &[&str]) -> Arc<Runtime> {
    let conns: String = names.iter().map(|n| format!("  {n}: {{ type: log }}\n")).collect();
    Arc::new(runtime::from_text(format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n{conns}rules: []\n"
    )))
}

fn depth(name: &str, due: u64, later: u64, running: u64) -> QueueDepth {
    QueueDepth { conn_key: format!("{WS}/{name}"), due, later, running }
}

/// An engine over `rt` whose lanes exist (as after its first tick).
fn engine(rt: Arc<Runtime>) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let mut engine = Engine::new(store, Arc::new(ArcSwap::new(rt)));
    engine.tick_at(NOW).unwrap();
    (dir, engine)
}

fn gauge(text: &str, name: &str, conn: &str) -> Option<f64> {
    sample(text, &format!("{name}{{connection=\"{WS}/{conn}\"}}"))
}

#[test]
fn the_circuit_reads_open_only_while_the_breaker_holds_sends_back() {
    let (_guard, handle) = recorder();
    let rt = config(&["out"]);
    let (_dir, mut engine) = engine(rt.clone());
    let lane = engine.lane(rt.connections().next().unwrap());
    let shared = engine.shared();
    let lanes = &shared.lanes;
    let open = |now| {
        lanes.export(&rt, Some(&[]), now);
        gauge(&handle.render(), "meshes_circuit_open", "out")
    };
    assert_eq!(open(NOW), Some(0.0));
    let threshold = lane.settings.breaker.failure_threshold;
    (0..threshold).for_each(|_| _ = lane.record(false, NOW));
    let until = NOW + lane.settings.breaker.cooldown.get().as_millis() as u64;
    assert_eq!(open(NOW), Some(1.0));
    assert_eq!(open(until - 1), Some(1.0));
    // Nothing is due, so nothing was sent and the breaker is still `Open`:
    // the cooldown is over all the same, and a probe may go.
    assert_eq!(open(until), Some(0.0), "the cooldown ended");
    lane.pause_until(until + 3_600_000, until);
    assert_eq!(open(until + 1), Some(1.0), "a spent quota holds sends back too");
}

#[test]
fn a_connection_gone_from_the_config_and_the_queue_reads_zero() {
    let (_guard, handle) = recorder();
    let both = config(&["out", "gone"]);
    let (_dir, mut engine) = engine(both.clone());
    let gone = engine.lane(both.connections().find(|c| c.conn_key.ends_with("/gone")).unwrap());
    gone.pause_until(NOW + 60_000, NOW);
    let shared = engine.shared();
    let lanes = &shared.lanes;
    let read = |rt: &Runtime, depths: &[QueueDepth]| {
        lanes.export(rt, Some(depths), NOW);
        let text = handle.render();
        ["meshes_queue_depth", "meshes_retry_backlog", "meshes_circuit_open"]
            .map(|name| gauge(&text, name, "gone"))
    };
    let queued = [depth("out", 1, 0, 0), depth("gone", 2, 3, 0)];
    assert_eq!(read(&both, &queued), [Some(0.0), Some(5.0), Some(1.0)], "held by the breaker");

    // Removed by a reload, its deliveries not yet canceled: still shown,
    // and its lane is dropped with its breaker.
    let one = config(&["out"]);
    shared.runtime.store(one.clone());
    engine.tick_at(NOW).unwrap();
    assert_eq!(read(&one, &queued), [Some(2.0), Some(3.0), Some(0.0)]);
    // Then canceled: neither configured nor queued, all three read 0.
    assert_eq!(read(&one, &queued[..1]), [Some(0.0); 3]);
}

#[test]
fn a_failed_scan_keeps_the_queue_gauges_and_still_reads_the_breakers() {
    let (_guard, handle) = recorder();
    let rt = config(&["out"]);
    let (_dir, engine) = engine(rt.clone());
    let shared = engine.shared();
    let lanes = &shared.lanes;
    lanes.export(&rt, Some(&[depth("out", 4, 1, 2)]), NOW);
    lanes.export(&rt, None, NOW);
    let text = handle.render();
    assert_eq!(gauge(&text, "meshes_queue_depth", "out"), Some(4.0));
    assert_eq!(gauge(&text, "meshes_circuit_open", "out"), Some(0.0));
    assert_eq!(sample(&text, "meshes_pending_deliveries"), Some(7.0), "running ones are pending");
}
