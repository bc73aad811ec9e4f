//! The scheduler's scan cursor (and, last, how a deferred try meets the
//! retry budget): entries ahead of it are found without
//! walking the in-flight ones again, an entry committed behind it is found
//! on the next tick (the store's landed mark), and the periodic scans from
//! the head still find one that came without a mark. Ticks are given explicit
//! times: `clock::now_ms` is shared by every test in the process, so a
//! paused clock here would not reliably move it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::delivery::retry::Spent;
use crate::delivery::route::{Fate, fate};
use crate::gateway::runtime;
use crate::store::{EventRecord, NewEvent, NewRuleEvent};

const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";

fn runtime() -> Runtime {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out:\n    type: log\n\
         rules:\n  - {{ id: r1, event: a, connection: out, metadata: {{ action: log }} }}\n"
    );
    runtime::from_text(text)
}

/// An event for rule `r1` on `out`, due at `due`.
fn event(due: u64) -> (u128, NewEvent) {
    let id = uuid::Uuid::now_v7();
    let record = EventRecord {
        id: id.to_string(),
        workspace: WS.into(),
        event: "a".into(),
        resource: "global".into(),
        resource_id: None,
        created_by: "publishable_key".into(),
        created_at: due,
    };
    let rule = NewRuleEvent {
        rule_id: "r1".into(),
        connection: "out".into(),
        action: "log".into(),
        conn_key: format!("{WS}/out"),
        delivery_id: uuid::Uuid::now_v7().to_string(),
        due,
    };
    let ev = NewEvent {
        record,
        payload: br#"{"n":1}"#.to_vec(),
        idempotency_key: None,
        rules: vec![rule],
        inbox: false,
    };
    (id.as_u128(), ev)
}

/// A store in a temp dir (kept alive by the returned guard) and an engine on it.
fn setup() -> (tempfile::TempDir, Store, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Engine::new(store.clone(), Arc::new(ArcSwap::from_pointee(runtime())));
    (dir, store, engine)
}

/// Due entries ahead of the cursor, more than the lane has slots
/// (concurrency defaults below 1,000), so a scan from the cursor never
/// comes up short; returns once the first dispatched attempts are recorded.
async fn backlog(store: &Store, engine: &mut Engine, now: u64) {
    let backlog: Vec<NewEvent> = (0..1_000).map(|_| event(now).1).collect();
    store.writer().ingest(backlog, now).await.unwrap();
    engine.tick_at(now).unwrap();
    assert!(engine.cursors.contains_key(&format!("{WS}/out")), "the cursor is in the backlog");
    settle(engine).await;
}

/// Lets the running attempts finish (recorded by the writer thread).
async fn settle(engine: &Engine) {
    while !engine.shared.in_flight.is_empty() {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn an_entry_committed_behind_the_cursor_is_dispatched_on_the_next_tick() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());
    backlog(&store, &mut engine, now).await;

    // Committed after the cursor passed, with an earlier due time (a bulk
    // request stamped before a request that committed first). It used to
    // wait for the head scan, up to a second under a backlog like this one.
    let (behind, ev) = event(now - 10);
    store.writer().ingest(vec![ev], now).await.unwrap();
    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(behind, "r1"), "the next tick dispatches it");
    assert_eq!(store.take_landed(), None, "the tick took the mark");
    store.close().await;
}

#[tokio::test]
async fn an_entry_behind_the_cursor_without_a_mark_is_found_by_the_next_head_scan() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());

    let (later, ev) = event(now);
    store.writer().ingest(vec![ev], now).await.unwrap();
    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(later, "r1"), "the due entry is dispatched");
    assert!(engine.cursors.contains_key(&format!("{WS}/out")), "and the cursor is after it");
    settle(&engine).await;

    // Behind the cursor, and its mark dropped: only a head scan finds it.
    let (behind, ev) = event(now - 10);
    store.writer().ingest(vec![ev], now).await.unwrap();
    assert_eq!(store.take_landed(), Some(now - 10));
    engine.tick_at(now).unwrap();
    assert!(!shared.in_flight.contains(behind, "r1"), "a scan from the cursor does not see it");

    engine.tick_at(now + HEAD_SCAN_SHORT_MS).unwrap();
    assert!(shared.in_flight.contains(behind, "r1"), "the head scan finds it");
    store.close().await;
}

