//! Config at scale: `meshes validate` and hot-reload time for a generated
//! 10,000-rule config, and rule-matching cost per event with 10,000 rules
//! versus 10 (in-process, [`crate::gateway::rules::RuleIndex`]).
//!
//! Reload is triggered with SIGHUP right after the new file is written (the
//! watcher would add its 250 ms debounce) and timed until `/readyz` shows
//! the next `config.version`.

use super::process::{self, Proc, get_json};
use super::report::{Row, ratio};
use super::{BenchError, Result, WorkDir, configs, io, progress};
use crate::config::{CheckOptions, Source, check_sources};
use crate::gateway::rules::{EventFacts, RuleIndex};
use std::path::Path;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct ConfigOpts {
    /// Rules in the large config.
    pub rules: usize,
    /// Repetitions of validate and reload (the median is reported).
    pub repeats: usize,
    /// Time spent timing each matching probe.
    pub match_time: Duration,
}

/// Runs the scenario and returns its rows.
pub async fn run(work: &WorkDir, o: &ConfigOpts) -> Result<Vec<Row>> {
    let n = o.rules;
    let big_text = configs::many_rules(n);
    let big = configs::write(&work.path, "rules-big.yaml", &big_text)?;
    let small = configs::write(&work.path, "rules-small.yaml", &configs::many_rules(10))?;
    progress(&format!("Config: validate {n} rules ×{}", o.repeats));
    let v_big = median((0..o.repeats).map(|_| validate(&big)).collect::<Result<Vec<_>>>()?);
    let v_small = median((0..o.repeats).map(|_| validate(&small)).collect::<Result<Vec<_>>>()?);
    let data = work.fresh("config-data")?;
    let (server, startup) =
        process::start_meshes(&big, &data, &work.path.join("meshes.log")).await?;
    progress(&format!("Config: reload {n} rules ×{} (SIGHUP)", o.repeats));
    let mut reloads = Vec::new();
    for i in 0..o.repeats {
        reloads.push(reload(&server, &big, &format!("{big_text}# revision {i}\n")).await?);
        // Let the watcher's own (unchanged) reload of the same write pass.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    server.stop(Duration::from_secs(30)).await?;
    work.discard(&data);
    let r = median(reloads);
    let m = matching(n, o.match_time)?;
    let b = &format!("Config ({n} rules)");
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let mut rows = vec![
        Row::info(b, "`meshes validate` wall time (process)", ms(v_big)).ceiling(
            format!("{} (10 rules)", ms(v_small)),
            ratio(v_big.as_secs_f64(), v_small.as_secs_f64()),
        ),
        Row::info(b, "reload: SIGHUP → new version on /readyz", ms(r)),
        Row::info(b, "startup to ready", ms(startup)),
    ];
    for (label, small_ns, big_ns) in m {
        rows.push(
            Row::info(b, &format!("rule matching per event, {label}"), format!("{big_ns:.0} ns"))
                .ceiling(format!("{small_ns:.0} ns (10 rules)"), ratio(big_ns, small_ns))
                .target("≈ flat (≤ 1.5× the 10-rule cost)", big_ns <= 1.5 * small_ns),
        );
    }
    Ok(rows)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Wall time of `meshes validate <file>` as a process (what CI pays).
fn validate(path: &Path) -> Result<Duration> {
    let exe = std::env::current_exe().map_err(io("find the meshes binary"))?;
    let t0 = Instant::now();
    let out = std::process::Command::new(exe)
        .envs(super::configs::ENV)
        .arg("validate")
        .arg(path)
        .output()
        .map_err(io("run meshes validate"))?;
    let took = t0.elapsed();
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        let head: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
        return Err(BenchError::Failed(format!("generated config is invalid:\n{head}")));
    }
    Ok(took)
}

async fn version(client: &reqwest::Client, server: &Proc) -> Result<u64> {
    let v = get_json(client, &format!("{}/readyz", server.base)).await?;
    v["config"]["version"]
        .as_u64()
        .ok_or_else(|| BenchError::Failed(format!("no config.version in /readyz: {v}")))
}

async fn reload(server: &Proc, path: &Path, text: &str) -> Result<Duration> {
    let client = process::control_client()?;
    let before = version(&client, server).await?;
    std::fs::write(path, text).map_err(io(format!("write {}", path.display())))?;
    let t0 = Instant::now();
    server.signal("HUP")?;
    while version(&client, server).await? <= before {
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(BenchError::Failed("the reload did not apply within 120 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(t0.elapsed())
}

/// The rule index of a generated config with `n` rules.
fn index(n: usize) -> Result<RuleIndex> {
    let source = Source { name: format!("rules-{n}.yaml"), text: configs::many_rules(n) };
    let report = check_sources(&[source], CheckOptions::default());
    let (_, cfg) = report
        .configs
        .first()
        .ok_or_else(|| BenchError::Failed(format!("generated {n}-rule config is invalid")))?;
    RuleIndex::build(&cfg.workspace.id, &cfg.rules).map_err(BenchError::Failed)
}

/// Timing rounds per probe and index.
const ROUNDS: u32 = 5;

/// `(probe, ns with 10 rules, ns with n rules)` for three probes: a type
/// with one plain rule, one with a CEL condition, and an unknown type.
fn matching(n: usize, budget: Duration) -> Result<Vec<(&'static str, f64, f64)>> {
    let small = index(10)?;
    let big = index(n)?;
    let payload = serde_json::value::to_raw_value(
        &serde_json::json!({"email": "ada@example.com", "plan": "pro", "amount": 4200}),
    )
    .map_err(|e| super::BenchError::Failed(e.to_string()))?;
    let probes = [
        ("1 plain rule for the type", "bench.e4"),
        ("1 CEL rule for the type", "bench.e5"),
        ("no rule for the type", "bench.unknown"),
    ];
    let mut out = Vec::new();
    for (label, event) in probes {
        let facts =
            EventFacts { event, resource: "user", resource_id: Some("u_1"), payload: &payload };
        // Alternate the two indexes in short rounds and keep each one's best
        // round: other load on the machine only ever makes a round slower.
        let (mut a, mut b) = (f64::MAX, f64::MAX);
        for _ in 0..ROUNDS {
            a = a.min(time_per_call(&small, &facts, budget / ROUNDS));
            b = b.min(time_per_call(&big, &facts, budget / ROUNDS));
        }
        out.push((label, a, b));
    }
    Ok(out)
}

/// Nanoseconds per `matching` call, timed over `budget` in batches.
fn time_per_call(index: &RuleIndex, facts: &EventFacts<'_>, budget: Duration) -> f64 {
    for _ in 0..1_000 {
        std::hint::black_box(index.matching(std::hint::black_box(facts), &mut Vec::new()));
    }
    let t0 = Instant::now();
    let mut calls: u64 = 0;
    while t0.elapsed() < budget {
        for _ in 0..1_000 {
            std::hint::black_box(index.matching(std::hint::black_box(facts), &mut Vec::new()));
        }
        calls += 1_000;
    }
    t0.elapsed().as_nanos() as f64 / calls as f64
}
