//! A full disk: nothing is acknowledged while writes fail, nothing already
//! acknowledged is lost, and the store serves again once space returns.
//! A failing request is not a failing disk: it fails alone.

use super::fault::DiskFull;
use super::tests::new_event;
use super::*;
use std::sync::Arc;

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

/// A request that fails on its own (here a bad event id, and a job that
/// has written and then meets a record it cannot read) fails alone: the
/// rest of its batch commits and hears `Ok`, the failed ones wrote
/// nothing, and the file is not closed and reopened over it.
#[tokio::test]
async fn a_bad_request_fails_alone_and_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let opened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = opened.clone();
    let opener: db::Opener = Arc::new(move |path: &std::path::Path| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        db::file_opener()(path)
    });
    let store = Store::open_with(dir.path(), opener).unwrap();
    let w = store.writer().clone();
    // Hold the writer so that everything below lands in one batch, queued
    // in this order.
    let (started, running) = std::sync::mpsc::channel::<()>();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let hold = tokio::spawn({
        let w = w.clone();
        async move { w.run(move |_| Ok((started.send(()).ok(), held.recv().ok()))).await }
    });
    while running.try_recv().is_err() {
        tokio::task::yield_now().await;
    }
    let written =
        |t: &mut Tables<'_>, event: &str| t.insert_event(new_event("ws", event, &[], 5, None), 5);
    let ingest = |ev: NewEvent| {
        let w = w.clone();
        tokio::spawn(async move { w.ingest(vec![ev], 5).await })
    };
    let job = |f: TestJob| {
        let w = w.clone();
        tokio::spawn(async move { w.run(f).await })
    };
    let good = ingest(new_event("ws", "good", &[("r1", "hook")], 5, None));
    lined_up(&w, 1).await;
    let mut bad = new_event("ws", "bad", &[("r1", "hook")], 5, None);
    bad.record.id = "not-a-uuid".into();
    let bad = ingest(bad);
    lined_up(&w, 2).await;
    let spent = job(Box::new(move |t| written(t, "spent").map(drop)));
    lined_up(&w, 3).await;
    let failing = job(Box::new(move |t| {
        written(t, "half-done")?;
        Err(StoreError::Corrupt("a contact record".into()))
    }));
    lined_up(&w, 4).await;
    let later_job = job(Box::new(move |t| written(t, "job").map(drop)));
    lined_up(&w, 5).await;
    let good_too = ingest(new_event("ws", "good-too", &[("r1", "hook")], 5, None));
    lined_up(&w, 6).await;
    release.send(()).unwrap();
    hold.await.unwrap().unwrap();

    let ok = |r: Result<Vec<Ingested>, StoreError>| r.unwrap().remove(0).event.event;
    assert_eq!(ok(good.await.unwrap()), "good");
    assert_eq!(ok(good_too.await.unwrap()), "good-too");
    assert!(matches!(bad.await.unwrap(), Err(StoreError::Invalid(_))));
    assert!(matches!(failing.await.unwrap(), Err(StoreError::Corrupt(_))));
    // A job that ran in the aborted transaction cannot run twice: its
    // caller is told to try again, and nothing of it was written.
    assert!(matches!(spent.await.unwrap(), Err(StoreError::Unavailable(_))));
    assert!(later_job.await.unwrap().is_ok(), "a job queued after the failing one commits");
    let page = store.list("ws", &ListFilter::default(), None, 10, &|_, _| false).unwrap();
    let mut names: Vec<&str> = page.records.iter().map(|v| v.event.event.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["good", "good-too", "job"]);
    assert_eq!(store.due_len().unwrap(), 2, "the good events' deliveries, no others");
    assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), 1, "never reopened");
    assert!(store.db.writable());
    store.close().await;
}

type TestJob = Box<dyn FnOnce(&mut Tables<'_>) -> Result<(), StoreError> + Send>;

/// Waits until `n` requests are queued for the writer.
async fn lined_up(w: &writer::Handle, n: usize) {
    while w.queued() < n {
        tokio::task::yield_now().await;
    }
}

/// A panic on the writer thread (redb meeting a damaged page) is noticed
/// at once: the death is set and logged, `writable` names it, every later
/// write is refused, and what was acknowledged before is on disk.
#[tokio::test]
async fn a_panic_on_the_writer_thread_is_noticed_and_loses_nothing_acknowledged() {
    let (_guard, logs) = crate::delivery::observe::tests::Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskFull::default();
    let store = Store::open_with(dir.path(), disk.opener()).unwrap();
    let before = ingest_one(&store, 1_000).await.unwrap();
    assert!(!store.writer_death().is_dead());

    disk.panic_next_write();
    let err = ingest_one(&store, 2_000).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err:?}");
    let death = store.writer_death();
    let noticed = tokio::time::timeout(std::time::Duration::from_secs(10), death.wait());
    noticed.await.expect("the writer's death is noticed");
    let err = store.writable().await.unwrap_err().to_string();
    assert_eq!(err, format!("store unavailable: {}", death::WRITER_DIED));
    assert!(matches!(ingest_one(&store, 3_000).await, Err(StoreError::Closed)));
    let lines = logs.lines();
    let died: Vec<&String> =
        lines.iter().filter(|l| l.contains("the store writer thread panicked")).collect();
    assert_eq!(died.len(), 1, "{lines:#?}");
    assert!(died[0].contains("ERROR") && died[0].contains("exits 2"), "{}", died[0]);
    assert!(died[0].contains(&dir.path().join("meshes.redb").display().to_string()), "{}", died[0]);
    store.close().await;

    let store = Store::open(dir.path()).unwrap();
    assert!(store.event(event_key(&before).unwrap()).unwrap().is_some(), "{before} lost");
    assert_eq!(store.due_len().unwrap(), 1, "only the acknowledged delivery");
    store.close().await;
}
