//! Crash loop: the real binary under concurrent single and bulk ingest is
//! SIGKILLed at random moments and restarted on the same data directory,
//! `MESHES_CRASH_CYCLES` times (default 3; see FAULTS.md for the long run).
//! Then: every acknowledged event is delivered at least once and ends
//! `completed`, redeliveries keep their `webhook-id`, and nothing arrives
//! that was never sent. Those two are checked once nothing is pending any
//! more, so the last restart's redeliveries are among what they see. A
//! client's request may fail only once its server has been killed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::api::auth::mint_jwt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

const CLIENTS: u64 = 4;

/// What the clients did, across all cycles.
#[derive(Default)]
struct Ledger {
    /// Every seq a request was started for (acknowledged or not).
    sent: HashSet<u64>,
    /// Acknowledged seqs and the event id the gateway gave each.
    acked: HashMap<u64, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkill_under_load_loses_no_acknowledged_event() {
    let cycles = env_num("MESHES_CRASH_CYCLES", 3);
    let mut rng = Rng::from_env("crash_loop");
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    let schedule = "[0s, 100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]";
    std::fs::write(config_path(dir.path()), webhook_config(&[("signup", &rx.url)], schedule))
        .unwrap();
    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let next_seq = Arc::new(AtomicU64::new(0));
    for cycle in 0..cycles {
        let mut server = Server::spawn(dir.path(), &[]);
        let killed = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let run = Run {
                    base: server.base.clone(),
                    rng: Rng::new(rng.next_u64()),
                    killed: killed.clone(),
                    ledger: ledger.clone(),
                    seqs: next_seq.clone(),
                };
                tokio::spawn(client(run, c))
            })
            .collect();
        // Let some load through, then kill at a random point of it.
        let acked_before = ledger.lock().unwrap().acked.len();
        eventually("the restarted gateway to acknowledge events", Duration::from_secs(20), || {
            std::future::ready((ledger.lock().unwrap().acked.len() > acked_before).then_some(()))
        })
        .await;
        let delay = rng.range(0, 700);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed.store(true, Ordering::SeqCst);
        server.kill();
        assert_no_panic(&server);
        for c in clients {
            c.await.unwrap();
        }
        let l = ledger.lock().unwrap();
        eprintln!(
            "cycle {cycle}: killed {delay} ms in; {} sent, {} acknowledged, {} received so far",
            l.sent.len(),
            l.acked.len(),
            rx.seen().len()
        );
    }
    let mut server = Server::spawn(dir.path(), &[]);
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eventually("every acknowledged event delivered", Duration::from_secs(60), || {
        let seen: HashSet<u64> = rx.seen().iter().map(seq_of).collect();
        std::future::ready(ledger.acked.keys().all(|s| seen.contains(s)).then_some(()))
    })
    .await;
    let delivery_ids = check_completed(&server.base, &ledger).await;
    wait_no_pending(&server.base).await;
    let webhook_ids = check_deliveries(&rx, &ledger);
    assert_no_panic(&server);
    // The `webhook-id` receivers deduplicate on is the delivery id the API shows.
    for (seq, event_id) in &ledger.acked {
        assert_eq!(
            webhook_ids[seq], delivery_ids[event_id],
            "seq {seq}: webhook-id != delivery_id"
        );
    }
    server.kill();
}

/// One client's share of a cycle.
struct Run {
    base: String,
    rng: Rng,
    /// Set just before the server is killed: only then may a request fail.
    killed: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    seqs: Arc<AtomicU64>,
}

