//! The reload cleanup: each page decided under the config in force, a
//! decision dropped if the config changed before the writer applied it,
//! moves to a rule's new connection, the whole index paged through, and
//! store errors retried with a backoff (tokio's paused clock). A config
//! cancels nothing in its grace ([`CANCEL_GRACE`]): tests that cancel
//! advance the paused clock past it once the config is in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::delivery::engine::Engine;
use crate::delivery::route::CANCEL_GRACE;
use crate::gateway::runtime;
use crate::store::tests::new_event;
use crate::store::{NewEvent, Status, Store};
use arc_swap::ArcSwap;

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

/// Log connections `conns` and rules `(id, event, connection)`.
fn config(conns: &[&str], rules: &[(&str, &str, &str)]) -> Arc<Runtime> {
    let conns: String = conns.iter().map(|c| format!("  {c}: {{ type: log }}\n")).collect();
    let rules: String = rules
        .iter()
        .map(|(id, ev, c)| {
            format!(
                "  - {{ id: {id}, event: {ev}, connection: {c}, metadata: {{ action: log }} }}\n"
            )
        })
        .collect();
    let rules = if rules.is_empty() { " []\n".to_string() } else { format!("\n{rules}") };
    Arc::new(runtime::from_text(format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n{conns}rules:{rules}"
    )))
}

/// `n` events, each with one delivery of `rule` on `conn` due at `due`.
fn events(rule: &str, conn: &str, due: u64, n: usize) -> Vec<NewEvent> {
    (0..n).map(|_| new_event(WS, "a", &[(rule, conn)], due, None)).collect()
}

fn setup_with(store: Store, rt: Arc<Runtime>) -> Arc<Shared> {
    Engine::new(store, Arc::new(ArcSwap::new(rt))).shared()
}

fn setup(rt: Arc<Runtime>) -> (tempfile::TempDir, Store, Arc<Shared>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store.clone(), setup_with(store, rt))
}

/// Every due entry, in index order.
fn due(store: &Store) -> Vec<DueKey> {
    store.due_page(None, usize::MAX).unwrap()
}

fn count(store: &Store, rule: &str) -> usize {
    due(store).iter().filter(|k| k.rule == rule).count()
}

/// The audit's interleaving, driven page by page: rule-r removed (v2),
/// then rule-n added on the same connection (v3) while the pass is under
/// way. The pass used to decide every page under v2 and cancel rule-n's
/// deliveries although v3 is in force.
#[tokio::test(start_paused = true)]
async fn each_page_is_decided_under_the_config_in_force_when_it_is_read() {
    let (_dir, store, shared) = setup(config(&["out"], &[("rule-r", "a", "out")]));
    store.writer().ingest(events("rule-r", "out", 1_000, PAGE + 500), 1_000).await.unwrap();
    shared.runtime.store(config(&["out"], &[]));
    tokio::time::advance(CANCEL_GRACE).await;
    let Step::Next(cursor, first) = step(&shared, None).await.unwrap() else { panic!("a page") };
    assert_eq!(first, Swept { canceled: PAGE, moved: 0, deferred: 0 });

    shared.runtime.store(config(&["out"], &[("rule-n", "b", "out")]));
    tokio::time::advance(CANCEL_GRACE).await;
    store.writer().ingest(events("rule-n", "out", 1_001, 500), 1_001).await.unwrap();
    let (mut cursor, mut rest) = (Some(cursor), Swept::default());
    while let Step::Next(last, swept) = step(&shared, cursor.as_ref()).await.unwrap() {
        cursor = Some(last);
        rest += swept;
    }
    assert_eq!(rest, Swept { canceled: 500, moved: 0, deferred: 0 }, "the rest of rule-r only");
    assert_eq!((count(&store, "rule-r"), count(&store, "rule-n")), (0, 500));
    store.close().await;
}

/// The config changes between the decision and the writer: the writer job
/// sees it and applies nothing; the page is decided again.
#[tokio::test(start_paused = true)]
async fn a_decision_is_dropped_when_the_config_changed_before_the_writer_applied_it() {
    let v1 = config(&["out"], &[("rule-r", "a", "out")]);
    let (_dir, store, shared) = setup(v1.clone());
    store.writer().ingest(events("rule-r", "out", 1_000, 3), 1_000).await.unwrap();
    shared.runtime.store(config(&["out"], &[]));
    tokio::time::advance(CANCEL_GRACE).await;
    let plan = Plan::decide(shared.runtime.load_full(), due(&store));
    // Restored (an equal config is another config in force).
    shared.runtime.store(config(&["out"], &[("rule-r", "a", "out")]));
    assert_eq!(commit(&shared, plan).await.unwrap(), None, "stale: nothing applied");
    assert_eq!(count(&store, "rule-r"), 3);
    assert_eq!(
        step(&shared, None).await.unwrap(),
        Step::Next(due(&store)[2].clone(), Swept::default())
    );
    assert_eq!(count(&store, "rule-r"), 3, "decided again under the config in force");
    store.close().await;
}

