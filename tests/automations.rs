//! Automations on a running gateway: event triggers through the durable
//! inbox, contacts upserted from events, and a restart in the middle of a
//! sequence that neither skips nor repeats a step. A retrying step email
//! keeps its connection and metadata when steps are inserted before it, and
//! one to a contact who unsubscribed meanwhile is canceled, not sent.

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
    // An event matches by email but never respells it (the sender may hold only the public key).
    let respelled = json!({"event": "user.signup", "payload": {"email": "GRACE@EXAMPLE.COM", "first_name": "G2"}});
    assert_eq!(gw.post_event(respelled).await.0, 201);
    let grace = eventually("the third event's upsert", Duration::from_secs(10), || async {
        let c = shared.store.contact_by_email(WS, "grace@example.com").unwrap().unwrap();
        (c.first_name.as_deref() == Some("G2")).then_some(c)
    })
    .await;
    assert_eq!(grace.email.as_deref(), Some("Grace@Example.com"));
    eventually("the inbox drained", Duration::from_secs(10), || async {
        shared.store.inbox(10).unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(rx.seen().len(), 1);
    gw.stop().await;
}

/// A stand-in Resend at `url/resend` and a `log` connection; `welcome`
/// enrolls each new contact in `drip`, whose `steps` are given.
fn email_config(url: &str, steps: &str) -> String {
    email_config_with(url, "", steps)
}

/// [`email_config`] with more automations (list items), and anything after
/// `steps` in `drip` (an `exit_when`).
fn email_config_with(url: &str, automations: &str, steps: &str) -> String {
    let schedule = format!("[0s{}]", ", 250ms".repeat(30));
    format!(
        "version: 1\nworkspace: {{ id: {WS}, name: t, publishable_key: {PK} }}\n\
         machine_keys: [ {{ access_key: {AK}, secret: {SECRET} }} ]\n\
         connections:\n  email: {{ type: resend, api_key: re_test_key_1, from: a@b.co, base_url: {url}/resend }}\n  \
         audit: {{ type: log }}\n\
         delivery: {{ retry: {{ schedule: {schedule}, jitter: 0 }} }}\n\
         automations:\n  - {{ id: welcome, trigger: contact_created, actions: [ {{ enroll: drip }} ] }}\n\
         {automations}\
         sequences:\n  drip:\n    steps:\n{steps}"
    )
}

const WELCOME: &str = "      - { connection: email, metadata: { action: send_email_template, id: tmpl-welcome, subject: Welcome } }\n";
const AUDIT: &str = "      - { connection: audit, metadata: { action: log } }\n";

/// Creates a contact (so `welcome` enrolls it) and returns its id and the
/// event id and delivery id of the first step's delivery.
async fn enroll_one(gw: &TestGateway, rx: &Receiver) -> (String, String, String) {
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let who = Who { external_id: Some("u-1".into()), email: Some("ada@example.com".into()) };
    let (c, _) = service::upsert(&shared, WS, who, Upsert::default()).await.unwrap();
    rx.wait_for(1).await;
    let page = shared.store.list(WS, &Default::default(), None, 10, &|_, _| false).unwrap();
    assert_eq!(page.records.len(), 1);
    let v = &page.records[0];
    (c.id, v.event.id.clone(), v.rule_events[0].rule_id.clone())
}

/// The attempts of one delivery, through the API (its id goes in the path).
async fn attempts(gw: &TestGateway, event: &str, rule: &str) -> Vec<Value> {
    let (status, body) = gw.get(&format!("/api/v1/events/{event}/rules/{rule}/attempts")).await;
    assert_eq!(status, 200, "{body}");
    body["records"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_step_keeps_its_connection_when_a_step_is_inserted_before_it() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(500));
    let mut gw = TestGateway::start(&email_config(&rx.url, WELCOME)).await;
    let (_, event, rule) = enroll_one(&gw, &rx).await;
    gw.wait_status(&event, "retrying").await;
    // Step 0 is now a `log` step; the pending email is step 1.
    gw.write_config(&email_config(&rx.url, &format!("{AUDIT}{WELCOME}")));
    eventually("the new config", Duration::from_secs(10), || async {
        (gw.get("/readyz").await.1["config"]["version"] == 2).then_some(())
    })
    .await;
    rx.set_default(Reply::Status(200));
    let view = gw.wait_status(&event, "completed").await;
    assert_eq!(
        (&view["rule_events"][0]["connection"], &view["rule_events"][0]["last_http_status"]),
        (&json!("email"), &json!(200))
    );
    let sent = rx.seen();
    let last = body_of(sent.last().unwrap());
    assert!(sent.iter().all(|s| s.uri.ends_with("/resend/emails")), "only emails");
    assert_eq!(
        (&last["template"]["id"], &last["to"]),
        (&json!("tmpl-welcome"), &json!(["ada@example.com"]))
    );
    // Each attempt was one of those requests: none was printed by `audit`.
    let tried = attempts(&gw, &event, &rule).await;
    assert_eq!(tried.len(), sent.len(), "{tried:?}");
    assert!(tried.iter().all(|a| a["http_status"].is_number()), "{tried:?}");
    let page = gw
        .gateway
        .as_ref()
        .unwrap()
        .shared
        .store
        .list(WS, &Default::default(), None, 10, &|_, _| false)
        .unwrap();
    assert_eq!(page.records.len(), 1, "the log step did not run for this enrolment");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_cancels_an_email_that_is_still_retrying() {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(500));
    let mut gw = TestGateway::start(&email_config(&rx.url, WELCOME)).await;
    let (contact, event, rule) = enroll_one(&gw, &rx).await;
    gw.wait_status(&event, "retrying").await;
    let (status, body) = gw.post(&format!("/api/v1/contacts/{contact}/unsubscribe")).await;
    assert_eq!((status, &body["contact"]["unsubscribed"]), (200, &json!(true)), "{body}");
    rx.set_default(Reply::Status(200));
    let view = gw.wait_status(&event, "canceled").await;
    let rec = &view["rule_events"][0];
    let why = rec["last_error"].as_str().unwrap();
    assert!(why.contains("contact is suppressed (unsubscribed)"), "{view}");
    // Every request the provider saw was refused: no email went out.
    let tried = attempts(&gw, &event, &rule).await;
    assert_eq!(tried.len(), rx.seen().len(), "{tried:?}");
    assert!(tried.iter().all(|a| a["http_status"] == 500), "{tried:?}");
    assert_eq!(rec["attempts"], tried.len(), "the cancel is not an attempt");
    gw.stop().await;
}

/// Tags the contact `tag` once its first email is retrying; that email must
/// then end `canceled` with a reason containing `why`, after only refused
/// attempts. `automations` and `steps` as [`email_config_with`] takes them.
async fn left_while_retrying(automations: &str, steps: &str, tag: &str, why: &str) {
    let rx = Receiver::start().await;
    rx.set_default(Reply::Status(500));
    let mut gw = TestGateway::start(&email_config_with(&rx.url, automations, steps)).await;
    let (contact, event, rule) = enroll_one(&gw, &rx).await;
    gw.wait_status(&event, "retrying").await;
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let id = event_key(&contact).unwrap();
    service::add_tags(&shared, WS, id, vec![tag.into()]).await.unwrap();
    rx.set_default(Reply::Status(200));
    let view = gw.wait_status(&event, "canceled").await;
    let rec = &view["rule_events"][0];
    let reason = rec["last_error"].as_str().unwrap();
    assert!(
        reason.contains(why) && reason.ends_with("since this delivery was queued; it is not sent"),
        "{view}"
    );
    let tried = attempts(&gw, &event, &rule).await;
    assert_eq!(tried.len(), rx.seen().len(), "{tried:?}");
    assert!(tried.iter().all(|a| a["http_status"] == 500), "no email went out: {tried:?}");
    assert_eq!(rec["attempts"], tried.len(), "the cancel is not an attempt");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unenrolling_cancels_a_step_email_that_is_still_retrying() {
    let stop = "  - { id: stop, trigger: { tag_added: stop }, actions: [ { unenroll: drip } ] }\n";
    let steps = format!("{WELCOME}      - {{ wait: 1h }}\n{WELCOME}");
    left_while_retrying(stop, &steps, "stop", "the contact left sequence `drip` (unenroll action)")
        .await;
}

/// `exit_when` is checked before each step, and the contact leaves at the
/// next one (an hour away here); the email of the step before, still
/// retrying, is not sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_exit_when_cancels_a_step_email_that_is_still_retrying() {
    let steps = format!(
        "{WELCOME}      - {{ wait: 1h }}\n{WELCOME}    exit_when: '\"done\" in contact.tags'\n"
    );
    left_while_retrying("", &steps, "done", "the contact meets the exit_when of sequence `drip`")
        .await;
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
