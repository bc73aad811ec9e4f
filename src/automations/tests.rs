//! Engine tests on a real store with explicit clocks: every trigger, the
//! worked example, conditions, the loop limit, sequences step by step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contact::Upsert;
use super::engine::{EventFact, Fired, Run};
use super::sequences::{Grace, Job};
use super::service::{ContactError, Who, upsert_in};
use crate::config::automation::TriggerKind;
use crate::config::{CheckOptions, Source};
use crate::gateway::runtime::{self, Runtime};
use crate::store::{ContactRecord, EnrollmentStatus, Store, event_key};
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) const WS: &str = "3f216741-15dd-4e46-b5ac-0077a2640e89";
pub(super) const DAY: u64 = 86_400_000;

pub(super) struct H {
    pub _dir: tempfile::TempDir,
    pub store: Store,
    pub rt: Arc<Runtime>,
}

/// A store and a runtime built from `body` (appended to a workspace header).
pub(super) fn harness(body: &str) -> H {
    let rt = runtime_of(body);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    H { _dir: dir, store, rt: Arc::new(rt) }
}

/// The runtime of `body` (appended to a workspace header), as built now.
pub(super) fn runtime_of(body: &str) -> Runtime {
    let text = format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: mesh_pub_t }}\n{body}"
    );
    let report = crate::config::check_sources(
        &[Source { name: "t.yaml".into(), text }],
        CheckOptions::default(),
    );
    assert_eq!(report.errors(), 0, "{:?}", report.diagnostics);
    let lookup = |_: &str| Some("secret-value".to_string());
    let client = reqwest::Client::new();
    runtime::build(&report.configs, 1, "h".into(), 0, &lookup, &client, None).unwrap()
}

/// The runtime of `body` as a reload puts it in force after `before`.
pub(super) fn reloaded(before: &Runtime, body: &str) -> Arc<Runtime> {
    let mut rt = runtime_of(body);
    rt.note_shortened(before);
    Arc::new(rt)
}

/// The 400 a refused contact change answers: `(param, message)`.
pub(super) fn invalid(r: Result<ContactRecord, ContactError>) -> (String, String) {
    match r {
        Err(ContactError::Invalid(param, msg)) => (param, msg),
        other => panic!("expected a 400, got {other:?}"),
    }
}

impl H {
    /// Upserts by `who`, refusals included.
    pub(super) async fn upsert_who(
        &self,
        who: Who,
        u: Upsert,
    ) -> Result<ContactRecord, ContactError> {
        let rt = self.rt.clone();
        let r = self
            .store
            .writer()
            .run(move |t| upsert_in(t, rt.workspace(WS).unwrap(), 5, &who, &u, 0))
            .await
            .unwrap();
        r.map(|((c, _), _)| c)
    }

    pub async fn upsert(&self, email: &str, u: Upsert, now: u64) -> ContactRecord {
        let rt = self.rt.clone();
        let who = Who { external_id: None, email: Some(email.into()) };
        let r = self
            .store
            .writer()
            .run(move |t| upsert_in(t, rt.workspace(WS).unwrap(), now, &who, &u, 0))
            .await
            .unwrap();
        r.unwrap().0.0
    }

    pub async fn fire(&self, c: &ContactRecord, f: Fired, now: u64) -> ContactRecord {
        let (rt, c) = (self.rt.clone(), c.clone());
        self.store
            .writer()
            .run(move |t| {
                let stored = t.contact(event_key(&c.id).unwrap())?;
                let mut run = Run::new(t, rt.workspace(WS).unwrap(), now, stored.clone(), stored);
                run.fire(f);
                Ok(run.finish()?.0.unwrap())
            })
            .await
            .unwrap()
    }

    /// Runs every sequence step due at `now`.
    pub async fn tick(&self, now: u64) -> usize {
        self.tick_job(Job::new(self.rt.clone(), now, Grace::default())).await
    }

    /// [`H::tick`] under `rt` (see [`reloaded`]), with what is left of its
    /// cancellation grace.
    pub async fn tick_under(&self, rt: Arc<Runtime>, now: u64) -> usize {
        let grace = Grace { left: crate::delivery::route::grace_left(&rt) };
        self.tick_job(Job::new(rt, now, grace)).await
    }

