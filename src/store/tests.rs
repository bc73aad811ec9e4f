use super::*;
use crate::config::model::Outcome;

pub(crate) fn new_event(
    ws: &str,
    event: &str,
    rules: &[(&str, &str)],
    now: u64,
    key: Option<&str>,
) -> NewEvent {
    let id = uuid::Uuid::now_v7().to_string();
    NewEvent {
        record: EventRecord {
            id: id.clone(),
            workspace: ws.into(),
            event: event.into(),
            resource: "global".into(),
            resource_id: None,
            created_by: "publishable_key".into(),
            created_at: now,
        },
        payload: br#"{"email":"a@example.com"}"#.to_vec(),
        idempotency_key: key.map(|k| writer::IdempotencyKey::new(k.into(), "pk".into(), b"{}")),
        inbox: false,
        rules: rules
            .iter()
            .map(|(rule, conn)| NewRuleEvent {
                rule_id: (*rule).into(),
                connection: (*conn).into(),
                action: "log".into(),
                conn_key: format!("{ws}/{conn}"),
                delivery_id: uuid::Uuid::now_v7().to_string(),
                due: now,
            })
            .collect(),
    }
}

fn attempt(n: u32, at: u64, outcome: Outcome) -> AttemptRecord {
    AttemptRecord {
        attempt: n,
        started_at: at,
        duration_ms: 5,
        outcome,
        http_status: Some(500),
        response_excerpt: None,
        error: Some("boom".into()),
    }
}

fn no_skip(_: u128, _: &str) -> bool {
    false
}

#[tokio::test]
async fn ingest_is_durable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::open(dir.path()).unwrap();
        let out = store
            .writer()
            .ingest(
                vec![new_event("ws", "user.signup", &[("r1", "hook"), ("r2", "log")], 1_000, None)],
                1_000,
            )
            .await
            .unwrap();
        store.close().await;
        out[0].event.id.clone()
    };
    let store = Store::open(dir.path()).unwrap();
    let key = event_key(&id).unwrap();
    let view = store.event(key).unwrap().unwrap();
    assert_eq!(view.rule_events.len(), 2);
    assert_eq!(view.status(|_| false), Status::Pending);
    assert_eq!(store.payload(key).unwrap().unwrap(), br#"{"email":"a@example.com"}"#);
    assert_eq!(store.due("ws/hook", 1_000, 10, &no_skip).unwrap().len(), 1);
    assert_eq!(store.due("ws/hook", 999, 10, &no_skip).unwrap().len(), 0);
    assert_eq!(store.next_due("ws/log").unwrap(), Some(1_000));
}

#[tokio::test]
async fn idempotency_key_returns_the_original_within_24h() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let first =
        w.ingest(vec![new_event("ws", "a", &[("r1", "c")], 10, Some("k1"))], 10).await.unwrap();
    // Same key twice in one batch, and again later: all return the first event.
    let batch = vec![
        new_event("ws", "a", &[("r1", "c")], 20, Some("k1")),
        new_event("ws", "a", &[("r1", "c")], 20, Some("k1")),
    ];
    let again = w.ingest(batch, 20).await.unwrap();
    assert!(again.iter().all(|i| i.duplicate && i.event.id == first[0].event.id));
    assert_eq!(
        store.due("ws/c", u64::MAX, 10, &no_skip).unwrap().len(),
        1,
        "repeats created deliveries"
    );
    // Another workspace may use the same key.
    let other = w.ingest(vec![new_event("ws2", "a", &[], 30, Some("k1"))], 30).await.unwrap();
    assert!(!other[0].duplicate);
    // After 24 h the key is free again, and pruning forgets it.
    let late = 10 + writer::IDEMPOTENCY_TTL_MS;
    let fresh = w.ingest(vec![new_event("ws", "a", &[], late, Some("k1"))], late).await.unwrap();
    assert!(!fresh[0].duplicate);
}

