//! Crash loop for automations: the real binary takes contact upserts (each
//! one tags the contact, notifies a webhook and enrols it in a two-step
//! sequence with a wait in between) and is SIGKILLed at random moments,
//! `MESHES_CRASH_CYCLES` times (default 3). Then: every acknowledged contact
//! exists with its tag, and each one's three deliveries (the notification and
//! both sequence steps) arrive, none missing, none under two delivery ids.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::api::auth::mint_jwt;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(client(server.base.clone(), acked.clone(), seq.clone())))
            .collect();
        eventually("upserts acknowledged", Duration::from_secs(20), || {
            std::future::ready((acked.lock().unwrap().len() > before).then_some(()))
        })
        .await;
        let delay = rng.range(0, 500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
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
    // Three deliveries per contact: the notification and the two steps.
    let by_email =
        eventually("three deliveries per acknowledged contact", Duration::from_secs(60), || {
            let got = deliveries(&rx);
            std::future::ready(
                acked.iter().all(|e| got.get(e).is_some_and(|d| d.len() >= 3)).then_some(got),
            )
        })
        .await;
    for email in &acked {
        let kinds = &by_email[email];
        let mut events: Vec<&str> = kinds.values().map(String::as_str).collect();
        events.sort_unstable();
        assert_eq!(
            events,
            ["contact.contact_created", "sequence.drip", "sequence.drip"],
            "{email}: one delivery id per step, none repeated under a new id"
        );
    }
    let http = reqwest::Client::new();
    for email in acked.iter().take(20) {
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

/// Upserts new contacts until the gateway goes away.
async fn client(base: String, acked: Arc<Mutex<HashSet<String>>>, seq: Arc<AtomicU64>) {
    let http = reqwest::Client::new();
    loop {
        let email = format!("c{}@example.com", seq.fetch_add(1, Ordering::Relaxed));
        let jwt = mint_jwt(AK, SECRET.as_bytes(), now_secs(), 60);
        let sent = http
            .post(format!("{base}/api/v1/contacts/upsert"))
            .bearer_auth(jwt)
            .json(&json!({"email": email}))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let Ok(resp) = sent else { return };
        if resp.status().as_u16() != 201 {
            return;
        }
        acked.lock().unwrap().insert(email);
    }
}
