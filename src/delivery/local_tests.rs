//! Running out of descriptors is told apart from a network error, and an
//! attempt it failed spends none of the delivery's retry budget.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::config::model::RetryPolicy;
use crate::delivery::retry::{self, Spent};
use crate::store::{AttemptDone, AttemptRecord, DueKey, NewEvent};
use crate::store::{Status, Store};

/// What reqwest hands an adapter: the OS error a few causes down.
#[derive(Debug)]
struct Wrapped(std::io::Error);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("error trying to connect")
    }
}

impl Error for Wrapped {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

fn os(errno: rustix::io::Errno) -> Wrapped {
    Wrapped(std::io::Error::from_raw_os_error(errno.raw_os_error()))
}

fn network_error() -> AttemptResult {
    let message = "could not connect: Too many open files (os error 24)".into();
    AttemptResult::Retry { code: Outcome::NetworkError, after: None, message }
}

#[test]
fn only_emfile_and_enfile_are_out_of_descriptors() {
    use rustix::io::Errno;
    assert!(out_of_descriptors(&os(Errno::MFILE)));
    assert!(out_of_descriptors(&os(Errno::NFILE)));
    assert!(!out_of_descriptors(&os(Errno::CONNREFUSED)));
    assert!(!out_of_descriptors(&std::io::Error::other("Too many open files (os error 24)")));
}

#[tokio::test]
async fn an_attempt_hears_of_its_own_requests_only() {
    let emfile = os(rustix::io::Errno::MFILE);
    let (_, seen) = watch(async { note(&emfile) }).await;
    assert!(seen);
    let (_, seen) = watch(async { note(&os(rustix::io::Errno::CONNREFUSED)) }).await;
    assert!(!seen);
    note(&emfile); // outside any attempt: nothing to tell, and no panic
    let (_, seen) = watch(async {}).await;
    assert!(!seen, "each attempt starts afresh");
    assert!(is_local(true, &network_error()));
    let timeout = AttemptResult::Retry { code: Outcome::Timeout, after: None, message: "".into() };
    assert!(!is_local(true, &timeout), "a request that went out is the destination's");
    assert!(!is_local(false, &network_error()));
}

fn event(due: u64) -> (u128, NewEvent) {
    let ev = crate::store::tests::new_event("ws", "a", &[("r1", "out")], due, None);
    (uuid::Uuid::parse_str(&ev.record.id).unwrap().as_u128(), ev)
}

/// With three tries in the schedule, a 5xx, two tries that found no
/// descriptor, then two more 5xx are three budgeted tries: the last fails
/// the delivery. Without the postponement the third try would have.
#[tokio::test]
async fn tries_without_descriptors_spend_no_retry_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let policy = RetryPolicy {
        schedule: vec![crate::config::duration::Duration::from_millis(0); 3],
        ..RetryPolicy::default()
    };
    let (id, ev) = event(1_000);
    store.writer().ingest(vec![ev], 1_000).await.unwrap();
    let server_error = AttemptResult::Retry {
        code: Outcome::RejectedServerError,
        after: None,
        message: "".into(),
    };
    let (local, remote) = ((true, network_error()), (false, server_error));
    let mut nexts = Vec::new();
    let mut streak = 0;
    for (seen, result) in [&remote, &local, &local, &remote, &remote] {
        let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
        let n = rec.attempts + 1; // as the worker numbers them
        let (due, now) = (rec.next_attempt_at.unwrap(), rec.next_attempt_at.unwrap() + 10);
        let key = DueKey { conn_key: "ws/out".into(), due, event: id, rule: "r1".into() };
        let done = if is_local(*seen, result) {
            streak += 1;
            // As the worker ends it, at the wait of this streak (the
            // server-wide one is shared with the other tests).
            let next = postponed(now, streak - 1, 0.5);
            AttemptDone { next, ..postpone(&key, now) }
        } else {
            let spent = Spent { attempts: n - rec.budget_start, deferrals: rec.deferrals };
            let next = retry::next_step(result, &policy, spent, now, 0.5);
            AttemptDone { key, attempt: Some(attempt(n, now)), next, at: now }
        };
        nexts.push(done.next.clone());
        store.writer().attempt(done).await.unwrap();
        if is_local(*seen, result) {
            let after = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
            let same = |r: &crate::store::RuleEventRecord| {
                (r.attempts, r.status, r.last_error.clone(), r.last_outcome)
            };
            assert_eq!(same(&after), same(&rec), "the record tells nothing new");
        }
    }
    let wait = WAIT.as_millis() as u64;
    assert_eq!(
        nexts,
        [
            Next::Retry { at: 1_010 },
            Next::Postponed { at: 1_020 + wait },
            Next::Postponed { at: 1_030 + 3 * wait },
            Next::Retry { at: 1_040 + 3 * wait },
            Next::Failed,
        ]
    );
    let rec = store.attempt_view(id, "r1").unwrap().unwrap().rule_event;
    assert_eq!((rec.status, rec.attempts, rec.budget_start), (Status::Failed, 3, 0));
    let rows = store.attempts(id, "r1").unwrap();
    let numbers: Vec<u32> = rows.iter().map(|r| r.attempt).collect();
    assert_eq!(numbers, [1, 2, 3], "no row for the postponed tries: {rows:?}");
    assert!(rows.iter().all(|r| r.outcome == Outcome::RejectedServerError), "{rows:?}");
    assert_eq!(rec.deferrals, 0, "not a quota wait: max_deferrals is untouched");
    store.close().await;
}

fn attempt(n: u32, now: u64) -> AttemptRecord {
    AttemptRecord {
        attempt: n,
        started_at: now,
        duration_ms: 1,
        outcome: Outcome::RejectedServerError,
        http_status: Some(503),
        response_excerpt: None,
        error: Some("HTTP 503".into()),
    }
}

#[test]
fn the_wait_doubles_with_the_streak_up_to_a_minute() {
    let at = |streak| match postponed(0, streak, 0.5) {
        Next::Postponed { at } => at,
        other => panic!("{other:?}"),
    };
    assert_eq!([at(0), at(1), at(2), at(4)], [2_000, 4_000, 8_000, 32_000]);
    assert_eq!([at(5), at(40), at(u32::MAX)], [60_000; 3], "capped");
}
