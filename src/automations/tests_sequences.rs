//! Sequences under reloads and load: which configs in their grace hold an
//! enrolment back (and which never do), `exit_when` errors in the activity
//! log, and the per-job budget of deliveries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::engine::{EventFact, Fired};
use super::sequences::{Grace, Job, MAX_STEPS};
use super::tests::{H, harness, reloaded};
use crate::config::automation::TriggerKind;
use crate::delivery::route::CANCEL_GRACE;
use crate::gateway::runtime::Runtime;
use crate::store::{ContactRecord, EnrollmentRecord, EnrollmentStatus, event_key};
use serde_json::{Value, json};
use std::sync::Arc;

/// A purchase enrolls the contact in a one-step `receipt` sequence; `more`
/// is appended (another automation, a longer `receipt`).
fn receipts(more: &str, steps: &str) -> String {
    format!(
        "connections:\n  mail: {{ type: log }}\nautomations:\n  - id: buy\n    trigger: {{ custom_event: purchase }}\n    actions: [ {{ enroll: receipt }} ]\n{more}sequences:\n  receipt:\n    steps:\n{steps}"
    )
}

const ONE_STEP: &str = "      - { connection: mail, metadata: { action: log } }\n";

fn purchase() -> Fired {
    let mut f = Fired::new(TriggerKind::CustomEvent, Some("purchase".into()), 0);
    let properties = json!({});
    f.event = Some(EventFact { name: "purchase".into(), properties, id: None });
    f
}

impl H {
    fn enrolment(&self, c: &ContactRecord) -> EnrollmentRecord {
        self.store.enrollments(event_key(&c.id).unwrap()).unwrap().remove(0)
    }

    /// Outcome and detail of every `enroll` action so far.
    fn enrolls(&self, c: &ContactRecord) -> Vec<(String, Value)> {
        let act = self.activity(c);
        let outcomes = act.iter().flat_map(|a| a["actions"].as_array().unwrap().clone());
        let enrolls = outcomes.filter(|o| o["action"] == "enroll");
        enrolls.map(|o| (o["outcome"].as_str().unwrap().to_string(), o["detail"].clone())).collect()
    }

    /// [`H::fire`] under `rt`.
    async fn fire_under(&self, rt: &Arc<Runtime>, c: &ContactRecord, f: Fired, now: u64) {
        let (rt, id) = (rt.clone(), event_key(&c.id).unwrap());
        self.store
            .writer()
            .run(move |t| {
                let stored = t.contact(id)?;
                let ws = rt.workspace(super::tests::WS).unwrap();
                let mut run = super::engine::Run::new(t, ws, now, stored.clone(), stored);
                run.fire(f);
                run.finish().map(|_| ())
            })
            .await
            .unwrap();
    }
}

/// Nine purchases under the startup config, inside its grace: nine
/// receipts. A completion used to be held for the grace of whatever config
/// was in force, so a purchase in the first 10 s after a start was
/// answered `already enrolled` and its receipt never sent.
#[tokio::test(start_paused = true)]
async fn every_enrolment_in_the_startup_grace_runs() {
    let h = harness(&receipts("", ONE_STEP));
    let c = h.upsert("buyer@example.com", Default::default(), 1_000).await;
    for i in 0..9 {
        let now = 2_000 + i * 2_000;
        h.fire(&c, purchase(), now).await;
        assert_eq!(h.tick_under(h.rt.clone(), now).await, 1, "receipt {i}");
        let e = h.enrolment(&c);
        assert_eq!((e.status, e.step, e.due), (EnrollmentStatus::Completed, 1, None), "{e:?}");
    }
    assert!(!crate::delivery::route::grace_left(&h.rt).is_zero(), "all inside the grace");
    let enrolls = h.enrolls(&c);
    assert_eq!(enrolls, vec![("done".to_string(), Value::Null); 9]);
}

