//! The watcher against real files in a temporary directory, and SIGHUP.

use super::*;
use std::fs;
use std::path::Path;

const DEBOUNCE: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(5);

async fn next(rx: &mut mpsc::Receiver<Trigger>) -> Trigger {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no trigger within 5 s")
        .expect("channel closed")
}

/// A bounded negative check: no trigger within the debounce window plus
/// a generous margin. It cannot prove "never", only "not promptly".
async fn assert_quiet(rx: &mut mpsc::Receiver<Trigger>, why: &str) {
    let got = tokio::time::timeout(DEBOUNCE * 6, rx.recv()).await;
    assert!(got.is_err(), "{why}: {got:?}");
}

/// Receives triggers until one names `path` (other changes may come first).
async fn until(rx: &mut mpsc::Receiver<Trigger>, path: &Path) {
    loop {
        match next(rx).await {
            Trigger::FileChanged(paths) if paths.iter().any(|p| p == path) => return,
            _ => {}
        }
    }
}

/// A temporary directory holding `meshes.yaml` (canonical path).
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = fs::canonicalize(dir.path()).unwrap().join("meshes.yaml");
    fs::write(&file, "version: 1\n").unwrap();
    (dir, file)
}

fn watch(path: &Path) -> (ConfigWatcher, mpsc::Receiver<Trigger>) {
    ConfigWatcher::start(&[path.to_path_buf()], DEBOUNCE).unwrap()
}

#[tokio::test]
async fn writing_in_place_triggers_once() {
    let (_dir, file) = setup();
    let (_w, mut rx) = watch(&file);
    fs::write(&file, "version: 1\n# edit\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file.clone()]));
    assert_quiet(&mut rx, "one write produced a second trigger").await;
}

#[tokio::test]
async fn rename_over_save_triggers() {
    let (_dir, file) = setup();
    let (_w, mut rx) = watch(&file);
    let tmp = file.with_extension("yaml.tmp");
    fs::write(&tmp, "version: 1\n# saved\n").unwrap();
    fs::rename(&tmp, &file).unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
}

/// git-sync's layout: the config is read through `current`, a link to one
/// checkout, and a new revision is published by swapping the link.
#[tokio::test]
async fn a_swapped_directory_link_triggers_and_the_new_target_is_watched() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    for rev in ["rev1", "rev2"] {
        fs::create_dir(d.join(rev)).unwrap();
        fs::write(d.join(rev).join("meshes.yaml"), "version: 1\n").unwrap();
    }
    std::os::unix::fs::symlink("rev1", d.join("current")).unwrap();
    let (_w, mut rx) = watch(&d.join("current/meshes.yaml"));
    std::os::unix::fs::symlink("rev2", d.join("current.tmp")).unwrap();
    fs::rename(d.join("current.tmp"), d.join("current")).unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("current")]));
    // The watch followed the link: an edit in the new checkout is seen...
    fs::write(d.join("rev2/meshes.yaml"), "version: 1\n# edit\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("rev2/meshes.yaml")]));
    // ...and the old checkout no longer matters.
    fs::write(d.join("rev1/meshes.yaml"), "version: 1\n# stale\n").unwrap();
    assert_quiet(&mut rx, "an edit in the checkout no longer linked").await;
}

/// The same for a config directory given through a link.
#[tokio::test]
async fn a_config_directory_given_through_a_link_follows_its_swap() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    for rev in ["a", "b"] {
        fs::create_dir(d.join(rev)).unwrap();
    }
    std::os::unix::fs::symlink("a", d.join("live")).unwrap();
    let (_w, mut rx) = watch(&d.join("live"));
    std::os::unix::fs::symlink("b", d.join("live.tmp")).unwrap();
    fs::rename(d.join("live.tmp"), d.join("live")).unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("live")]));
    fs::write(d.join("b/team.yaml"), "version: 1\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("b/team.yaml")]));
}

#[tokio::test]
async fn configmap_symlink_swap_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    fs::create_dir(d.join("..2024_a")).unwrap();
    fs::write(d.join("..2024_a/meshes.yaml"), "version: 1\n").unwrap();
    std::os::unix::fs::symlink("..2024_a", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/meshes.yaml", d.join("meshes.yaml")).unwrap();
    let (_w, mut rx) = watch(&d.join("meshes.yaml"));
    fs::create_dir(d.join("..2024_b")).unwrap();
    fs::write(d.join("..2024_b/meshes.yaml"), "version: 1\n# new\n").unwrap();
    std::os::unix::fs::symlink("..2024_b", d.join("..data_tmp")).unwrap();
    fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("..data")]));
    assert_eq!(fs::read_to_string(d.join("meshes.yaml")).unwrap(), "version: 1\n# new\n");
}

