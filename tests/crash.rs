//! Kill the real binary with SIGKILL under load, restart it on the same
//! data directory, and check that every acknowledged event is delivered.
//! (A longer, many-cycle version of this loop is the fault-test suite's job.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_event() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(
        config_path(dir.path()),
        webhook_config(
            &[("signup", &rx.url)],
            "[0s, 100ms, 200ms, 400ms, 800ms, 1s, 1s, 1s, 1s, 1s]",
        ),
    )
    .unwrap();
    let mut server = Server::spawn(dir.path(), &[]);
    let base = server.base.clone();
    let acked: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for worker in 0..8u64 {
        let (http, base, acked) = (http.clone(), base.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                let seq = worker * 1_000 + i;
                let sent = http
                    .post(format!("{base}/api/v1/events"))
                    .header("x-meshes-publishable-key", PK)
                    .json(&json!({"event": "user.signup", "payload": {"seq": seq}}))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        acked.lock().unwrap().insert(seq);
                    }
                    _ => return, // the server is gone
                }
            }
        }));
    }
    // Kill once a good number of events were acknowledged (bounded wait).
    eventually("150 acknowledged events", Duration::from_secs(20), || {
        std::future::ready((acked.lock().unwrap().len() >= 150).then_some(()))
    })
    .await;
    server.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let mut server = Server::spawn(dir.path(), &[]);
    // Every acknowledged event arrives (at least once), and nothing arrives that was never sent.
    let delivered =
        eventually("every acknowledged event delivered", Duration::from_secs(30), || {
            let seen: HashSet<u64> = rx.seen().iter().map(seq_of).collect();
            std::future::ready(acked.is_subset(&seen).then_some(seen))
        })
        .await;
    assert!(
        delivered.iter().all(|s| s % 1_000 < 100 && s / 1_000 < 8),
        "a delivery that was never sent"
    );
    // Duplicates (an attempt in flight at the kill) keep their delivery id.
    let mut ids_by_seq: std::collections::HashMap<u64, HashSet<String>> = Default::default();
    for s in rx.seen() {
        ids_by_seq
            .entry(seq_of(&s))
            .or_default()
            .insert(s.headers["webhook-id"].to_str().unwrap().to_string());
    }
    assert!(ids_by_seq.values().all(|ids| ids.len() == 1), "a redelivery changed its webhook-id");
    server.kill();
}

fn seq_of(s: &Seen) -> u64 {
    serde_json::from_slice::<Value>(&s.body).unwrap()["payload"]["seq"].as_u64().unwrap()
}