#[tokio::test]
async fn a_newer_cleanup_stops_the_older_one_and_shutdown_stops_all() {
    let cleanups = Cleanups::default();
    let first = cleanups.begin();
    let second = cleanups.begin();
    assert!(first.is_cancelled() && !second.is_cancelled());
    cleanups.stop_all();
    assert!(second.is_cancelled() && cleanups.begin().is_cancelled());

    let (_dir, store, shared) = setup(config(&["out"], &[("rule-r", "a", "out")]));
    store.writer().ingest(events("rule-r", "out", 1_000, 3), 1_000).await.unwrap();
    shared.runtime.store(config(&["out"], &[]));
    assert_eq!(run(&shared, &first).await, None, "a stopped cleanup does nothing");
    assert_eq!(count(&store, "rule-r"), 3);
    store.close().await;
}

/// Rule `rule-r` moved from `hooks` to `console`, `hooks` deleted: its
/// deliveries move, same due time, and used to be canceled.
#[tokio::test]
async fn a_rule_moved_to_another_connection_takes_its_deliveries_along() {
    let (_dir, store, shared) = setup(config(&["hooks", "console"], &[("rule-r", "a", "hooks")]));
    store.writer().ingest(events("rule-r", "hooks", 1_000, 3), 1_000).await.unwrap();
    shared.runtime.store(config(&["console"], &[("rule-r", "a", "console")]));
    let swept = run(&shared, &CancellationToken::new()).await;
    assert_eq!(swept, Some(Swept { canceled: 0, moved: 3, deferred: 0 }));
    let keys = due(&store);
    assert!(keys.iter().all(|k| k.conn_key == format!("{WS}/console") && k.due == 1_000));
    for k in &keys {
        let rec = store.attempt_view(k.event, &k.rule).unwrap().unwrap().rule_event;
        assert_eq!(
            (rec.connection.as_str(), rec.conn_key.as_str()),
            ("console", k.conn_key.as_str())
        );
        assert_eq!((rec.status, rec.next_attempt_at), (Status::Pending, Some(1_000)));
    }
    assert_eq!(store.take_landed(), Some(1_000), "the scheduler rescans `console`");
    store.close().await;
}

/// Orphans behind a full page of valid entries: the pass used to read
/// only each queue's first 1,000 entries.
#[tokio::test(start_paused = true)]
async fn the_pass_pages_through_the_whole_index() {
    let v1 = config(&["out"], &[("keep", "a", "out"), ("gone", "b", "out")]);
    let (_dir, store, shared) = setup(v1);
    store.writer().ingest(events("keep", "out", 1_000, PAGE + 1), 1_000).await.unwrap();
    store.writer().ingest(events("gone", "out", 1_001, 2), 1_001).await.unwrap();
    shared.runtime.store(config(&["out"], &[("keep", "a", "out")]));
    tokio::time::advance(CANCEL_GRACE).await;
    let swept = run(&shared, &CancellationToken::new()).await;
    assert_eq!(swept, Some(Swept { canceled: 2, moved: 0, deferred: 0 }));
    assert_eq!((count(&store, "keep"), count(&store, "gone")), (PAGE + 1, 0));
    store.close().await;
}

/// Store errors are retried from the same cursor after 1 s, 2 s, 4 s…;
/// success resets the wait.
#[tokio::test(start_paused = true)]
async fn store_errors_are_retried_with_a_doubling_backoff() {
    let start = tokio::time::Instant::now();
    let calls = Mutex::new(Vec::new());
    let key = DueKey { conn_key: "w/c".into(), due: 1, event: 1, rule: "r".into() };
    let swept = retrying(&CancellationToken::new(), |cursor| {
        let mut calls = calls.lock().unwrap();
        calls.push((start.elapsed().as_secs(), cursor.is_some()));
        let n = calls.len();
        let swept = Swept { canceled: 1, moved: 0, deferred: 0 };
        let out = match n {
            1 => Ok(Step::Next(key.clone(), swept)),
            2..=4 | 6 => Err(StoreError::Unavailable("disk full".into())),
            5 => Ok(Step::Next(key.clone(), swept)),
            _ => Ok(Step::Done),
        };
        async move { out }
    })
    .await;
    assert_eq!(swept, Some(Swept { canceled: 2, moved: 0, deferred: 0 }));
    let calls = calls.into_inner().unwrap();
    let expected = [(0, false), (0, true), (1, true), (3, true), (7, true), (7, true), (8, true)];
    assert_eq!(calls, expected, "(seconds, from the cursor) of each try");
}

