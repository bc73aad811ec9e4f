//! The generated `meshes.yaml` files. Credentials are fixed (the benchmarks
//! only ever talk to loopback); secrets are written as `${VAR}` and every
//! process the benchmarks start gets [`ENV`], so the configs are
//! warning-free, like a real one.

use super::{Result, io};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Workspace id of every generated config.
pub const WS: &str = "6a0b3e51-2d5c-4f7e-9a41-5be1c0c7d001";
/// Publishable key (ingest).
pub const PK: &str = "mesh_pub_bench_key_0001";
/// Machine access key.
pub const AK: &str = "mk_bench_0001";
/// Machine secret (a literal: bench configs are throwaway).
pub const SECRET: &str = "bench-machine-secret-0001";
/// Webhook signing secret (signing is part of the measured delivery cost).
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The variables the generated configs read, set for every process started.
pub const ENV: [(&str, &str); 2] = [("MESHES_BENCH_SECRET", SECRET), ("MESHES_BENCH_WHSEC", WHSEC)];

/// One webhook connection.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Connection name.
    pub name: String,
    /// Where it delivers.
    pub url: String,
    /// Attempts in flight at once.
    pub concurrency: u32,
    /// `(failure_threshold, cooldown)` of its circuit breaker, if not the default.
    pub breaker: Option<(u32, &'static str)>,
}

impl Hook {
    /// A webhook to `url` with `concurrency` lanes and the default breaker.
    pub fn new(name: &str, url: &str, concurrency: u32) -> Hook {
        Hook { name: name.into(), url: url.into(), concurrency, breaker: None }
    }

    /// A webhook to a port nothing listens on, paused after its first
    /// failure for an hour: its deliveries stay pending, unattempted.
    pub fn parked(name: &str, port: u16, concurrency: u32) -> Hook {
        Hook {
            name: name.into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            concurrency,
            breaker: Some((1, "1h")),
        }
    }
}

/// One rule: `(id, event type, connection, when)`.
pub type RuleSpec = (String, String, String, Option<String>);

/// A complete config: workspace, keys, `hooks`, `rules`, and a retry `schedule`.
pub fn gateway(hooks: &[Hook], rules: &[RuleSpec], schedule: &str) -> String {
    let mut s = format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: bench\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: ${{MESHES_BENCH_SECRET}}\nconnections:\n"
    );
    for h in hooks {
        let _ = write!(
            s,
            "  {}:\n    type: webhook\n    url: {}\n    signing_secret: ${{MESHES_BENCH_WHSEC}}\n    delivery:\n      timeout: 5s\n      concurrency: {}\n",
            h.name, h.url, h.concurrency
        );
        if let Some((threshold, cooldown)) = h.breaker {
            let _ = writeln!(
                s,
                "      circuit_breaker: {{ failure_threshold: {threshold}, cooldown: {cooldown} }}"
            );
        }
    }
    s.push_str("rules:\n");
    for (id, event, conn, when) in rules {
        let _ = write!(
            s,
            "  - id: {id}\n    event: {event}\n    connection: {conn}\n    metadata: {{ action: send_webhook }}\n"
        );
        if let Some(w) = when {
            let _ = writeln!(s, "    when: \"{w}\"");
        }
    }
    let _ = write!(s, "delivery:\n  retry: {{ schedule: {schedule}, jitter: 0 }}\n");
    s
}

/// One rule routing `event` to `conn`.
pub fn rule(id: &str, event: &str, conn: &str) -> RuleSpec {
    (id.into(), event.into(), conn.into(), None)
}

/// `n` rules over 10 connections, one event type each (`bench.e<i>`);
/// every second rule has a CEL condition. The per-type rule count is the
/// same whatever `n`, so matching one event must cost the same.
pub fn many_rules(n: usize) -> String {
    let hooks: Vec<Hook> = (0..10)
        .map(|i| Hook::new(&format!("hook{i}"), &format!("http://127.0.0.1:9/h{i}"), 8))
        .collect();
    let rules: Vec<RuleSpec> = (0..n)
        .map(|i| {
            let when = (i % 2 == 1).then(|| format!("payload.amount > {}", i % 1000));
            (format!("r{i}"), format!("bench.e{i}"), format!("hook{}", i % 10), when)
        })
        .collect();
    gateway(&hooks, &rules, "[0s, 1m]")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(io(format!("write {}", p.display())))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::config::{CheckOptions, Source, check_sources};

    fn check(text: String) -> crate::config::Report {
        check_sources(&[Source { name: "bench.yaml".into(), text }], CheckOptions::default())
    }

    #[test]
    fn generated_configs_are_valid_and_warning_free() {
        let hooks = [Hook::new("r", "http://127.0.0.1:9/hook", 64), Hook::parked("p", 9, 8)];
        let rules = [rule("a", "bench.a", "r"), rule("b", "bench.b", "p")];
        for text in [gateway(&hooks, &rules, "[0s, 1h]"), many_rules(50)] {
            let report = check(text);
            let shown: Vec<String> = report.diagnostics.iter().map(ToString::to_string).collect();
            assert!(shown.is_empty(), "{shown:#?}");
            assert_eq!(report.configs.len(), 1);
        }
        let report = check(many_rules(50));
        let rules = &report.configs[0].1.rules;
        assert_eq!(rules.len(), 50);
        assert_eq!(rules.iter().filter(|r| r.when.is_some()).count(), 25);
    }
}