#[tokio::test]
async fn under_a_backlog_the_head_is_scanned_at_least_every_second() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());
    backlog(&store, &mut engine, now).await;
    let (behind, ev) = event(now - 10);
    store.writer().ingest(vec![ev], now).await.unwrap();
    assert_eq!(store.take_landed(), Some(now - 10), "its mark, dropped");

    // The backlog is ahead of the cursor, so this scan is full and never
    // comes up short.
    engine.tick_at(now).unwrap();
    assert!(!shared.in_flight.contains(behind, "r1"), "a scan from the cursor does not see it");
    settle(&engine).await;
    engine.tick_at(now + HEAD_SCAN_EVERY_MS).unwrap();
    assert!(shared.in_flight.contains(behind, "r1"), "the periodic head scan finds it");
    store.close().await;
}

/// A connection paused for its account's quota (as a HubSpot or Resend
/// daily 429 pauses it) sends nothing until the reset, then one probe.
#[tokio::test]
async fn a_paused_connection_is_not_dispatched_until_its_reset() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());
    let conn = engine.shared.runtime.load().connections().next().unwrap().clone();
    engine.lane(&conn).pause_until(now + 3_600_000, now);
    let (first, a) = event(now);
    let (second, b) = event(now);
    store.writer().ingest(vec![a, b], now).await.unwrap();
    let wake = engine.tick_at(now).unwrap();
    assert!(shared.in_flight.is_empty(), "paused: nothing dispatched");
    assert!(wake > now, "the tick sleeps ({wake})");
    engine.tick_at(now + 3_600_000).unwrap();
    let probes = [first, second].iter().filter(|id| shared.in_flight.contains(**id, "r1")).count();
    assert_eq!(probes, 1, "at the reset, one probe");
    store.close().await;
}

/// A try blocked by a daily quota is logged but spends no retry budget:
/// with three tries in the schedule, a 5xx, a daily 429, then two more 5xx
/// make three budgeted tries, the last one failing the delivery.
#[tokio::test]
async fn a_try_into_a_spent_daily_quota_spends_no_retry_budget() {
    use crate::adapters::adapter::AttemptResult;
    use crate::config::model::{Outcome, RetryPolicy};
    use crate::store::{AttemptDone, AttemptRecord, Next};
    let (_dir, store, _engine) = setup();
    let policy = RetryPolicy {
        schedule: vec![crate::config::duration::Duration::from_millis(0); 3],
        ..RetryPolicy::default()
    };
    let (id, ev) = event(1_000);
    store.writer().ingest(vec![ev], 1_000).await.unwrap();
    let server_error = AttemptResult::Retry {
        code: Outcome::RejectedServerError,
        after: None,
        message: "HTTP 503".into(),
    };
    let midnight = 86_400_000;
    let daily = AttemptResult::Deferred {
        code: Outcome::RateLimited,
        until: midnight,
        scope: crate::adapters::adapter::QuotaScope::Delivery,
        message: "HTTP 429".into(),
    };
    let mut nexts = Vec::new();
    let tries = [(1_u32, &server_error), (2, &daily), (3, &server_error), (4, &server_error)];
    for (n, result) in tries {
        let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
        let (due, now) = (rec.next_attempt_at.unwrap(), rec.next_attempt_at.unwrap() + 10);
        let spent = Spent { attempts: n - rec.budget_start, deferrals: rec.deferrals };
        let next = super::super::retry::next_step(result, &policy, spent, now, 0.5);
        nexts.push(next.clone());
        let attempt = AttemptRecord {
            attempt: n,
            started_at: now,
            duration_ms: 1,
            outcome: Outcome::RateLimited,
            http_status: Some(429),
            response_excerpt: None,
            error: None,
        };
        let key = DueKey { conn_key: format!("{WS}/out"), due, event: id, rule: "r1".into() };
        let done = AttemptDone { key, attempt: Some(attempt), next, at: now };
        store.writer().attempt(done).await.unwrap();
    }
    assert_eq!(
        nexts,
        [
            Next::Retry { at: 1_010 },
            Next::Deferred { at: midnight },
            Next::Retry { at: midnight + 10 },
            Next::Failed
        ],
        "the deferred try waited for the reset and left the budget as it was"
    );
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.attempts, rec.budget_start), (4, 1), "every try is logged");
    assert_eq!(rec.deferrals, 1, "the wait is counted against max_deferrals");
    store.writer().retry(id, "r1", midnight + 100).await.unwrap();
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.budget_start, rec.deferrals), (4, 0), "a manual retry starts both afresh");
    store.close().await;
}

