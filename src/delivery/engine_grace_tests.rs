//! The cancellation grace: a config file cut short by a slow write (the
//! audit: part one, 0.8 s, part two) is valid and applied without the rules
//! that were cut off. Their deliveries must not be canceled until that
//! config has been in force for [`CANCEL_GRACE`], neither by the reload
//! cleanup nor at attempt time. On tokio's paused clock: a runtime's grace
//! counts on it, so advancing it is how a config ages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::delivery::cleanup::{Step, Swept, run, step};
use crate::delivery::route::CANCEL_GRACE;
use crate::gateway::runtime;
use crate::store::records::RuleEventRecord;
use crate::store::{NewEvent, Status};

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
const MS: Duration = Duration::from_millis(1);

/// Connection `out` (log) and a rule on it for each of `rules`, built now:
/// a config just put in force.
fn config(rules: &[&str]) -> Arc<Runtime> {
    let rules: String = rules
        .iter()
        .map(|id| {
            format!("  - {{ id: {id}, event: a, connection: out, metadata: {{ action: log }} }}\n")
        })
        .collect();
    let rules = if rules.is_empty() { " []\n".to_string() } else { format!("\n{rules}") };
    Arc::new(runtime::from_text(format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out: {{ type: log }}\nrules:{rules}"
    )))
}

/// A store with `n` deliveries of `r1` due at `due`, an engine on it whose
/// config has `r1`, and the events' ids.
async fn setup(n: usize, due: u64) -> (tempfile::TempDir, Store, Engine, Vec<u128>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let events: Vec<NewEvent> = (0..n)
        .map(|_| crate::store::tests::new_event(WS, "a", &[("r1", "out")], due, None))
        .collect();
    let ids = events.iter().map(|e| uuid::Uuid::parse_str(&e.record.id).unwrap().as_u128());
    let ids = ids.collect();
    store.writer().ingest(events, due).await.unwrap();
    let engine = Engine::new(store.clone(), Arc::new(ArcSwap::new(config(&["r1"]))));
    (dir, store, engine, ids)
}

/// The delivery of `r1` of each event.
fn records(store: &Store, ids: &[u128]) -> Vec<RuleEventRecord> {
    ids.iter().map(|e| store.attempt_view(*e, "r1").unwrap().unwrap().rule_event).collect()
}

fn statuses(store: &Store, ids: &[u128]) -> Vec<Status> {
    records(store, ids).iter().map(|r| r.status).collect()
}

/// Dispatches what is due at `now` and waits until it is recorded.
async fn attempt_due(engine: &mut Engine, now: u64) {
    engine.tick_at(now).unwrap();
    while !engine.shared.in_flight.is_empty() {
        tokio::task::yield_now().await;
    }
}

/// Puts `rt` in force as a reload does: it starts its cleanup, which stops
/// the one before.
fn reload(shared: &Arc<Shared>, rt: Arc<Runtime>) -> tokio::task::JoinHandle<Option<Swept>> {
    shared.runtime.store(rt);
    let (shared, stop) = (shared.clone(), shared.cleanups.begin());
    tokio::spawn(async move { run(&shared, &stop).await })
}

/// The audit's sequence: `r1` cut off (v2), then back 0.8 s later (v3). The
/// v2 cleanup is stopped within its grace, v3's finds nothing to cancel,
/// and the deliveries are made.
#[tokio::test(start_paused = true)]
async fn a_rule_cut_off_and_restored_within_the_grace_keeps_its_deliveries() {
    let now = clock::now_ms();
    let (_dir, store, mut engine, ids) = setup(3, now).await;
    let shared = engine.shared();
    let cut = reload(&shared, config(&[]));
    tokio::time::advance(Duration::from_millis(800)).await;
    let whole = reload(&shared, config(&["r1"]));
    assert_eq!(cut.await.unwrap(), None, "stopped within its grace");
    assert_eq!(whole.await.unwrap(), Some(Swept::default()), "nothing to cancel");
    assert_eq!(statuses(&store, &ids), [Status::Pending; 3]);
    attempt_due(&mut engine, now).await;
    assert_eq!(statuses(&store, &ids), [Status::Completed; 3]);
    store.close().await;
}

