//! A full disk: nothing is acknowledged while writes fail, nothing already
//! acknowledged is lost, and the store serves again once space returns.

use super::fault::DiskFull;
use super::tests::new_event;
use super::*;

async fn ingest_one(store: &Store, now: u64) -> Result<String, StoreError> {
    let ev = new_event("ws", "user.signup", &[("r1", "hook")], now, None);
    let out = store.writer().ingest(vec![ev], now).await?;
    Ok(out[0].event.id.clone())
}

#[tokio::test]
async fn full_disk_refuses_writes_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskFull::default();
    let store = Store::open_with(dir.path(), disk.opener()).unwrap();
    let before = ingest_one(&store, 1_000).await.unwrap();

    disk.set(true);
    for n in 0..3 {
        let err = ingest_one(&store, 2_000 + n).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    disk.set(false);
    // Reopening is throttled; the first writes after recovery may still be refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let after = loop {
        match ingest_one(&store, 3_000).await {
            Ok(id) => break id,
            Err(e) => assert!(std::time::Instant::now() < deadline, "never recovered: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // What was acknowledged survived; what was refused does not exist.
    for id in [&before, &after] {
        assert!(store.event(event_key(id).unwrap()).unwrap().is_some(), "{id} lost");
    }
    assert_eq!(store.due_len().unwrap(), 2, "only the two acknowledged deliveries are pending");
    store.close().await;
    // And it all is on disk for the next process.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.due_len().unwrap(), 2);
    store.close().await;
}