    /// Runs one job over every sequence step due at its time.
    pub async fn tick_job(&self, mut job: Job) -> usize {
        let due = self.store.sequence_due(job.now, 100).unwrap();
        let run = move |t: &mut crate::store::Tables<'_>| super::worker::run_due(t, &mut job, &due);
        self.store.writer().run(run).await.unwrap().0.deliveries
    }

    /// (event type, rule id, created_at) of every event, oldest first.
    pub fn deliveries(&self) -> Vec<(String, String, u64)> {
        let page = self.store.list(WS, &Default::default(), None, 200, &|_, _| false).unwrap();
        let mut out: Vec<_> = page
            .records
            .iter()
            .flat_map(|v| {
                v.rule_events
                    .iter()
                    .map(|r| (v.event.event.clone(), r.rule_id.clone(), v.event.created_at))
            })
            .collect();
        out.reverse();
        out
    }

    pub fn activity(&self, c: &ContactRecord) -> Vec<Value> {
        let page = self.store.activity(event_key(&c.id).unwrap(), None, 200).unwrap();
        page.records.iter().rev().map(|a| serde_json::to_value(a).unwrap()).collect()
    }
}

pub(super) fn custom(pairs: &[(&str, Value)]) -> Upsert {
    let mut u = Upsert::default();
    for (k, v) in pairs {
        u.custom_fields.insert((*k).to_string(), v.clone());
    }
    u
}

pub(super) const WORKED: &str = r#"
connections:
  email: { type: log }
  crm: { type: log }
automations:
  - id: upgrade-to-pro
    trigger: contact_updated
    when: 'changes.plan.from == "free" && changes.plan.to != "free"'
    actions:
      - { remove_tag: free-plan }
      - { add_tag: paying-customer }
      - { enroll: welcome-pro }
  - id: tag-crm
    trigger: { tag_added: paying-customer }
    actions:
      - notify: { connection: crm, metadata: { action: log } }
sequences:
  welcome-pro:
    steps:
      - { connection: email, metadata: { action: log } }
      - { wait: 3d }
      - { connection: email, metadata: { action: log } }
    exit_when: 'contact.tags.exists(t, t == "activated")'
"#;

/// A delivery id without its fingerprint, which must be there.
fn positional(id: &str) -> String {
    let (head, fp) = id.rsplit_once(':').unwrap();
    assert_eq!(fp.len(), 16, "{id}");
    head.to_string()
}

#[tokio::test]
async fn worked_example_free_to_pro() {
    let h = harness(WORKED);
    let mut u = custom(&[("plan", json!("free"))]);
    u.tag_names = vec!["free-plan".into()];
    let c = h.upsert("ada@example.com", u, 1_000).await;
    assert_eq!(c.tags, ["free-plan"]);
    assert!(h.deliveries().is_empty(), "creation is not an upgrade");
    let c = h.upsert("ADA@example.com", custom(&[("plan", json!("pro"))]), 2_000).await;
    assert_eq!(c.tags, ["paying-customer"]);
    let e = h.store.enrollments(event_key(&c.id).unwrap()).unwrap();
    assert_eq!(
        (e[0].sequence.as_str(), e[0].status, e[0].due),
        ("welcome-pro", EnrollmentStatus::Active, Some(2_000))
    );
    // tag_added fired the CRM notification in the same transaction.
    let notified: Vec<_> =
        h.deliveries().into_iter().map(|(e, id, at)| (e, positional(&id), at)).collect();
    assert_eq!(notified, [("contact.tag_added".into(), "@automation:tag-crm:0".into(), 2_000)]);
    let runs: Vec<(Value, Value)> = h
        .activity(&c)
        .iter()
        .filter(|a| a["automation"] == "upgrade-to-pro" && a["condition"] == true)
        .map(|a| (a["trigger"]["kind"].clone(), a["actions"].clone()))
        .collect();
    assert_eq!(runs.len(), 1);
    let outcomes: Vec<&str> =
        runs[0].1.as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["done", "done", "done"]);
    // The sequence: first email now, the second after three days, not before.
    assert_eq!(h.tick(2_000).await, 1);
    assert_eq!(h.tick(2_000 + 3 * DAY - 1).await, 0);
    assert_eq!(h.tick(2_000 + 3 * DAY).await, 1);
    let seq: Vec<(String, u64)> = h
        .deliveries()
        .into_iter()
        .filter(|d| d.0 == "sequence.welcome-pro")
        .map(|d| (positional(&d.1), d.2))
        .collect();
    assert_eq!(
        seq,
        [
            ("@sequence:welcome-pro:0".into(), 2_000),
            ("@sequence:welcome-pro:2".into(), 2_000 + 3 * DAY)
        ]
    );
    let e = h.store.enrollments(event_key(&c.id).unwrap()).unwrap();
    assert_eq!(e[0].status, EnrollmentStatus::Completed);
    assert_eq!(h.tick(10 * DAY).await, 0, "nothing repeats");
}