/// A reload that leaves the sequence as it was holds nothing either, and
/// neither does one that lengthens it.
#[tokio::test(start_paused = true)]
async fn a_reload_that_does_not_shorten_the_sequence_holds_nothing() {
    let h = harness(&receipts("", ONE_STEP));
    let c = h.upsert("buyer@example.com", Default::default(), 1_000).await;
    h.fire(&c, purchase(), 2_000).await;
    assert_eq!(h.tick(2_000).await, 1);
    tokio::time::advance(CANCEL_GRACE).await;
    // A SIGHUP reload that added an automation: in its grace, `receipt` untouched.
    let other = "  - { id: vip, trigger: { tag_added: vip }, actions: [ { add_tag: seen } ] }\n";
    let same = reloaded(&h.rt, &receipts(other, ONE_STEP));
    let longer = reloaded(&same, &receipts(other, &ONE_STEP.repeat(2)));
    for (i, rt) in [same.clone(), same, longer].iter().enumerate() {
        let now = 4_000 + i as u64 * 2_000;
        h.fire(&c, purchase(), now).await;
        assert!(!crate::delivery::route::grace_left(rt).is_zero());
        assert!(h.tick_under(rt.clone(), now).await >= 1, "receipt {i}");
        assert_eq!(h.enrolment(&c).status, EnrollmentStatus::Completed, "{i}");
    }
    assert_eq!(h.enrolls(&c), vec![("done".to_string(), Value::Null); 4]);
}

/// A reload that shortens the sequence (a file cut short, or an edit)
/// holds an enrolment that runs out of steps under it, and the API says
/// why. Enrolling again meanwhile is `already enrolled`: starting over
/// would send the first steps twice once the whole file lands. A newer
/// config that does not shorten it further decides it when the hold ends.
#[tokio::test(start_paused = true)]
async fn a_shortened_sequence_holds_and_enrolling_again_meanwhile_changes_nothing() {
    let h = harness(&receipts("", &ONE_STEP.repeat(3)));
    let c = h.upsert("buyer@example.com", Default::default(), 1_000).await;
    let cut = reloaded(&h.rt, &receipts("", ONE_STEP));
    h.fire(&c, purchase(), 2_000).await;
    assert_eq!(h.tick_under(cut.clone(), 2_000).await, 1, "one step left under `cut`");
    let held = h.enrolment(&c);
    assert_eq!((held.status, held.step), (EnrollmentStatus::Active, 1), "{held:?}");
    assert!(held.reason.as_deref().unwrap().starts_with("held: the config in force"), "{held:?}");
    h.fire_under(&cut, &c, purchase(), 3_000).await;
    assert_eq!(h.enrolment(&c), held, "the held enrolment is untouched");
    // Another reload within the grace, with `receipt` as `cut` has it.
    tokio::time::advance(CANCEL_GRACE / 2).await;
    let newer = reloaded(&cut, &receipts("", ONE_STEP));
    assert_eq!(h.tick_under(newer, held.due.unwrap()).await, 0, "no step left");
    let done = h.enrolment(&c);
    assert_eq!(
        (done.status, done.reason.as_deref()),
        (EnrollmentStatus::Completed, Some("every step ran"))
    );
    let enrolls = h.enrolls(&c);
    let detail = Value::String("already enrolled".into());
    assert_eq!(enrolls, vec![("done".into(), Value::Null), ("no_change".into(), detail)]);
}