#[tokio::test]
async fn unrelated_files_do_not_trigger() {
    let (dir, file) = setup();
    let (_w, mut rx) = watch(&file);
    fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    fs::write(dir.path().join("other.yaml"), "not ours").unwrap();
    assert_quiet(&mut rx, "an unrelated file triggered a reload").await;
    // The watcher is alive, so the quiet above meant something.
    fs::write(&file, "version: 1\n# edit\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
}

#[tokio::test]
async fn reading_the_config_does_not_trigger() {
    let (_dir, file) = setup();
    let (_w, mut rx) = watch(&file);
    // What the reload does: a trigger here would loop forever.
    assert_eq!(fs::read_to_string(&file).unwrap(), "version: 1\n");
    assert_quiet(&mut rx, "reading the config triggered a reload").await;
    fs::write(&file, "version: 1\n# edit\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
}

#[tokio::test]
async fn a_burst_of_writes_yields_one_trigger() {
    let (_dir, file) = setup();
    let (_w, mut rx) = watch(&file);
    for i in 0..5 {
        fs::write(&file, format!("version: 1\n# {i}\n")).unwrap();
    }
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
    assert_quiet(&mut rx, "a burst produced more than one trigger").await;
}

#[tokio::test]
async fn a_burst_longer_than_a_tick_yields_one_trigger() {
    // A longer window than the other tests: the gaps below are real
    // sleeps, and on a loaded CI machine a 30 ms sleep once took over
    // 100 ms, which rightly split the burst.
    const WINDOW: Duration = Duration::from_millis(400);
    let (_dir, file) = setup();
    let (_w, mut rx) = ConfigWatcher::start(std::slice::from_ref(&file), WINDOW).unwrap();
    // Gaps under the window but over the debouncer's tick (window / 4),
    // which notify-debouncer-full alone reports as several batches.
    let mut last = std::time::Instant::now();
    let mut stalls = 0;
    for i in 0..5 {
        fs::write(&file, format!("version: 1\n# {i}\n")).unwrap();
        // A gap the machine stretched past the window may split the burst.
        stalls += usize::from(i > 0 && last.elapsed() >= WINDOW);
        last = std::time::Instant::now();
        tokio::time::sleep(WINDOW * 3 / 10).await;
    }
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![file]));
    let mut extra = 0;
    while let Ok(Some(_)) = tokio::time::timeout(WINDOW * 3, rx.recv()).await {
        extra += 1;
    }
    assert!(
        extra <= stalls,
        "a spread-out burst produced {} triggers ({stalls} gaps over the window)",
        extra + 1
    );
}

#[tokio::test]
async fn yaml_files_in_a_config_directory_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    let (_w, mut rx) = watch(&d);
    fs::write(d.join("README.md"), "not config").unwrap();
    assert_quiet(&mut rx, "a non-YAML file in a config directory triggered").await;
    fs::write(d.join("extra.yml"), "version: 1\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("extra.yml")]));
}

#[tokio::test]
async fn a_missing_directory_is_an_error() {
    let err =
        ConfigWatcher::start(&[PathBuf::from("/nonexistent-meshes-dir/meshes.yaml")], DEBOUNCE)
            .unwrap_err();
    assert!(matches!(err, WatchError::Path { .. }), "{err}");
}

#[tokio::test]
async fn sighup_is_forwarded() {
    let (tx, mut rx) = mpsc::channel(1);
    // Installs tokio's handler first: the signal no longer terminates us.
    let hup = listen_sighup().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Received before anything forwards it: remembered, not lost.
    let _task = forward_sighup(hup, tx);
    assert_eq!(next(&mut rx).await, Trigger::Signal);
}

/// `-c rc` where `rc` is deleted and made again: the new directory is
/// watched, so later edits in it still reload.
#[tokio::test]
async fn a_config_directory_made_again_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    let rc = fs::canonicalize(dir.path()).unwrap().join("rc");
    fs::create_dir(&rc).unwrap();
    fs::write(rc.join("a.yaml"), "version: 1\n").unwrap();
    let (_w, mut rx) = watch(&rc);
    fs::remove_dir_all(&rc).unwrap();
    fs::create_dir(&rc).unwrap();
    fs::write(rc.join("a.yaml"), "version: 1\n# new\n").unwrap();
    assert!(matches!(next(&mut rx).await, Trigger::FileChanged(_)));
    fs::write(rc.join("b.yaml"), "version: 1\n").unwrap();
    until(&mut rx, &rc.join("b.yaml")).await;
}