#[tokio::test]
async fn no_double_enrolment_and_exit_when() {
    let h = harness(WORKED);
    let c = h.upsert("b@example.com", custom(&[("plan", json!("free"))]), 0).await;
    h.upsert("b@example.com", custom(&[("plan", json!("pro"))]), 10).await;
    h.upsert("b@example.com", custom(&[("plan", json!("free"))]), 20).await;
    let c2 = h.upsert("b@example.com", custom(&[("plan", json!("team"))]), 30).await;
    let act = h.activity(&c2);
    let enroll: Vec<&Value> = act
        .iter()
        .flat_map(|a| a["actions"].as_array().unwrap())
        .filter(|o| o["action"] == "enroll")
        .collect();
    assert_eq!(enroll.len(), 2);
    assert_eq!(enroll[1]["outcome"], "no_change");
    assert_eq!(enroll[1]["detail"], "already enrolled");
    assert_eq!(h.tick(30).await, 1);
    // Activated during the wait: the contact leaves before the next step.
    let u = Upsert { tag_names: vec!["activated".into()], ..Upsert::default() };
    h.upsert("b@example.com", u, 40).await;
    assert_eq!(h.tick(30 + 3 * DAY).await, 0);
    let e = h.store.enrollments(event_key(&c.id).unwrap()).unwrap();
    assert_eq!(
        (e[0].status, e[0].reason.as_deref()),
        (EnrollmentStatus::Exited, Some("exit_when held"))
    );
}

#[tokio::test]
async fn suppressed_contacts_skip_email_steps() {
    let h = harness(
        r#"
connections:
  email: { type: resend, api_key: "${RESEND_API_KEY}", from: "a@b.co" }
  crm: { type: log }
automations:
  - id: start
    trigger: { tag_added: go }
    actions: [ { enroll: drip } ]
sequences:
  drip:
    steps:
      - { connection: email, metadata: { action: send_email_template, id: t1, subject: Hi } }
      - { connection: crm, metadata: { action: log } }
"#,
    );
    let c = h.upsert("s@example.com", Upsert::default(), 0).await;
    let (rt, id) = (h.rt.clone(), c.id.clone());
    h.store
        .writer()
        .run(move |t| {
            let key = event_key(&id).unwrap();
            let old = t.contact(key)?.unwrap();
            let mut c = old.clone();
            c.unsubscribed_at = Some(5);
            c.suppression = Some("bounced".into());
            let _ = &rt;
            t.put_contact(&c, Some(&old))
        })
        .await
        .unwrap();
    h.fire(&c, Fired::new(TriggerKind::TagAdded, Some("go".into()), 0), 10).await;
    assert_eq!(h.tick(10).await, 1, "only the non-email step is delivered");
    let steps: Vec<Value> =
        h.activity(&c).into_iter().filter(|a| a["kind"] == "sequence_step").collect();
    assert_eq!(steps[0]["actions"][0]["outcome"], "skipped");
    assert_eq!(steps[0]["actions"][0]["detail"], "contact is suppressed (bounced)");
    assert_eq!(steps[1]["actions"][0]["outcome"], "done");
}

