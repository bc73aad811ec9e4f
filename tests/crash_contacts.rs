//! Crash loop for automations: the real binary takes contact upserts (each
//! one tags the contact, notifies a webhook and enrols it in a two-step
//! sequence with a wait in between) and is SIGKILLed at random moments,
//! `MESHES_CRASH_CYCLES` times (default 3). Then: every acknowledged contact
//! exists with its tag, and each one's three deliveries (the notification and
//! both sequence steps) arrive, none missing, none under two delivery ids,
//! none for a contact never sent. The delivery checks run once nothing is
//! pending, so the last restart's redeliveries are among what they see. An
//! upsert may fail only once its server has been killed.

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

fn config(url: &str) -> String {
    let schedule = "[0s, 100ms, 200ms, 400ms, 1s, 1s, 1s, 1s, 1s, 1s]";
    let body = r"
automations:
  - id: welcome
    trigger: contact_created
    actions:
      - { add_tag: welcomed }
      - notify: { connection: mail, metadata: { action: send_webhook } }
      - { enroll: drip }
sequences:
  drip:
    steps:
      - { connection: mail, metadata: { action: send_webhook } }
      - { wait: 300ms }
      - { connection: mail, metadata: { action: send_webhook } }
";
    mail_config(url, schedule, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_contact_automations_loses_and_repeats_nothing() {
    let cycles = env_num("MESHES_CRASH_CYCLES", 3);
    let mut rng = Rng::from_env("crash_contacts");
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("conf")).unwrap();
    std::fs::write(config_path(dir.path()), config(&rx.url)).unwrap();
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let seq = Arc::new(AtomicU64::new(0));
    for cycle in 0..cycles {
        let mut server = Server::spawn(dir.path(), &[]);
        let before = acked.lock().unwrap().len();
        let killed = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (base, acked, seq) = (server.base.clone(), acked.clone(), seq.clone());
                tokio::spawn(client(base, acked, seq, killed.clone()))
            })
            .collect();
        eventually("upserts acknowledged", Duration::from_secs(20), || {
            std::future::ready((acked.lock().unwrap().len() > before).then_some(()))
        })
        .await;
        let delay = rng.range(0, 500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed.store(true, Ordering::SeqCst);
        server.kill();
        assert_no_panic(&server);
        for c in clients {
            c.await.unwrap();
        }
        eprintln!(
            "cycle {cycle}: killed {delay} ms in; {} acknowledged",
            acked.lock().unwrap().len()
        );
    }
    let server = Server::spawn(dir.path(), &[]);
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let sent = seq.load(Ordering::SeqCst);
    // Three deliveries per contact, the notification and the two steps: for
    // every acknowledged one, and for every committed one that got its first.
    eventually("three deliveries per contact", Duration::from_secs(60), || {
        let got = deliveries(&rx);
        let all_three = |e: &String| got.get(e).is_some_and(|d| d.len() >= 3);
        std::future::ready((acked.iter().all(all_three) && got.keys().all(all_three)).then_some(()))
    })
    .await;
    wait_no_pending(&server.base).await;
    let by_email = deliveries(&rx);
    for email in by_email.keys() {
        let n: u64 =
            email.trim_start_matches('c').trim_end_matches("@example.com").parse().unwrap();
        assert!(n < sent, "{email} was delivered but never sent");
    }
    for (email, kinds) in &by_email {
        let mut events: Vec<&str> = kinds.values().map(String::as_str).collect();
        events.sort_unstable();
        assert_eq!(
            events,
            ["contact.contact_created", "sequence.drip", "sequence.drip"],
            "{email}: one delivery id per step, none repeated under a new id"
        );
    }
    assert_no_panic(&server);
    let http = reqwest::Client::new();
    for email in &acked {
        let jwt = mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60);
        let url = format!("{}/api/v1/contacts/{email}", server.base);
        let c: Value = http.get(url).bearer_auth(jwt).send().await.unwrap().json().await.unwrap();
        assert_eq!(c["contact"]["tags"], json!(["welcomed"]), "{email}");
    }
    eprintln!(
        "{} contacts acknowledged, {} with deliveries, {} requests",
        acked.len(),
        by_email.len(),
        rx.seen().len()
    );
}

/// email → (webhook-id → event type): redeliveries share a webhook-id.
fn deliveries(rx: &Receiver) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    for s in rx.seen() {
        let body: Value = serde_json::from_slice(&s.body).unwrap();
        let email = body["payload"]["email"].as_str().unwrap().to_string();
        let id = s.headers["webhook-id"].to_str().unwrap().to_string();
        out.entry(email).or_default().insert(id, body["event"].as_str().unwrap().to_string());
    }
    out
}

/// Upserts new contacts until the gateway is killed.
async fn client(
    base: String,
    acked: Arc<Mutex<HashSet<String>>>,
    seq: Arc<AtomicU64>,
    killed: Arc<AtomicBool>,
) {
    let http = reqwest::Client::new();
    loop {
        let email = format!("c{}@example.com", seq.fetch_add(1, Ordering::Relaxed));
        let jwt = mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60);
        let sent = http
            .post(format!("{base}/api/v1/contacts/upsert"))
            .bearer_auth(jwt)
            .json(&json!({"email": email}))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(_) if killed.load(Ordering::SeqCst) => return,
            Err(e) => panic!("an upsert failed while the server was up: {e}"),
        };
        assert_eq!(resp.status().as_u16(), 201, "upsert of {email}");
        acked.lock().unwrap().insert(email);
    }
}
