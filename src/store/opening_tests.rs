//! Opening a store file that is not right: unfinished (set aside), empty
//! (logged), damaged or someone else's (a clear error, not a panic).

use super::tests::new_event;
use super::*;
use crate::delivery::observe::tests::Logs;

fn store_file(dir: &Path) -> std::path::PathBuf {
    dir.join("meshes.redb")
}

fn set_aside(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("meshes.redb.unfinished-"))
        .collect();
    out.sort();
    out
}

/// A first start killed while redb created the file leaves it with its
/// magic number (written last) still zeros: moved aside, not deleted, and
/// the store starts afresh.
#[tokio::test]
async fn a_file_killed_during_its_creation_is_set_aside_and_the_store_created_afresh() {
    let (_guard, logs) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut unfinished = vec![0u8; 73_728];
    unfinished[4096] = 7; // pages written, header not yet
    std::fs::write(store_file(dir.path()), &unfinished).unwrap();

    let store = Store::open(dir.path()).unwrap();
    let aside = set_aside(dir.path());
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), unfinished, "kept as it was");
    let now = 1_000;
    store.writer().ingest(vec![new_event("ws", "a", &[], now, None)], now).await.unwrap();
    store.close().await;
    let lines = logs.lines();
    let warned: Vec<_> = lines.iter().filter(|l| l.contains("was never finished")).collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
    assert!(warned[0].contains("WARN") && warned[0].contains(&*aside[0].to_string_lossy()));
}

#[tokio::test]
async fn an_empty_file_starts_an_empty_store_with_a_warning() {
    let (_guard, logs) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(store_file(dir.path()), b"").unwrap();
    Store::open(dir.path()).unwrap().close().await;
    assert!(set_aside(dir.path()).is_empty());
    let lines = logs.lines();
    assert!(
        lines.iter().any(|l| l.contains("WARN") && l.contains("store file is empty")),
        "{lines:#?}"
    );

    // A new data directory is not warned about.
    let (_guard, logs) = Logs::capture();
    let fresh = tempfile::tempdir().unwrap();
    Store::open(fresh.path()).unwrap().close().await;
    assert!(!logs.lines().iter().any(|l| l.contains("is empty")), "{:#?}", logs.lines());
}

/// A store that held events and lost its first block (a disk that zeroed
/// it) is damaged, not unfinished: refused and left as it is, never set
/// aside for an empty store.
#[tokio::test]
async fn a_store_whose_header_was_zeroed_is_damaged_not_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = 1_000;
    let events = (0..3).map(|_| new_event("ws", "a", &[("r1", "hook")], now, None)).collect();
    store.writer().ingest(events, now).await.unwrap();
    store.close().await;
    let file = store_file(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[..4096].fill(0);
    std::fs::write(&file, &bytes).unwrap();

    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("magic number mismatch"), "{err}");
    assert!(set_aside(dir.path()).is_empty());
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "left as it was");
}

/// Anything else that fails the magic check stays an error, left as it is.
#[test]
fn a_file_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(store_file(dir.path()), b"not a redb file at all").unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("magic number mismatch"), "{err}");
    assert!(err.contains("is not a store file, or its header is damaged"), "{err}");
    assert!(err.contains("restore a copy of the data directory taken while"), "{err}");
    assert!(set_aside(dir.path()).is_empty());
    assert_eq!(std::fs::read(store_file(dir.path())).unwrap(), b"not a redb file at all");
}

/// A damaged page makes redb panic while opening: the start fails saying
/// the file may be damaged, naming it and what to do.
#[tokio::test]
async fn a_damaged_page_fails_the_open_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let now = 1_000;
    let events = (0..50).map(|_| new_event("ws", "a", &[("r1", "hook")], now, None)).collect();
    store.writer().ingest(events, now).await.unwrap();
    store.close().await;
    let file = store_file(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4096..16_384].fill(0); // pages 1 to 3
    std::fs::write(&file, &bytes).unwrap();

    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("{} may be damaged", file.display())), "{err}");
    assert!(err.contains("move the file aside (do not delete it)"), "{err}");
    assert!(!err.contains("delete it to"), "{err}");
}

#[test]
fn a_corrupted_file_and_a_file_held_elsewhere_say_what_to_do() {
    let file = Path::new("/data/meshes.redb");
    let corrupted = redb::DatabaseError::Storage(redb::StorageError::Corrupted(
        "Failed to repair database. All roots are corrupted".into(),
    ));
    let said = opening::explain(&corrupted, file);
    assert!(said.contains("Failed to repair database. All roots are corrupted: "), "{said}");
    assert!(said.contains("/data/meshes.redb may be damaged; restore a copy"), "{said}");

    let dir = tempfile::tempdir().unwrap();
    let first = Store::open(dir.path()).unwrap();
    let err = Store::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is open in another process: another `meshes serve`"), "{err}");
    drop(first);
}

/// Pages damaged under a running store (no page cache, so reads go to
/// the file) make redb panic on reads: each read is a 503 saying the file
/// may be damaged and what to do, and the store reads again once the file
/// is whole.
#[tokio::test]
async fn a_read_of_a_damaged_page_says_so_rather_than_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(dir.path(), db::file_opener_with_cache(0)).unwrap();
    let now = 1_000;
    for _ in 0..4 {
        let events = (0..100).map(|_| new_event("ws", "a", &[("r1", "hook")], now, None)).collect();
        store.writer().ingest(events, now).await.unwrap();
    }
    let list = || store.list("ws", &ListFilter::default(), None, 500, &|_, _| false);
    let file = store_file(dir.path());
    let whole = std::fs::read(&file).unwrap();
    let mut damaged = whole.clone();
    damaged[7 * 4096..14 * 4096].fill(0);
    std::fs::write(&file, &damaged).unwrap();
    for _ in 0..2 {
        let err = list().unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let said = err.to_string();
        assert!(said.contains(&format!("store file {} may be damaged", file.display())), "{said}");
        assert!(said.contains("restore a copy of the data directory taken while"), "{said}");
    }
    std::fs::write(&file, &whole).unwrap();
    assert_eq!(list().unwrap().records.len(), 400);
    store.close().await;
}