#[tokio::test]
async fn loops_stop_at_the_depth_limit_and_say_so() {
    let h = harness(
        r#"
connections:
  crm: { type: log }
automations:
  - id: ping
    trigger: { tag_added: ping }
    actions: [ { remove_tag: pong }, { add_tag: pong } ]
  - id: pong
    trigger: { tag_added: pong }
    actions: [ { remove_tag: ping }, { add_tag: ping } ]
"#,
    );
    let u = Upsert { tag_names: vec!["ping".into()], ..Upsert::default() };
    let c = h.upsert("loop@example.com", u, 0).await;
    let act = h.activity(&c);
    let cut: Vec<&Value> = act.iter().filter(|a| a["kind"] == "loop_limit").collect();
    assert_eq!(cut.len(), 1, "{act:#?}");
    assert_eq!(cut[0]["depth"], super::engine::MAX_DEPTH);
    assert!(cut[0]["note"].as_str().unwrap().contains("loop"));
}

#[tokio::test]
async fn every_trigger_fires_its_automations() {
    let h = harness(
        r#"
connections:
  crm: { type: log }
rules:
  - { id: r, event: contact.emitted, connection: crm, metadata: { action: log } }
automations:
  - { id: created, trigger: contact_created, actions: [ { add_tag: new } ] }
  - { id: updated, trigger: { contact_updated: [company] }, when: 'changes.company.to == "Acme"', actions: [ { set_field: { field: custom_fields.welcome, value: "Hi {{contact.first_name}}" } } ] }
  - { id: added, trigger: { tag_added: vip }, actions: [ { emit: { event: contact.emitted, payload: { who: "{{contact.email}}" } } } ] }
  - { id: removed, trigger: { tag_removed: vip }, actions: [ { add_tag: was-vip } ] }
  - { id: custom, trigger: { custom_event: feature_activated }, when: 'event.properties.feature == "export"', actions: [ { add_tag: exporter } ] }
  - { id: enrolled, trigger: { sequence_enrolled: drip }, actions: [ { add_tag: dripping } ] }
  - { id: on-event, trigger: { event: contact.emitted }, actions: [ { add_tag: emitted }, { enroll: drip } ] }
sequences:
  drip:
    steps: [ { wait: 1d } ]
"#,
    );
    let mut u = Upsert::default();
    u.fields.insert("first_name", json!("Ada"));
    let c = h.upsert("t@example.com", u, 0).await;
    assert_eq!(c.tags, ["new"]);
    let c = h.upsert("t@example.com", custom(&[("company", json!("Acme"))]), 1).await;
    assert_eq!(c.custom_fields["welcome"], "Hi Ada");
    let u = Upsert { tag_names: vec!["vip".into()], ..Upsert::default() };
    let c = h.upsert("t@example.com", u, 2).await;
    assert_eq!(c.tags, ["dripping", "emitted", "new", "vip"]);
    let emitted: Vec<_> = h.deliveries().into_iter().filter(|d| d.0 == "contact.emitted").collect();
    assert_eq!(emitted.len(), 1, "the emitted event was routed by rule `r`");
    let mut f = Fired::new(TriggerKind::CustomEvent, Some("feature_activated".into()), 0);
    f.event = Some(EventFact {
        name: "feature_activated".into(),
        properties: json!({"feature": "csv"}),
        id: None,
    });
    let c = h.fire(&c, f.clone(), 3).await;
    assert!(!c.has_tag("exporter"), "condition false");
    f.event = Some(EventFact {
        name: "feature_activated".into(),
        properties: json!({"feature": "export"}),
        id: None,
    });
    let c = h.fire(&c, f, 4).await;
    assert!(c.has_tag("exporter"));
    let (rt, id) = (h.rt.clone(), c.id.clone());
    let c = h
        .store
        .writer()
        .run(move |t| {
            let key = event_key(&id).unwrap();
            let stored = t.contact(key)?;
            let mut edited = stored.clone().unwrap();
            let mut ch = super::contact::Changes::new();
            super::contact::remove_tag(&mut edited, "vip", &mut ch);
            let mut run = Run::new(t, rt.workspace(WS).unwrap(), 5, Some(edited), stored);
            run.fire_changes(ch, 0);
            Ok(run.finish()?.0.unwrap())
        })
        .await
        .unwrap();
    assert!(c.has_tag("was-vip"));
}