#[tokio::test]
async fn attempts_move_deliveries_through_their_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let ev = w.ingest(vec![new_event("ws", "a", &[("r1", "c")], 100, None)], 100).await.unwrap();
    let key = event_key(&ev[0].event.id).unwrap();
    let due = store.due("ws/c", 100, 10, &no_skip).unwrap().remove(0);
    w.attempt(AttemptDone {
        key: due,
        attempt: Some(attempt(1, 100, Outcome::RejectedServerError)),
        next: Next::Retry { at: 5_100 },
        at: 101,
    })
    .await
    .unwrap();
    let view = store.event(key).unwrap().unwrap();
    assert_eq!(view.rule_events[0].status, Status::Retrying);
    assert_eq!(view.rule_events[0].next_attempt_at, Some(5_100));
    assert_eq!(view.rule_events[0].last_error.as_deref(), Some("boom"));
    assert!(store.due("ws/c", 5_099, 10, &no_skip).unwrap().is_empty());
    let due = store.due("ws/c", 5_100, 10, &no_skip).unwrap().remove(0);
    let mut ok = attempt(2, 5_100, Outcome::Delivered);
    ok.error = None;
    let done = AttemptDone { key: due, attempt: Some(ok), next: Next::Completed, at: 5_101 };
    w.attempt(done).await.unwrap();
    let view = store.event(key).unwrap().unwrap();
    assert_eq!(view.status(|_| false), Status::Completed);
    assert_eq!(view.rule_events[0].attempts, 2);
    assert_eq!(view.rule_events[0].last_error, None);
    assert_eq!(
        store.attempts(key, "r1").unwrap().iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(store.due_len().unwrap(), 0);
}

#[tokio::test]
async fn cancel_and_manual_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let ev = w
        .ingest(vec![new_event("ws", "a", &[("r1", "c"), ("r2", "c")], 100, None)], 100)
        .await
        .unwrap();
    let key = event_key(&ev[0].event.id).unwrap();
    assert_eq!(w.cancel(key, Some("r1"), "canceled by API", 200).await.unwrap(), Some(1));
    assert_eq!(w.cancel(key, Some("nope"), "x", 200).await.unwrap(), None);
    assert_eq!(w.cancel(u128::MAX, None, "x", 200).await.unwrap(), None);
    let view = store.event(key).unwrap().unwrap();
    assert_eq!(view.rule_events[0].status, Status::Canceled);
    assert_eq!(view.status(|_| false), Status::Pending, "r2 still pending");
    assert_eq!(store.due("ws/c", u64::MAX, 10, &no_skip).unwrap().len(), 1);
    // A retry brings the canceled delivery back, due now, with a fresh budget.
    assert_eq!(w.retry(key, "r1", 300).await.unwrap(), RetryOutcome::Scheduled);
    assert_eq!(w.retry(key, "nope", 300).await.unwrap(), RetryOutcome::NotFound);
    let r1 = store.event(key).unwrap().unwrap().rule_events.remove(0);
    assert_eq!(
        (r1.status, r1.next_attempt_at, r1.completed_at),
        (Status::Pending, Some(300), None)
    );
    assert_eq!(w.cancel(key, None, "all", 400).await.unwrap(), Some(2));
    assert_eq!(store.event(key).unwrap().unwrap().status(|_| false), Status::Canceled);
    assert_eq!(store.due_len().unwrap(), 0);
}

/// One delivery canceled through the API while its first attempt ran, then
/// that attempt's `outcome` and `next` recorded: the store and the event.
async fn canceled_while_running(outcome: Outcome, next: Next) -> (tempfile::TempDir, EventView) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let ev = w.ingest(vec![new_event("ws", "a", &[("r1", "c")], 100, None)], 100).await.unwrap();
    let key = event_key(&ev[0].event.id).unwrap();
    let due = store.due("ws/c", 100, 10, &no_skip).unwrap().remove(0);
    w.cancel(key, None, "canceled by API", 150).await.unwrap();
    let done = AttemptDone { key: due, attempt: Some(attempt(1, 100, outcome)), next, at: 101 };
    w.attempt(done).await.unwrap();
    assert_eq!(store.due_len().unwrap(), 0);
    let view = store.event(key).unwrap().unwrap();
    (dir, view)
}

#[tokio::test]
async fn an_attempt_finishing_after_cancel_does_not_resurrect_it() {
    let retry = Next::Retry { at: 900 };
    let (_dir, view) = canceled_while_running(Outcome::RejectedServerError, retry).await;
    let r = &view.rule_events[0];
    assert_eq!(r.status, Status::Canceled);
    assert_eq!(r.attempts, 1, "the attempt is still recorded");
    assert_eq!(r.last_outcome, Some(Outcome::RejectedServerError));
    assert_eq!(r.last_error.as_deref(), Some("canceled by API"), "the reason stays");
}

#[tokio::test]
async fn an_attempt_that_delivers_after_cancel_completes_the_delivery() {
    let (_dir, view) = canceled_while_running(Outcome::Delivered, Next::Completed).await;
    // The receiver has it: the record says delivered, not canceled.
    let r = &view.rule_events[0];
    assert_eq!(
        (r.status, r.last_outcome, r.last_error.as_deref()),
        (Status::Completed, Some(Outcome::Delivered), None)
    );
    assert_eq!(view.status(|_| false), Status::Completed);
}

