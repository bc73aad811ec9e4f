#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use super::*;
use crate::bench::load::{self, test_spec as spec};
use tokio::time::Instant;

/// The log's records: a little-endian u32 length, then the body; a length
/// of 0 (a preallocated log's zeros) ends them.
fn records(mut log: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while log.len() >= 4 && log[..4] != [0; 4] {
        let (len, rest) = log.split_at(4);
        let (body, rest) = rest.split_at(u32::from_le_bytes(len.try_into().unwrap()) as usize);
        out.push(serde_json::from_slice(body).unwrap());
        log = rest;
    }
    out
}

/// `n` single-event POSTs of `bodies` to a durable ceiling writing `log`.
async fn load_durable(log: std::fs::File, bodies: &[bytes::Bytes], n: u64) -> load::LoadResult {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(durable_ceiling(listener, log));
    let r = load::run(spec(addr, bodies.to_vec(), n), Instant::now()).await;
    server.abort();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_ceiling_answers_201_once_each_body_is_in_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let bodies = load::event_bodies("e", 8);
    let r = load_durable(std::fs::File::create(&path).unwrap(), &bodies, 200).await;
    assert_eq!((r.ok, r.error_count()), (200, 0), "{}", r.errors_text());
    let logged = records(&std::fs::read(&path).unwrap());
    assert_eq!(logged.len(), 200);
    let sent: Vec<Value> = bodies.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert!(logged.iter().all(|v| sent.contains(v)), "a logged body was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preallocated_log_is_overwritten_in_place_and_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let ring = 4096;
    std::fs::write(&path, vec![0u8; ring]).unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let bodies = load::event_bodies("e", 8);
    let r = load_durable(file, &bodies, 200).await;
    assert_eq!((r.ok, r.error_count()), (200, 0), "{}", r.errors_text());
    let log = std::fs::read(&path).unwrap();
    assert_eq!(log.len(), ring, "the log never grows past its preallocated size");
    let sent: Vec<Value> = bodies.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    let logged = records(&log);
    let total: usize = bodies.iter().map(|b| b.len() + 4).sum::<usize>() * 200 / bodies.len();
    assert!(total > 2 * ring, "the bodies fill the ring more than twice");
    assert!(!logged.is_empty(), "the latest pass starts at offset 0");
    assert!(logged.iter().all(|v| sent.contains(v)), "a logged body was never sent");
}

#[test]
fn preallocate_writes_the_whole_ring_once() {
    let file = tempfile::tempfile().unwrap();
    preallocate(&file).unwrap();
    assert_eq!(file.metadata().unwrap().len(), LOG_RING);
}

#[tokio::test]
async fn the_durable_ceiling_answers_503_when_its_log_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, b"").unwrap();
    // Opened read-only: every append fails.
    let file = std::fs::File::open(&path).unwrap();
    let r = load_durable(file, &load::event_bodies("e", 2), 10).await;
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors.get("status 503"), Some(&10), "{}", r.errors_text());
}

/// Posts one delivery with `webhook-id: id`; returns the status.
async fn deliver(client: &reqwest::Client, base: &str, id: &str) -> u16 {
    let r = client.post(format!("{base}/hook")).header("webhook-id", id).body("{}");
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_receiver_refuses_first_attempts_once_and_counts_duplicates() {
    let client = reqwest::Client::new();
    for (fail_first, statuses, refused, duplicates) in
        [(100, [503, 200, 200], 1, 1), (0, [200, 200, 200], 0, 2)]
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(receiver(listener, fail_first));
        let id = uuid::Uuid::now_v7().to_string();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(deliver(&client, &base, &id).await);
        }
        assert_eq!(got, statuses, "fail_first {fail_first}");
        let stats: Value =
            client.get(format!("{base}/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(stats["refused"], refused);
        assert_eq!(stats["unique"], 1);
        assert_eq!(stats["duplicates"], duplicates);
        server.abort();
    }
}

#[test]
fn the_receiver_counts_ids_across_shards_and_windows_its_latency() {
    let state = ReceiverState::new(0);
    let body = format!(r#"{{"time_created":{}}}"#, crate::clock::now_ms());
    let ids: Vec<u128> = (0..1_000).map(|_| uuid::Uuid::now_v7().as_u128()).collect();
    for id in &ids {
        assert!(state.record(Some(*id), body.as_bytes()));
    }
    assert!(state.record(Some(ids[500]), body.as_bytes()), "a duplicate is accepted");
    let first = state.stats(true);
    assert_eq!((first["unique"].as_u64(), first["duplicates"].as_u64()), (Some(1_000), Some(1)));
    assert_eq!(first["latency_ms"]["count"], 1_001);
    assert_eq!(first["window_latency_ms"]["count"], 1_001);

    state.record(Some(uuid::Uuid::now_v7().as_u128()), body.as_bytes());
    let second = state.stats(true);
    assert_eq!(second["latency_ms"]["count"], 1_002, "the whole run");
    assert_eq!(second["window_latency_ms"]["count"], 1, "since the last window");
    state.record(Some(uuid::Uuid::now_v7().as_u128()), body.as_bytes());
    assert!(state.stats(false).get("window_latency_ms").is_none());
    assert_eq!(state.stats(true)["window_latency_ms"]["count"], 1, "a plain read keeps the window");
}