/// Log connections `a` and `b`; automation `x:1` (enabled or not) notifies
/// through `a`; sequence `drip` has `steps`.
fn contacts_runtime(steps: &str, enabled: bool) -> Runtime {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  a: {{ type: log }}\n  b: {{ type: log }}\n\
         automations:\n  - id: \"x:1\"\n    trigger: contact_created\n    enabled: {enabled}\n    \
         actions: [ {{ enroll: drip }}, {{ notify: {{ connection: a, metadata: {{ action: log }} }} }} ]\n\
         sequences:\n  drip:\n    steps:\n{steps}"
    );
    runtime::from_text(text)
}

const ON_A: &str = "      - { connection: a, metadata: { action: log } }\n";
const ON_B: &str = "      - { connection: b, metadata: { action: log } }\n";

#[test]
fn orphan_reasons_say_whether_a_step_changed_or_went() {
    let before = contacts_runtime(ON_A, true);
    let ws = before.workspace(WS).unwrap();
    let step = ws.automations.sequence("drip").unwrap().delivery_id(0);
    let notify = ws.automations.resolve("@automation:x:1:1").map(|s| s.fingerprint.to_string());
    let notify = format!("@automation:x:1:1:{}", notify.unwrap());
    let key =
        |rule: &str| DueKey { conn_key: format!("{WS}/a"), due: 0, event: 1, rule: rule.into() };
    let reason = |rt: &Runtime, rule: &str| match fate(rt, &key(rule)) {
        Fate::Cancel(reason) => Some(reason),
        Fate::Keep | Fate::Move(_) => None,
    };
    assert_eq!((reason(&before, &step), reason(&before, &notify)), (None, None));
    let moved = contacts_runtime(&format!("{ON_B}{ON_A}"), true);
    assert_eq!(reason(&moved, &step), None);
    let changed = reason(&contacts_runtime(ON_B, true), &step).unwrap();
    assert!(changed.ends_with("was changed in the config (its place now delivers through another connection or action)"), "{changed}");
    let removed = reason(&contacts_runtime("      - { wait: 1s }\n", true), &step).unwrap();
    assert!(removed.ends_with("was removed from the config"), "{removed}");
    let disabled = reason(&contacts_runtime(ON_A, false), &notify).unwrap();
    assert!(disabled.ends_with("was disabled in the config"), "{disabled}");
}

/// Log connections `out` and `other`; rule `r1` on `rule_on`, if any.
fn two_connections(rule_on: Option<&str>) -> Arc<Runtime> {
    let rules = rule_on.map_or(" []".to_string(), |c| {
        format!("\n  - {{ id: r1, event: a, connection: {c}, metadata: {{ action: log }} }}")
    });
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n\
         connections:\n  out: {{ type: log }}\n  other: {{ type: log }}\nrules:{rules}\n"
    );
    Arc::new(runtime::from_text(text))
}

/// Rule `r1` moved from `out` (kept) to `other`: until the reload cleanup
/// gets there, the scheduler dispatches the delivery from `out`'s queue.
/// It used to be sent from there, under `out`'s lane; now it moves first.
#[tokio::test]
async fn a_worker_moves_a_delivery_whose_rule_now_targets_another_connection() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());
    let (id, ev) = event(now);
    store.writer().ingest(vec![ev], now).await.unwrap();
    shared.runtime.store(two_connections(Some("other")));
    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(id, "r1"), "dispatched from `out`");
    settle(&engine).await;
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    let other = format!("{WS}/other");
    assert_eq!((&rec.conn_key, rec.attempts, rec.next_attempt_at), (&other, 0, Some(now)));
    engine.tick_at(now).unwrap();
    assert!(shared.in_flight.contains(id, "r1"), "dispatched from `other`");
    settle(&engine).await;
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.status, rec.attempts), (crate::store::Status::Completed, 1));
    store.close().await;
}

/// A delivery canceled by the worker with no attempt (its rule removed,
/// and the config past its grace) ends at the worker's time; it used to
/// show 1970-01-01.
#[tokio::test(start_paused = true)]
async fn a_delivery_canceled_at_attempt_time_ends_now() {
    let (_dir, store, mut engine) = setup();
    let (shared, now) = (engine.shared(), clock::now_ms());
    let (id, ev) = event(now);
    store.writer().ingest(vec![ev], now).await.unwrap();
    shared.runtime.store(two_connections(None));
    tokio::time::advance(crate::delivery::route::CANCEL_GRACE).await;
    engine.tick_at(now).unwrap();
    settle(&engine).await;
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.status, rec.attempts), (crate::store::Status::Canceled, 0));
    assert!(rec.completed_at.is_some_and(|t| t >= now && t <= clock::now_ms()), "{rec:?}");
    store.close().await;
}