#[tokio::test]
async fn list_pages_newest_first_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let mut ids = Vec::new();
    for i in 0..7 {
        let kind = if i % 2 == 0 { "even" } else { "odd" };
        let out = w.ingest(vec![new_event("ws", kind, &[], 100 + i, None)], 100 + i).await.unwrap();
        ids.push(out[0].event.id.clone());
    }
    w.ingest(vec![new_event("other", "even", &[], 200, None)], 200).await.unwrap();
    let none = |_: u128, _: &str| false;
    let page = store.list("ws", &ListFilter::default(), None, 3, &none).unwrap();
    let got: Vec<&str> = page.records.iter().map(|v| v.event.id.as_str()).collect();
    assert_eq!(got, vec![ids[6].as_str(), ids[5].as_str(), ids[4].as_str()]);
    let cursor = event_key(page.next_cursor.as_deref().unwrap());
    let page2 = store.list("ws", &ListFilter::default(), cursor, 10, &none).unwrap();
    assert_eq!(page2.records.len(), 4);
    assert_eq!(page2.next_cursor, None);
    let evens = ListFilter { event: Some("even".into()), ..ListFilter::default() };
    assert_eq!(store.list("ws", &evens, None, 50, &none).unwrap().records.len(), 4);
    let done = ListFilter { status: Some(Status::Completed), ..ListFilter::default() };
    assert_eq!(
        store.list("ws", &done, None, 50, &none).unwrap().records.len(),
        7,
        "no rules means nothing left to do"
    );
}

#[tokio::test]
async fn prune_keeps_events_with_unfinished_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let done = w.ingest(vec![new_event("ws", "a", &[], 100, None)], 100).await.unwrap();
    let pending =
        w.ingest(vec![new_event("ws", "a", &[("r1", "c")], 100, None)], 100).await.unwrap();
    let future = clock_ms() + 60_000;
    let pruned = store.prune_all(future, future).await.unwrap();
    assert_eq!(pruned.removed, 1);
    assert!(store.event(event_key(&done[0].event.id).unwrap()).unwrap().is_none());
    assert!(store.payload(event_key(&done[0].event.id).unwrap()).unwrap().is_none());
    assert!(store.event(event_key(&pending[0].event.id).unwrap()).unwrap().is_some());
}

/// The oldest events can stay unfinished for as long as their retry schedule
/// runs; pruning must step over them rather than stop at them.
#[tokio::test]
async fn prune_steps_over_a_head_of_unfinished_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let unfinished = crate::store::writer::PRUNE_STEP * 3 / 2;
    let head: Vec<_> =
        (0..unfinished).map(|i| new_event("ws", "a", &[("r1", "c")], i as u64, None)).collect();
    w.ingest(head, 100).await.unwrap();
    let finished: Vec<_> = (0..10).map(|i| new_event("ws", "a", &[], i, None)).collect();
    let finished = w.ingest(finished, 100).await.unwrap();
    let future = clock_ms() + 60_000;
    let first = store.prune_all(future, future).await.unwrap();
    // Step 1 is 100 unfinished events: nothing for the writer. Step 2 is
    // the other 50 and the 10 finished ones.
    assert_eq!(first, PrunePass { removed: 10, writer_steps: 1, skipped_steps: 1 });
    for done in &finished {
        assert!(store.event(event_key(&done.event.id).unwrap()).unwrap().is_none());
    }
    assert_eq!(store.due_len().unwrap(), unfinished as u64);
    assert_eq!(
        store.prune_all(future, future).await.unwrap(),
        PrunePass { removed: 0, writer_steps: 0, skipped_steps: 2 },
        "a second pass reads the unfinished events again, and costs the writer no commit"
    );
}

/// One step looks at `limit` events and says where the next one starts.
#[tokio::test]
async fn a_prune_step_is_bounded_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let events: Vec<_> = (0..5).map(|i| new_event("ws", "a", &[], i, None)).collect();
    w.ingest(events, 100).await.unwrap();
    let future = clock_ms() + 60_000;
    let mut step = crate::store::PruneStep::new(future, future, 2);
    let mut removed = Vec::new();
    loop {
        let done = w.prune(step.clone()).await.unwrap();
        removed.push(done.removed);
        match done.next {
            Some(from) => step.from = from,
            None => break,
        }
    }
    // 2 + 2 + 1: the third step finds fewer than `limit` and ends the pass.
    assert_eq!(removed, [2, 2, 1]);
}