/// Posts single events and bulks of 2–5 until the gateway is killed.
async fn client(run: Run, c: u64) {
    let Run { base, mut rng, killed, ledger, seqs } = run;
    let http = reqwest::Client::new();
    loop {
        let n = if rng.range(0, 3) == 0 { rng.range(2, 6) } else { 1 };
        let batch: Vec<u64> = (0..n).map(|_| seqs.fetch_add(1, Ordering::Relaxed)).collect();
        ledger.lock().unwrap().sent.extend(&batch);
        let event = |s: &u64| json!({"event": "user.signup", "payload": {"seq": s, "client": c}});
        let (path, body) = if n == 1 {
            ("events", event(&batch[0]))
        } else {
            ("events/bulk", Value::Array(batch.iter().map(event).collect()))
        };
        let sent = http
            .post(format!("{base}/api/v1/{path}"))
            .header("x-meshes-publishable-key", PK)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(_) if killed.load(Ordering::SeqCst) => return,
            Err(e) => panic!("a request failed while the server was up: {e}"),
        };
        let status = resp.status().as_u16();
        let text = match resp.text().await {
            Ok(text) => text,
            Err(_) if killed.load(Ordering::SeqCst) => return, // cut by the kill
            Err(e) => panic!("a {status} body could not be read while the server was up: {e}"),
        };
        assert!(status == 201 || status == 207, "unexpected status {status}: {text}");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("a {status} body is not JSON ({e}): {text}"));
        let ids: Vec<Option<String>> = if n == 1 {
            vec![body["event"]["id"].as_str().map(str::to_string)]
        } else {
            let records = body["records"].as_array().unwrap();
            records.iter().map(|r| r["event"]["id"].as_str().map(str::to_string)).collect()
        };
        let mut l = ledger.lock().unwrap();
        for (seq, id) in batch.iter().zip(ids) {
            if let Some(id) = id {
                l.acked.insert(*seq, id);
            }
        }
    }
}

/// Checks everything the receiver got, once nothing is pending; returns each
/// delivered seq's `webhook-id`.
fn check_deliveries(rx: &Receiver, ledger: &Ledger) -> HashMap<u64, String> {
    let acked: HashSet<u64> = ledger.acked.keys().copied().collect();
    let mut ids_by_seq: HashMap<u64, HashSet<String>> = HashMap::new();
    for s in rx.seen() {
        let seq = seq_of(&s);
        assert!(ledger.sent.contains(&seq), "seq {seq} was delivered but never sent");
        let id = s.headers["webhook-id"].to_str().unwrap().to_string();
        ids_by_seq.entry(seq).or_default().insert(id);
    }
    for (seq, ids) in &ids_by_seq {
        assert_eq!(ids.len(), 1, "seq {seq} was redelivered under another webhook-id: {ids:?}");
    }
    let unacked = ids_by_seq.len() - acked.len();
    eprintln!(
        "{} sent, {} acknowledged, {} delivered ({} committed but unacknowledged), {} requests",
        ledger.sent.len(),
        acked.len(),
        ids_by_seq.len(),
        unacked,
        rx.seen().len()
    );
    ids_by_seq.into_iter().map(|(seq, ids)| (seq, ids.into_iter().next().unwrap())).collect()
}

/// Every acknowledged event ends `completed` (read through the list API,
/// paged); returns each completed event's delivery id.
async fn check_completed(base: &str, ledger: &Ledger) -> HashMap<String, String> {
    let http = reqwest::Client::new();
    let want: HashSet<&str> = ledger.acked.values().map(String::as_str).collect();
    eventually("every acknowledged event completed", Duration::from_secs(30), || async {
        let mut completed: HashMap<String, String> = HashMap::new();
        let mut cursor = String::new();
        loop {
            let url = format!("{base}/api/v1/events?limit=200&status=completed&cursor={cursor}");
            let jwt = mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60);
            let page: Value =
                http.get(url).bearer_auth(jwt).send().await.ok()?.json().await.ok()?;
            for r in page["records"].as_array()? {
                let delivery = r["rule_events"][0]["delivery_id"].as_str()?.to_string();
                completed.insert(r["id"].as_str()?.to_string(), delivery);
            }
            match page["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = c.to_string(),
                _ => break,
            }
        }
        want.iter().all(|id| completed.contains_key(*id)).then_some(completed)
    })
    .await
}

fn seq_of(s: &Seen) -> u64 {
    serde_json::from_slice::<Value>(&s.body).unwrap()["payload"]["seq"].as_u64().unwrap()
}
