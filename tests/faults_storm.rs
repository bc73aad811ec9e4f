//! Config storms: hundreds of hot reloads (valid edits, invalid YAML, bad
//! references, bad CEL, unknown fields; alone or in quick bursts that the
//! watcher coalesces) while events arrive continuously. No acknowledged event
//! may be lost, the last valid config must be the one serving, and `/readyz`
//! must describe the last write. `MESHES_STORM_ROUNDS` sets the length
//! (default 150 rounds, about 300 writes).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A valid config: `keep-rule` always delivers `user.signup` to `keep`;
/// `vary-rule` delivers only `payload.tag == "t{modulo}"`; `extras` unrelated
/// rules come and go; `marker` makes every write's hash unique.
fn valid(keep: &str, vary: &str, modulo: u64, extras: u64, marker: u64) -> String {
    let mut s = format!(
        "version: 1\nworkspace:\n  id: {WS}\n  name: test\n  publishable_key: {PK}\nmachine_keys:\n  - access_key: {AK}\n    secret: {SECRET}\nconnections:\n  keep: {{ type: webhook, url: '{keep}' }}\n  vary: {{ type: webhook, url: '{vary}' }}\nrules:\n  - id: keep-rule\n    event: user.signup\n    connection: keep\n    metadata: {{ action: send_webhook }}\n  - id: vary-rule\n    event: user.signup\n    connection: vary\n    when: 'payload.tag == \"t{modulo}\"'\n    description: write {marker}\n    metadata: {{ action: send_webhook }}\n"
    );
    for i in 0..extras {
        s += &format!(
            "  - id: extra-{i}\n    event: user.other{i}\n    connection: vary\n    metadata: {{ action: send_webhook }}\n"
        );
    }
    s + "delivery:\n  retry: { schedule: [0s, 100ms, 200ms, 500ms, 1s, 1s, 1s, 1s], jitter: 0 }\n"
}