#[tokio::test(start_paused = true)]
async fn a_cleanup_waiting_out_an_error_stops_when_superseded() {
    let (stop, start) = (CancellationToken::new(), tokio::time::Instant::now());
    let failing = retrying(&stop, |_| async { Err(StoreError::Unavailable("down".into())) });
    let canceler = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        stop.cancel();
    };
    let (swept, ()) = tokio::join!(failing, canceler);
    assert_eq!(swept, None);
    // Tries at 0, 1, 3, 7 and 15 s: the wait until 31 s was cut short.
    assert_eq!(start.elapsed(), Duration::from_secs(30), "stopped mid-wait");
}

/// A full disk under the pass: the cancel fails, the store refuses service
/// for a while, and the pass carries on once it serves again (it used to
/// give up until the next reload).
#[tokio::test(start_paused = true)]
async fn a_full_disk_delays_the_cleanup_but_does_not_end_it() {
    let dir = tempfile::tempdir().unwrap();
    let disk = crate::store::fault::DiskFull::default();
    let store = Store::open_with(dir.path(), disk.opener()).unwrap();
    let shared = setup_with(store.clone(), config(&["out", "old"], &[("r", "a", "old")]));
    store.writer().ingest(events("r", "old", 1_000, 3), 1_000).await.unwrap();
    shared.runtime.store(config(&["out"], &[]));
    tokio::time::advance(CANCEL_GRACE).await;
    disk.set(true);
    let task = tokio::spawn({
        let shared = shared.clone();
        async move { run(&shared, &CancellationToken::new()).await }
    });
    while disk.refused() == 0 {
        tokio::task::yield_now().await;
    }
    disk.set(false);
    let started = tokio::time::Instant::now();
    assert_eq!(task.await.unwrap(), Some(Swept { canceled: 3, moved: 0, deferred: 0 }));
    assert!(started.elapsed() >= FIRST_BACKOFF, "it waited before trying again");
    assert_eq!(count(&store, "r"), 0);
    store.close().await;
}

/// A rename while an attempt is on the wire: the cleanup moves the entry
/// (same due time) before the outcome lands. The outcome decides and the
/// moved entry goes; left due, the delivered event was sent again.
#[tokio::test]
async fn an_outcome_that_lands_after_its_delivery_moved_settles_it() {
    let (_dir, store, shared) = setup(config(&["hooks", "console"], &[("rule-r", "a", "hooks")]));
    store.writer().ingest(events("rule-r", "hooks", 1_000, 1), 1_000).await.unwrap();
    let on_the_wire = due(&store).remove(0);
    shared.runtime.store(config(&["console"], &[("rule-r", "a", "console")]));
    let swept = run(&shared, &CancellationToken::new()).await;
    assert_eq!(swept, Some(Swept { canceled: 0, moved: 1, deferred: 0 }));
    let next = crate::store::Next::Completed;
    let done =
        crate::store::AttemptDone { key: on_the_wire.clone(), attempt: None, next, at: 2_000 };
    store.writer().attempt(done).await.unwrap();
    assert!(due(&store).is_empty(), "the moved entry went with the outcome");
    let rec = store.attempt_view(on_the_wire.event, "rule-r").unwrap().unwrap().rule_event;
    assert_eq!((rec.status, rec.completed_at), (Status::Completed, Some(2_000)));
    store.close().await;
}

/// One record that will not decode used to fail the page's writer job,
/// and the pass retried that page until the next reload.
#[tokio::test(start_paused = true)]
async fn an_unreadable_record_is_set_aside_and_the_pass_goes_on() {
    let (_dir, store, shared) = setup(config(&["hooks", "console"], &[("r", "a", "hooks")]));
    store.writer().ingest(events("r", "hooks", 1_000, 3), 1_000).await.unwrap();
    let bad = due(&store).remove(1);
    store.garble_for_tests(bad.event, &bad.rule);
    shared.runtime.store(config(&["console"], &[]));
    tokio::time::advance(CANCEL_GRACE).await;
    let swept = run(&shared, &CancellationToken::new()).await;
    assert_eq!(swept, Some(Swept { canceled: 2, moved: 0, deferred: 0 }), "the two readable ones");
    assert!(due(&store).is_empty());
    let view = store.event(bad.event).unwrap().unwrap();
    assert_eq!(view.rule_events[0].status, Status::Failed, "set aside, not left pending");
    store.close().await;
}