/// Each step's rows are read before the writer is asked to delete them (a
/// page that left the OS cache is then read off the writer thread): exactly
/// the rows the step will look at.
#[tokio::test]
async fn a_prune_step_is_read_ahead_of_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    let finished: Vec<_> = (0..3).map(|i| new_event("ws", "a", &[], i, None)).collect();
    w.ingest(finished, 100).await.unwrap();
    let fanned = new_event("ws", "a", &[("r1", "c"), ("r2", "c")], 100, Some("k1"));
    w.ingest(vec![fanned], 100).await.unwrap();
    let later = clock_ms() + 2 * crate::store::writer::IDEMPOTENCY_TTL_MS;
    let step = |limit, now| crate::store::PruneStep::new(later, now, limit);
    // 4 events, the 2 deliveries of the last, and its expired key (2 rows).
    let all = store.read_ahead(&step(100, later)).unwrap();
    assert_eq!((all.rows, all.deletes, all.next), (4 + 2 + 2, true, None));
    let two = store.read_ahead(&step(2, 0)).unwrap();
    assert_eq!(two.rows, 2, "two events; no key expired yet");
    assert!(two.deletes, "both finished");
    assert!(two.next.is_some(), "a full step: the scan goes on");
    let pass = store.prune_all(later, later).await.unwrap();
    assert_eq!(pass.removed, 3 + 1, "the finished events, the key");
    let left = store.read_ahead(&step(100, later)).unwrap();
    assert_eq!(left.rows, 1 + 2, "the event still delivering stays, and is read again next pass");
    assert!(!left.deletes, "and the writer need not be asked about it");
}

fn clock_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingest_is_all_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let w = store.writer().clone();
            tokio::spawn(async move {
                w.ingest(vec![new_event("ws", "a", &[("r1", "c")], i, None)], i).await
            })
        })
        .collect();
    for t in tasks {
        assert!(!t.await.unwrap().unwrap()[0].duplicate);
    }
    assert_eq!(store.due_len().unwrap(), 200);
    assert_eq!(
        store.list("ws", &ListFilter::default(), None, 500, &|_, _| false).unwrap().records.len(),
        200
    );
}

#[tokio::test]
async fn an_attempt_reads_only_its_own_rule_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rules = [("r1", "hook"), ("r2", "log"), ("r3", "crm")];
    let out = store
        .writer()
        .ingest(vec![new_event("ws", "user.signup", &rules, 7, None)], 7)
        .await
        .unwrap();
    let id = event_key(&out[0].event.id).unwrap();
    let full = store.event(id).unwrap().unwrap();
    for (rule, _) in rules {
        let view = store.attempt_view(id, rule).unwrap().unwrap();
        assert_eq!(view.event, full.event);
        assert_eq!(Some(&view.rule_event), full.rule_events.iter().find(|r| r.rule_id == rule));
        assert_eq!(view.payload, br#"{"email":"a@example.com"}"#);
    }
    assert_eq!(store.attempt_view(id, "r4").unwrap(), None);
    assert_eq!(store.attempt_view(id.wrapping_add(1), "r1").unwrap(), None);
}

#[tokio::test]
async fn the_landed_mark_is_the_earliest_due_time_committed_since_last_taken() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let w = store.writer();
    assert_eq!(store.take_landed(), None, "nothing committed yet");
    let ev = w.ingest(vec![new_event("ws", "a", &[("r1", "c")], 300, None)], 300).await.unwrap();
    w.ingest(vec![new_event("ws", "a", &[("r1", "c")], 200, None)], 300).await.unwrap();
    assert_eq!(store.take_landed(), Some(200));
    assert_eq!(store.take_landed(), None, "taking it clears it");

    // A retry scheduled by an attempt, and a manual one, are marks too;
    // a cancel writes no due entry.
    let key = event_key(&ev[0].event.id).unwrap();
    let due = store.due("ws/c", 300, 10, &|e, _| e != key).unwrap().remove(0);
    let next = Next::Retry { at: 5_300 };
    w.attempt(AttemptDone {
        key: due,
        attempt: Some(attempt(1, 300, Outcome::RejectedServerError)),
        next,
        at: 301,
    })
    .await
    .unwrap();
    assert_eq!(store.take_landed(), Some(5_300));
    assert_eq!(w.cancel(key, None, "x", 400).await.unwrap(), Some(1));
    assert_eq!(store.take_landed(), None);
    assert_eq!(w.retry(key, "r1", 500).await.unwrap(), RetryOutcome::Scheduled);
    assert_eq!(store.take_landed(), Some(500));
    store.close().await;
}
