//! Engine tests that need the clock or many writes: the sequence worker on
//! tokio's paused clock, activity retention, the custom-field cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contact::Upsert;
use super::service::{Who, upsert_in};
use super::tests::{DAY, H, WORKED, WS, custom, harness};
use serde_json::{Value, json};
use std::sync::Arc;

/// The worker on tokio's paused clock: the second email waits three days
/// of (virtual) time, not a moment less.
#[tokio::test(start_paused = true)]
async fn sequence_worker_waits_on_the_paused_clock() {
    let h = harness(WORKED);
    let runtime = Arc::new(arc_swap::ArcSwap::new(h.rt.clone()));
    let shared = crate::delivery::engine::Engine::new(h.store.clone(), runtime).shared();
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(super::worker::sequences(shared.clone(), stop.clone()));
    let now = crate::clock::now_ms();
    // The worked config enrolls from the upgrade automation.
    h.upsert("p@example.com", custom(&[("plan", json!("free"))]), now).await;
    h.upsert("p@example.com", custom(&[("plan", json!("pro"))]), now).await;
    shared.sequences_wake.notify_one();
    let steps = |h: &H| -> Vec<u64> {
        h.deliveries().into_iter().filter(|d| d.0 == "sequence.welcome-pro").map(|d| d.2).collect()
    };
    while steps(&h).is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let first = steps(&h)[0];
    tokio::time::advance(std::time::Duration::from_millis(3 * DAY - 60_000)).await;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(steps(&h).len(), 1, "not before three days");
    tokio::time::advance(std::time::Duration::from_millis(120_000)).await;
    while steps(&h).len() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let gap = steps(&h)[1] - first;
    assert!((3 * DAY..3 * DAY + 120_000).contains(&gap), "second step after {gap} ms");
    stop.cancel();
    worker.await.unwrap();
}

#[tokio::test]
async fn retention_prunes_the_activity_log() {
    let h = harness(WORKED);
    let c = h.upsert("r@example.com", custom(&[("plan", json!("free"))]), 1_000).await;
    h.upsert("r@example.com", custom(&[("plan", json!("pro"))]), 2_000).await;
    assert!(!h.activity(&c).is_empty());
    // Activity ids are UUID v7 minted on the wall clock: prune everything before tomorrow.
    let tomorrow = crate::clock::now_ms() + DAY;
    h.store.prune_all(tomorrow, tomorrow).await.unwrap();
    assert!(h.activity(&c).is_empty());
}

#[tokio::test]
async fn custom_fields_are_capped_per_contact() {
    let h = harness(WORKED);
    let batch = |n: usize| {
        let pairs: Vec<(String, Value)> =
            (0..100).map(|i| (format!("k{n}_{i}"), json!(i))).collect();
        let mut u = Upsert::default();
        u.custom_fields.extend(pairs);
        u
    };
    for n in 0..5 {
        h.upsert("cap@example.com", batch(n), n as u64).await;
    }
    let (rt, u) = (h.rt.clone(), batch(5));
    let who = Who { external_id: None, email: Some("cap@example.com".into()) };
    let refused = h
        .store
        .writer()
        .run(move |t| upsert_in(t, rt.workspace(WS).unwrap(), 9, &who, &u, 0))
        .await
        .unwrap();
    match refused {
        Err(super::service::ContactError::Invalid(param, msg)) => {
            assert_eq!(param, "custom_fields");
            assert!(msg.contains("600 custom fields"), "{msg}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let stored = h.store.contact_by_email(WS, "cap@example.com").unwrap().unwrap();
    assert_eq!(stored.custom_fields.len(), 500, "nothing of the refused upsert was kept");
}

/// A contact enrolled in `welcome-pro` whose first email went out at
/// `now`: its id and when its next step is due.
async fn enrolled(h: &H, now: u64) -> (u128, u64) {
    h.upsert("p@example.com", custom(&[("plan", json!("free"))]), now).await;
    let c = h.upsert("p@example.com", custom(&[("plan", json!("pro"))]), now).await;
    let key = crate::store::event_key(&c.id).unwrap();
    assert_eq!(h.tick(now).await, 1, "the first email");
    (key, h.store.enrollments(key).unwrap()[0].due.unwrap())
}

/// A config cut short by a slow write may lack a sequence for a moment:
/// an enrolment that comes due then waits out that config's grace instead
/// of ending for good, and ends only if the sequence is still gone after it.
#[tokio::test(start_paused = true)]
async fn a_sequence_missing_from_a_young_config_waits_for_its_grace() {
    use crate::delivery::route::CANCEL_GRACE;
    use crate::store::EnrollmentStatus;
    let h = harness(WORKED);
    let (key, due) = enrolled(&h, 1_000 * DAY).await;
    let enrolment = |h: &H| h.store.enrollments(key).unwrap().remove(0);
    // A config without the sequence (a file cut short): built now, so in its grace.
    let cut = super::tests::reloaded(
        &h.rt,
        "connections:\n  crm: { type: log }\nautomations:\n  - id: tag-crm\n    trigger: { tag_added: paying-customer }\n    actions:\n      - notify: { connection: crm, metadata: { action: log } }\n",
    );
    assert_eq!(h.tick_under(cut.clone(), due).await, 0);
    let waiting = enrolment(&h);
    assert_eq!(waiting.status, EnrollmentStatus::Active, "{waiting:?}");
    let grace_ms = CANCEL_GRACE.as_millis() as u64;
    assert!((due + 1..=due + grace_ms + 1).contains(&waiting.due.unwrap()), "{waiting:?}");
    // Still gone once the grace has passed: now it ends.
    tokio::time::advance(CANCEL_GRACE).await;
    assert_eq!(h.tick_under(cut, waiting.due.unwrap()).await, 0);
    let ended = enrolment(&h);
    assert_eq!(ended.status, EnrollmentStatus::Unenrolled, "{ended:?}");
    assert_eq!(ended.due, None);
}

/// A file cut inside `sequences:` leaves a valid but shorter sequence: an
/// enrolment that runs out of its steps under that config is not ended
/// "completed" for good, and runs the rest once the whole file is back.
#[tokio::test(start_paused = true)]
async fn a_sequence_cut_short_by_a_young_config_is_not_completed() {
    use crate::delivery::route::CANCEL_GRACE;
    use crate::store::EnrollmentStatus;
    let h = harness(WORKED);
    let (key, due) = enrolled(&h, 1_000 * DAY).await;
    let enrolment = |h: &H| h.store.enrollments(key).unwrap().remove(0);
    // WORKED without its last step: valid, and built now (in its grace).
    let last = WORKED.rfind("      - { connection: email").unwrap();
    let cut = super::tests::reloaded(&h.rt, &WORKED[..last]);
    assert_eq!(h.tick_under(cut, due).await, 0, "no step left under the cut config");
    let held = enrolment(&h);
    assert_eq!((held.status, held.step), (EnrollmentStatus::Active, 2), "{held:?}");
    // The whole file is back (and past the grace): the last email goes out.
    tokio::time::advance(CANCEL_GRACE).await;
    assert_eq!(h.tick_under(h.rt.clone(), held.due.unwrap()).await, 1, "the last email");
    let done = enrolment(&h);
    assert_eq!(done.status, EnrollmentStatus::Completed, "{done:?}");
}