/// Each config is compared with the one it replaced, whenever the worker
/// looks: three steps, cut to one (B), then C (B plus an automation) in
/// force before any step came due. C did not shorten `receipt`, so a
/// completion under C is not held, though the config two back had more.
#[tokio::test(start_paused = true)]
async fn only_the_config_a_reload_replaced_counts() {
    let h = harness(&receipts("", &ONE_STEP.repeat(3)));
    let key = (super::tests::WS.to_string(), "receipt".to_string());
    let b = reloaded(&h.rt, &receipts("", ONE_STEP));
    assert_eq!(b.shortened.get(&key), Some(&3));
    let other = "  - { id: vip, trigger: { tag_added: vip }, actions: [ { add_tag: seen } ] }\n";
    let c_rt = reloaded(&b, &receipts(other, ONE_STEP));
    assert!(c_rt.shortened.is_empty(), "{:?}", c_rt.shortened);
    let gone = reloaded(&h.rt, "connections:\n  mail: { type: log }\n");
    assert_eq!(gone.shortened.get(&key), Some(&3), "a removed sequence counts as shortened");
    let c = h.upsert("buyer@example.com", Default::default(), 1_000).await;
    h.fire(&c, purchase(), 2_000).await;
    assert_eq!(h.tick_under(c_rt, 2_000).await, 1);
    let e = h.enrolment(&c);
    assert_eq!(
        (e.status, e.reason.as_deref()),
        (EnrollmentStatus::Completed, Some("every step ran"))
    );
}

/// A failing `exit_when` counts as false and the step runs; its error is
/// in the step's activity entry, as an automation's failing `when` is.
#[tokio::test]
async fn a_failing_exit_when_is_recorded_with_the_step() {
    let h = harness(&format!(
        "{}    exit_when: 'contact.plan > 2'\n",
        receipts("", &ONE_STEP.repeat(2))
    ));
    let c = h.upsert("buyer@example.com", super::tests::custom(&[("plan", json!("pro"))]), 1).await;
    h.fire(&c, purchase(), 2).await;
    assert_eq!(h.tick(2).await, 2, "both steps run");
    let steps: Vec<Value> =
        h.activity(&c).into_iter().filter(|a| a["kind"] == "sequence_step").collect();
    assert_eq!(steps.len(), 2);
    for s in &steps {
        assert_eq!(s["condition"], false, "{s}");
        let error = s["condition_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("found no matching overload"), "{s}");
        assert!(!error.contains("pro"), "types, never values: {error}");
    }
}

/// 2 contacts due on a sequence of 4 back-to-back deliveries, under a job
/// with a budget of 5: the job stops after 5, the second contact stays due
/// at its next step, and the next job runs the other 3.
#[tokio::test]
async fn a_job_stops_at_its_delivery_budget_and_the_next_carries_on() {
    let h = harness(&receipts("", &ONE_STEP.repeat(4)));
    let (a, b) = (
        h.upsert("a@example.com", Default::default(), 1).await,
        h.upsert("b@example.com", Default::default(), 1).await,
    );
    h.fire(&a, purchase(), 10).await;
    h.fire(&b, purchase(), 10).await;
    let small = |now| Job { left: 5, ..Job::new(h.rt.clone(), now, Grace::default()) };
    assert_eq!(h.tick_job(small(20)).await, 5);
    // Due in contact id order: whichever came first ran all 4, the other 1.
    let (mut done, mut rest) = (a, b);
    if h.enrolment(&done).status == EnrollmentStatus::Active {
        std::mem::swap(&mut done, &mut rest);
    }
    let (ed, er) = (h.enrolment(&done), h.enrolment(&rest));
    assert_eq!((ed.status, ed.step), (EnrollmentStatus::Completed, 4));
    assert_eq!((er.status, er.step, er.due), (EnrollmentStatus::Active, 1, Some(10)), "{er:?}");
    let mut job = small(30);
    let due = h.store.sequence_due(30, 100).unwrap();
    let (effects, cut) =
        h.store.writer().run(move |t| super::worker::run_due(t, &mut job, &due)).await.unwrap();
    assert_eq!((effects.deliveries, cut), (3, false), "the rest, and no more left");
    assert_eq!(h.enrolment(&rest).status, EnrollmentStatus::Completed);
    let act = h.activity(&rest);
    let steps: Vec<&Value> =
        act.iter().filter(|a| a["kind"] == "sequence_step").map(|a| &a["step"]).collect();
    assert_eq!(
        steps,
        [0, 1, 2, 3].map(|i| json!(i)).iter().collect::<Vec<_>>(),
        "none skipped or repeated"
    );
    assert_eq!(Job::new(h.rt.clone(), 0, Grace::default()).left, MAX_STEPS);
}
