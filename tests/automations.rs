//! Automations on a running gateway: event triggers through the durable
//! inbox, contacts upserted from events, and a restart in the middle of a
//! sequence that neither skips nor repeats a step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::automations::contact::Upsert;
use meshes::automations::service::{self, Who};
use meshes::store::{EnrollmentStatus, event_key};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

fn config(url: &str, body: &str) -> String {
    mail_config(url, "[0s, 1s]", body)
}

fn body_of(seen: &Seen) -> Value {
    serde_json::from_slice(&seen.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_sequence_neither_skips_nor_repeats_a_step() {
    let rx = Receiver::start().await;
    let cfg = config(
        &rx.url,
        r"
automations:
  - { id: welcome, trigger: contact_created, actions: [ { enroll: drip } ] }
sequences:
  drip:
    steps:
      - { connection: mail, metadata: { action: send_webhook } }
      - { wait: 2s }
      - { connection: mail, metadata: { action: send_webhook } }
",
    );
    let mut gw = TestGateway::start(&cfg).await;
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let who = Who { external_id: Some("u-1".into()), email: Some("ada@example.com".into()) };
    let (c, created) = service::upsert(&shared, WS, who, Upsert::default()).await.unwrap();
    assert!(created);
    rx.wait_for(1).await;
    // Stop once the first step's delivery is recorded, well inside the wait.
    eventually("step 0 recorded as completed", Duration::from_secs(10), || async {
        let page = shared.store.list(WS, &Default::default(), None, 10, &|_, _| false).unwrap();
        page.records
            .iter()
            .all(|v| v.rule_events.iter().all(|r| r.status.is_terminal()))
            .then_some(())
    })
    .await;
    gw.stop().await;
    drop(shared);
    gw.boot().await;
    let seen = rx.wait_for(2).await;
    assert_eq!(seen.len(), 2);
    let ids: Vec<_> = seen.iter().map(|s| s.headers["webhook-id"].clone()).collect();
    assert_ne!(ids[0], ids[1], "two steps, not one step twice");
    // Timed on the gateway's clock: the second step's event was created
    // no earlier than the wait after the first (receiver arrival times
    // would add the first delivery's latency to the comparison).
    let page = gw
        .gateway
        .as_ref()
        .unwrap()
        .shared
        .store
        .list(WS, &Default::default(), None, 10, &|_, _| false)
        .unwrap();
    let created: Vec<u64> = page.records.iter().rev().map(|v| v.event.created_at).collect();
    assert_eq!(created.len(), 2);
    assert!(created[1] - created[0] >= 2_000, "the wait was kept across the restart: {created:?}");
    for s in &seen {
        assert_eq!(body_of(s)["event"], "sequence.drip");
        assert_eq!(body_of(s)["payload"]["email"], "ada@example.com");
        assert_eq!(body_of(s)["payload"]["id"], "u-1");
    }
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let e = eventually("the enrolment completed", Duration::from_secs(10), || async {
        let e = shared.store.enrollments(event_key(&c.id).unwrap()).unwrap();
        (e[0].status == EnrollmentStatus::Completed).then(|| e[0].clone())
    })
    .await;
    assert_eq!(e.step, 3);
    assert_eq!(rx.seen().len(), 2, "nothing sent twice");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_events_drive_event_automations_and_upsert_contacts() {
    let rx = Receiver::start().await;
    let cfg = config(
        &rx.url,
        r#"
contacts: { upsert_from_events: true }
automations:
  - id: signed-up
    trigger: { event: user.signup }
    when: 'event.properties.plan == "pro"'
    actions:
      - { add_tag: signed-up }
      - notify: { connection: mail, metadata: { action: send_webhook } }
"#,
    );
    let mut gw = TestGateway::start(&cfg).await;
    let (status, _) = gw
        .post_event(json!({"event": "user.signup", "payload": {"email": "Grace@Example.com", "first_name": "Grace", "plan": "pro"}}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = gw
        .post_event(json!({"event": "user.signup", "payload": {"email": "linus@example.com", "plan": "free"}}))
        .await;
    assert_eq!(status, 201);
    let seen = rx.wait_for(1).await;
    let body = body_of(&seen[0]);
    assert_eq!(body["event"], "user.signup");
    assert_eq!(body["payload"]["first_name"], "Grace");
    assert_eq!(body["payload"]["properties"]["plan"], "pro");
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let grace = shared.store.contact_by_email(WS, "grace@example.com").unwrap().unwrap();
    assert_eq!(
        (grace.first_name.as_deref(), grace.tags.as_slice()),
        (Some("Grace"), ["signed-up".to_string()].as_slice())
    );
    let linus = eventually("the second event's contact", Duration::from_secs(10), || async {
        shared.store.contact_by_email(WS, "linus@example.com").unwrap()
    })
    .await;
    assert!(linus.tags.is_empty(), "condition false for the free plan");
    eventually("the inbox drained", Duration::from_secs(10), || async {
        shared.store.inbox(10).unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(rx.seen().len(), 1);
    gw.stop().await;
}

/// `upsert_from_events` checks the event's email as the contacts API does:
/// one the API would refuse creates no contact, while the event itself is
/// accepted and delivered as usual; a name the API would refuse is not copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_with_emails_the_api_refuses_create_no_contact() {
    let rx = Receiver::start().await;
    let cfg = config(
        &rx.url,
        r"
contacts: { upsert_from_events: true }
rules:
  - { id: all, event: user.signup, connection: mail, metadata: { action: send_webhook } }
automations:
  - { id: seen, trigger: { event: user.signup }, actions: [ { add_tag: seen } ] }
",
    );
    let mut gw = TestGateway::start(&cfg).await;
    let long = format!("{}@example.com", "a".repeat(300));
    let huge = format!("{}@example.com", "b".repeat(600_000));
    let bad = [" spaced@example.com ".to_string(), long, huge, "@example.com".into()];
    for email in &bad {
        let (status, _) =
            gw.post_event(json!({"event": "user.signup", "payload": {"email": email}})).await;
        assert_eq!(status, 201, "the event itself is accepted");
    }
    let payload =
        json!({"email": "ok@example.com", "first_name": "x".repeat(201), "last_name": "Hopper"});
    let (status, _) = gw.post_event(json!({"event": "user.signup", "payload": payload})).await;
    assert_eq!(status, 201);
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let ok = eventually("the valid event's contact", Duration::from_secs(10), || async {
        shared.store.contact_by_email(WS, "ok@example.com").unwrap()
    })
    .await;
    assert_eq!((ok.first_name, ok.last_name.as_deref()), (None, Some("Hopper")));
    assert_eq!(ok.tags, ["seen"]);
    // Events are handled in order, so the refused ones were handled before.
    for email in &bad {
        assert!(shared.store.contact_by_email(WS, email).unwrap().is_none(), "{}", &email[..20]);
        assert!(shared.store.contact_by_email(WS, email.trim()).unwrap().is_none());
    }
    assert_eq!(rx.wait_for(5).await.len(), 5, "every event was delivered");
    gw.stop().await;
}