/// `r1` removed for good: nothing is canceled within the grace, everything
/// once it is over, with the reason.
#[tokio::test(start_paused = true)]
async fn a_rule_that_stays_removed_is_canceled_after_the_grace_not_before() {
    let now = clock::now_ms();
    let (_dir, store, engine, ids) = setup(3, now).await;
    let shared = engine.shared();
    shared.runtime.store(config(&[]));
    let Step::Next(_, first) = step(&shared, None).await.unwrap() else { panic!("a page") };
    assert_eq!(first, Swept { canceled: 0, moved: 0, deferred: 3 }, "decided, not applied");

    let (stop, started) = (shared.cleanups.begin(), tokio::time::Instant::now());
    let cleanup = run(&shared, &stop);
    tokio::pin!(cleanup);
    let early = tokio::time::timeout(CANCEL_GRACE - MS, &mut cleanup).await;
    assert!(early.is_err(), "still waiting out the grace");
    assert_eq!(statuses(&store, &ids), [Status::Pending; 3]);
    assert_eq!(cleanup.await, Some(Swept { canceled: 3, moved: 0, deferred: 0 }));
    assert!(started.elapsed() >= CANCEL_GRACE);
    for rec in records(&store, &ids) {
        assert_eq!(rec.status, Status::Canceled);
        assert_eq!(rec.last_error.as_deref(), Some("rule `r1` was removed from the config"));
    }
    store.close().await;
}

/// Due while the config without `r1` is in its grace: the attempt neither
/// sends nor cancels it but postpones it to the grace's end, not counted
/// as an attempt, and the scheduler does not pick it up again before.
/// Then it is decided under the config in force: canceled.
#[tokio::test(start_paused = true)]
async fn an_attempt_under_a_young_config_is_postponed_then_decided_again() {
    let now = clock::now_ms();
    let (_dir, store, mut engine, ids) = setup(1, now).await;
    engine.shared.runtime.store(config(&[]));
    attempt_due(&mut engine, now).await;
    let rec = records(&store, &ids).remove(0);
    let at = rec.next_attempt_at.expect("still due");
    let grace = CANCEL_GRACE.as_millis() as u64;
    assert!(
        (now + grace..=clock::now_ms() + grace + 1).contains(&at),
        "due at the grace's end: {at}"
    );
    assert_eq!((rec.status, rec.attempts, rec.last_error), (Status::Pending, 0, None));
    assert!(store.attempts(ids[0], "r1").unwrap().is_empty(), "no attempt recorded");
    let wake = engine.tick_at(now).unwrap();
    assert!(engine.shared.in_flight.is_empty() && wake > now, "not dispatched again meanwhile");

    tokio::time::advance(CANCEL_GRACE).await;
    attempt_due(&mut engine, at).await;
    let rec = records(&store, &ids).remove(0);
    assert_eq!(rec.status, Status::Canceled);
    assert_eq!(rec.last_error.as_deref(), Some("rule `r1` was removed from the config"));
    store.close().await;
}

/// Postponed under the cut config, then the whole file arrives: at the
/// grace's end the delivery is made under the config in force then.
#[tokio::test(start_paused = true)]
async fn a_postponed_delivery_is_made_once_its_rule_is_back() {
    let now = clock::now_ms();
    let (_dir, store, mut engine, ids) = setup(1, now).await;
    engine.shared.runtime.store(config(&[]));
    attempt_due(&mut engine, now).await;
    let at = records(&store, &ids)[0].next_attempt_at.expect("postponed");
    tokio::time::advance(Duration::from_millis(800)).await;
    engine.shared.runtime.store(config(&["r1"]));
    tokio::time::advance(CANCEL_GRACE).await;
    attempt_due(&mut engine, at).await;
    let rec = records(&store, &ids).remove(0);
    assert_eq!((rec.status, rec.attempts), (Status::Completed, 1));
    store.close().await;
}