/// `mv sw sw.old; mv sw.new sw`: the new directory is watched, the old one
/// no longer is.
#[tokio::test]
async fn a_config_directory_swapped_by_rename_is_watched_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    for name in ["sw", "sw.new"] {
        fs::create_dir(d.join(name)).unwrap();
        fs::write(d.join(name).join("a.yaml"), "version: 1\n").unwrap();
    }
    let (_w, mut rx) = watch(&d.join("sw"));
    fs::rename(d.join("sw"), d.join("sw.old")).unwrap();
    fs::rename(d.join("sw.new"), d.join("sw")).unwrap();
    until(&mut rx, &d.join("sw")).await;
    fs::write(d.join("sw/b.yaml"), "version: 1\n").unwrap();
    until(&mut rx, &d.join("sw/b.yaml")).await;
    fs::write(d.join("sw.old/c.yaml"), "version: 1\n").unwrap();
    assert_quiet(&mut rx, "an edit in the directory swapped out").await;
}

/// `-c rel/current/`: the trailing slash must not hide that `current` is
/// a link, or its swap is never seen.
#[tokio::test]
async fn a_trailing_slash_does_not_hide_a_directory_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    for rev in ["r1", "r2"] {
        fs::create_dir(d.join(rev)).unwrap();
    }
    std::os::unix::fs::symlink("r1", d.join("current")).unwrap();
    let (_w, mut rx) = watch(Path::new(&format!("{}/", d.join("current").display())));
    std::os::unix::fs::symlink("r2", d.join("tmp")).unwrap();
    fs::rename(d.join("tmp"), d.join("current")).unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![d.join("current")]));
    fs::write(d.join("r2/team.yaml"), "version: 1\n").unwrap();
    until(&mut rx, &d.join("r2/team.yaml")).await;
}

/// `etc/meshes.yaml -> ../opt/meshes.yaml`: editing the target reloads,
/// in place or by rename (`sed -i`).
#[tokio::test]
async fn editing_the_target_of_a_linked_config_file_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    for sub in ["etc", "opt"] {
        fs::create_dir(d.join(sub)).unwrap();
    }
    let target = d.join("opt/meshes.yaml");
    fs::write(&target, "version: 1\n").unwrap();
    std::os::unix::fs::symlink("../opt/meshes.yaml", d.join("etc/meshes.yaml")).unwrap();
    let (_w, mut rx) = watch(&d.join("etc/meshes.yaml"));
    fs::write(&target, "version: 1\n# edit\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![target.clone()]));
    fs::write(d.join("opt/sedAbc123"), "version: 1\n# sed\n").unwrap();
    fs::rename(d.join("opt/sedAbc123"), &target).unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![target]));
}

/// A linked file in a config directory: its target's edits are seen too.
#[tokio::test]
async fn editing_the_target_of_a_link_in_a_config_directory_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let d = fs::canonicalize(dir.path()).unwrap();
    for sub in ["cdir", "tgt"] {
        fs::create_dir(d.join(sub)).unwrap();
    }
    let target = d.join("tgt/prod.yaml");
    fs::write(&target, "version: 1\n").unwrap();
    std::os::unix::fs::symlink("../tgt/prod.yaml", d.join("cdir/prod.yaml")).unwrap();
    let (_w, mut rx) = watch(&d.join("cdir"));
    fs::write(&target, "version: 1\n# edit\n").unwrap();
    assert_eq!(next(&mut rx).await, Trigger::FileChanged(vec![target]));
    // Its directory moved away: the link dangles, which the reload reports.
    fs::rename(d.join("tgt"), d.join("tgt.moving")).unwrap();
    until(&mut rx, &d.join("tgt")).await;
}

#[tokio::test(start_paused = true)]
async fn changes_that_never_stop_still_reload_once_the_burst_is_long() {
    let (raw_tx, raw_rx) = mpsc::unbounded_channel();
    let (tx, mut rx) = mpsc::channel(1);
    let quiet = Duration::from_millis(250);
    tokio::spawn(coalesce(raw_rx, tx, quiet, std::sync::Weak::new()));
    let path = PathBuf::from("/etc/meshes/meshes.yaml");
    // A write every 150 ms, for longer than the burst may last.
    for _ in 0..(BURST_QUIETS * 2) {
        raw_tx.send(Batch::from([path.clone()])).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        if rx.try_recv().is_ok() {
            return;
        }
    }
    panic!("no reload while the file kept changing");
}