/// An invalid variant of `base`, and a string its rejection must mention.
fn invalid(base: &str, kind: u64, marker: u64) -> (String, String) {
    match kind % 4 {
        0 => {
            // YAML syntax error on a line whose number identifies this write.
            let pad = "# padding\n".repeat(marker as usize % 500);
            let line = marker % 500 + 2;
            (format!("{pad}version: 1\nworkspace: [broken\n"), format!("meshes.yaml:{line}:"))
        }
        1 => (
            base.replace(
                "connection: vary\n    when",
                &format!("connection: nope-{marker}\n    when"),
            ),
            format!("nope-{marker}"),
        ),
        2 => (
            base.replace("payload.tag ==", &format!("payload.tag >>> {marker} ==")),
            format!(">>> {marker}"),
        ),
        _ => (
            base.replace(
                "    event: user.signup\n    connection: keep",
                &format!("    event: user.signup\n    bogus_{marker}: 1\n    connection: keep"),
            ),
            format!("bogus_{marker}"),
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_storm_under_load_loses_nothing_and_keeps_the_last_good_config() {
    let rounds = env_num("MESHES_STORM_ROUNDS", 150);
    let mut rng = Rng::from_env("faults_storm");
    let (keep, vary) = (Receiver::start().await, Receiver::start().await);
    let first = valid(&keep.url, &vary.url, 0, 0, 0);
    let gw =
        Arc::new(TestGateway::start_with(&first, |o| o.debounce = Duration::from_millis(10)).await);
    let path = config_path(gw.dir.path());
    let acked: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let load = tokio::spawn(load(gw.clone(), acked.clone(), stop.clone()));

    let mut storm = Storm {
        gw: &gw,
        urls: (keep.url.clone(), vary.url.clone()),
        serving: config_hash(&path, &first),
        writes: 0,
        marker: 0,
        rejected: 0,
    };
    for _ in 0..rounds {
        storm.round(&mut rng).await;
    }
    let Storm { writes, mut marker, rejected, .. } = storm;
    // The last write: a valid config, then an invalid edit of it.
    marker += 1;
    let last_good = valid(&keep.url, &vary.url, 3, 1, marker);
    gw.write_config(&last_good);
    let good_hash = wait_applied(&gw, &config_hash(&path, &last_good)).await;
    let (bad, says) = invalid(&last_good, 1, marker + 1);
    gw.write_config(&bad);
    assert_eq!(wait_rejected(&gw, &says, std::slice::from_ref(&good_hash)).await, good_hash);
    stop.cancel();
    load.await.unwrap();
    let ready = gw.readyz().await;
    eprintln!(
        "{rounds} rounds, {writes} writes ({rejected} rounds ending invalid), config version {}, {} events",
        ready["config"]["version"],
        acked.lock().unwrap().len()
    );
    check_behaviour(&gw, &vary).await;
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    check_all_completed(&gw, &keep, &acked).await;
}

/// The writer side of the storm.
struct Storm<'a> {
    gw: &'a TestGateway,
    /// The `keep` and `vary` receivers' URLs.
    urls: (String, String),
    /// The hash of the config in force.
    serving: String,
    writes: u64,
    marker: u64,
    rejected: u64,
}

impl Storm<'_> {
    /// A burst of 1–3 writes, a few ms apart (some coalesce in the watcher),
    /// then a wait until the gateway reflects the burst's last write.
    async fn round(&mut self, rng: &mut Rng) {
        let path = config_path(self.gw.dir.path());
        let mut candidates = vec![self.serving.clone()];
        let mut last: Option<String> = None; // what the last invalid write must say
        let mut base = String::new();
        for _ in 0..rng.range(1, 4) {
            self.marker += 1;
            base = valid(&self.urls.0, &self.urls.1, rng.range(0, 7), rng.range(0, 4), self.marker);
            if rng.range(0, 100) < 40 {
                let (text, says) = invalid(&base, rng.next_u64(), self.marker);
                self.gw.write_config(&text);
                last = Some(says);
            } else {
                self.gw.write_config(&base);
                candidates.push(config_hash(&path, &base));
                last = None;
            }
            self.writes += 1;
            tokio::time::sleep(Duration::from_millis(rng.range(0, 25))).await;
        }
        self.serving = match last {
            None => wait_applied(self.gw, &config_hash(&path, &base)).await,
            Some(says) => {
                self.rejected += 1;
                wait_rejected(self.gw, &says, &candidates).await
            }
        };
    }
}

/// Posts `user.signup` events (n = 0, 1, 2, …) until `stop`.
async fn load(
    gw: Arc<TestGateway>,
    acked: Arc<Mutex<Vec<(u64, String)>>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut n = 0u64;
    while !stop.is_cancelled() {
        let (status, body) = gw
            .post_event(
                json!({"event": "user.signup", "payload": {"n": n, "tag": format!("t{}", n % 7)}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        acked.lock().unwrap().push((n, body["event"]["id"].as_str().unwrap().to_string()));
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `hash` serves with no reload error; returns it.
async fn wait_applied(gw: &TestGateway, hash: &str) -> String {
    eventually(&format!("config {hash} to be applied"), Duration::from_secs(10), || async {
        let r = gw.readyz().await;
        (r["config"]["hash"] == hash && r["last_reload_error"].is_null()).then(|| hash.to_string())
    })
    .await
}

/// Waits until the last reload error mentions `says`; the config serving
/// must be one of `candidates` (a valid write of the same burst may or may
/// not have been applied before it). Returns the hash serving.
async fn wait_rejected(gw: &TestGateway, says: &str, candidates: &[String]) -> String {
    let r = eventually(
        &format!("a reload error mentioning {says}"),
        Duration::from_secs(10),
        || async {
            let r = gw.readyz().await;
            r["last_reload_error"]["errors"].to_string().contains(says).then_some(r)
        },
    )
    .await;
    let hash = r["config"]["hash"].as_str().unwrap().to_string();
    assert!(
        candidates.contains(&hash),
        "after a rejected write, {hash} serves: not a config written before it"
    );
    hash
}

/// The last good config routes: `vary-rule` matches only tag `t3`, and
/// the `extra-0` rule it added is served by the API.
async fn check_behaviour(gw: &TestGateway, vary: &Receiver) {
    // Numbers the load task never reaches.
    for (n, tag, rules) in [(1_000_002u64, "t3", 2), (1_000_004, "t5", 1)] {
        let event = json!({"event": "user.signup", "payload": {"n": n, "tag": tag}});
        let (status, body) = gw.post_event(event).await;
        assert_eq!(status, 201);
        let id = body["event"]["id"].as_str().unwrap();
        let detail = gw.wait_status(id, "completed").await;
        assert_eq!(detail["total_rules"], rules, "n = {n} under the last good config: {detail}");
    }
    let seen: Vec<u64> = vary.seen().iter().map(seq_of).collect();
    assert!(
        seen.contains(&1_000_002) && !seen.contains(&1_000_004),
        "vary got {:?}",
        &seen[seen.len().saturating_sub(5)..]
    );
    assert_eq!(gw.get("/api/v1/rules/extra-0").await.0, 200);
    assert_eq!(gw.get("/api/v1/rules/extra-1").await.0, 404);
}

/// Every acknowledged event reached `keep`, and every event ends `completed`.
async fn check_all_completed(gw: &TestGateway, keep: &Receiver, acked: &[(u64, String)]) {
    let want: HashSet<u64> = acked.iter().map(|(n, _)| *n).collect();
    eventually("every acknowledged event delivered to keep", Duration::from_secs(30), || {
        let seen: HashSet<u64> = keep.seen().iter().map(seq_of).collect();
        std::future::ready(want.is_subset(&seen).then_some(()))
    })
    .await;
    let ids: HashSet<&str> = acked.iter().map(|(_, id)| id.as_str()).collect();
    eventually("every acknowledged event completed", Duration::from_secs(30), || async {
        let (mut done, mut cursor) = (HashSet::new(), String::new());
        loop {
            let (_, page) =
                gw.get(&format!("/api/v1/events?limit=200&status=completed&cursor={cursor}")).await;
            for r in page["records"].as_array()? {
                done.insert(r["id"].as_str()?.to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = c.to_string(),
                _ => break,
            }
        }
        ids.iter().all(|id| done.contains(*id)).then_some(())
    })
    .await;
}

fn seq_of(s: &Seen) -> u64 {
    serde_json::from_slice::<Value>(&s.body).unwrap()["payload"]["n"].as_u64().unwrap()
}

/// Reverting a rejected edit (the file is again byte-for-byte the config in
/// force) must clear `last_reload_error`: `/readyz` describes the last write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverting_a_rejected_edit_clears_the_reload_error() {
    let keep = Receiver::start().await;
    let good = valid(&keep.url, &keep.url, 1, 0, 1);
    let gw = TestGateway::start_with(&good, |o| o.debounce = Duration::from_millis(10)).await;
    let hash = config_hash(&config_path(gw.dir.path()), &good);
    let (bad, says) = invalid(&good, 1, 2);
    gw.write_config(&bad);
    wait_rejected(&gw, &says, std::slice::from_ref(&hash)).await;
    gw.write_config(&good);
    wait_applied(&gw, &hash).await;
}

/// `meshes serve --no-watch` documents that SIGHUP still reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_without_the_watcher() {
    let keep = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    let path = config_path(dir.path());
    std::fs::write(&path, valid(&keep.url, &keep.url, 1, 0, 1)).unwrap();
    let mut server = Server::spawn(dir.path(), &[]);
    let next = valid(&keep.url, &keep.url, 2, 1, 2);
    std::fs::write(&path, &next).unwrap();
    server.sighup();
    let http = reqwest::Client::new();
    let hash = config_hash(&path, &next);
    eventually("SIGHUP to apply the new config", Duration::from_secs(10), || async {
        let r: Value =
            http.get(format!("{}/readyz", server.base)).send().await.ok()?.json().await.ok()?;
        (r["config"]["hash"] == hash.as_str()).then_some(())
    })
    .await;
    assert!(server.child.try_wait().unwrap().is_none(), "SIGHUP killed the server");
    server.kill();
}
