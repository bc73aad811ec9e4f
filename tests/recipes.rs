//! `examples/automations.yaml`, run as written on the real binary: the
//! worked example and the four recipes, driven over HTTP only, with a
//! receiver standing in for Resend (email) and Slack (team alerts).
//! Waits in the example are days long; what each step does right away and
//! the due time of the next one are checked, and a SIGKILL in the middle
//! repeats nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use meshes::api::auth::mint_jwt;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const ACCESS_KEY: &str = "mk_example_automations";
const SECRET_KEY: &str = "recipes-secret-key-0001";
const PUBLISHABLE: &str = "mesh_pub_example_automations_6x3q";
const DAY_MS: i64 = 86_400_000;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let jwt = mint_jwt(ACCESS_KEY, SECRET_KEY.as_bytes(), now_secs(), 60);
        let mut req =
            self.http.request(method, format!("{}/api/v1{path}", self.base)).bearer_auth(jwt);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }
    async fn upsert(&self, body: Value) -> Value {
        let (status, v) = self.call(reqwest::Method::POST, "/contacts/upsert", Some(body)).await;
        assert!(status == 200 || status == 201, "{status} {v}");
        v["contact"].clone()
    }
    async fn track(&self, email: &str, event: &str) {
        let body =
            json!({"event_name": event, "email": email, "properties": {"feature": "export"}});
        let (status, v) = self.call(reqwest::Method::POST, "/events/track", Some(body)).await;
        assert_eq!(status, 202, "{v}");
    }
    async fn contact(&self, id: &str) -> Value {
        let (status, v) = self.call(reqwest::Method::GET, &format!("/contacts/{id}"), None).await;
        assert_eq!(status, 200, "{v}");
        v["contact"].clone()
    }
}

fn tags(c: &Value) -> Vec<&str> {
    c["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect()
}

/// (status, next step due in ms from now) of an enrolment.
fn enrolment(c: &Value, seq: &str) -> (String, Option<i64>) {
    let e = c["enrollments"].as_array().unwrap().iter().find(|e| e["sequence"] == seq);
    let e = e.unwrap_or_else(|| panic!("no enrolment in {seq}: {c}"));
    let due = e["next_step_at"].as_str().and_then(meshes::clock::parse_rfc3339);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = now.as_millis() as i64;
    (e["status"].as_str().unwrap().to_string(), due.map(|d| d as i64 - now))
}

/// Template ids of the emails the stand-in Resend received, in order.
fn emails(rx: &Receiver) -> Vec<(String, String)> {
    rx.seen()
        .iter()
        .filter(|s| s.uri.ends_with("/resend/emails"))
        .map(|s| {
            let b: Value = serde_json::from_slice(&s.body).unwrap();
            let to = b["to"].as_array().and_then(|a| a.first()).unwrap_or(&b["to"]);
            (
                b["template"]["id"].as_str().unwrap().to_string(),
                to.as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn wait_emails(rx: &Receiver, n: usize) -> Vec<(String, String)> {
    eventually(&format!("{n} email(s)"), Duration::from_secs(15), || async {
        let e = emails(rx);
        (e.len() >= n).then_some(e)
    })
    .await
}

fn start(dir: &std::path::Path, rx: &Receiver) -> Server {
    let example = std::fs::read_to_string("examples/automations.yaml").unwrap();
    let config = example.replace(
        "    api_key: ${RESEND_API_KEY}\n",
        &format!("    api_key: ${{RESEND_API_KEY}}\n    base_url: {}/resend\n", rx.url),
    );
    assert_ne!(config, example, "the example's email connection changed shape");
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(config_path(dir), config).unwrap();
    let slack = format!("{}/slack", rx.url);
    let env = [
        ("MESHES_SECRET_KEY", SECRET_KEY),
        ("RESEND_API_KEY", "re_test_recipes_key"),
        ("SLACK_WEBHOOK_URL", slack.as_str()),
    ];
    Server::spawn_with(dir, &config_path(dir), &[], &env, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_recipes_run_as_written() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &rx);
    let api = Api { base: server.base.clone(), http: reqwest::Client::new() };

    // signup-onboarding: a new contact is tagged and gets the day-0 email.
    let ada = api.upsert(json!({"external_id": "u-1", "email": "ada@example.com", "first_name": "Ada", "custom_fields": {"plan": "free"}})).await;
    let id = ada["id"].as_str().unwrap().to_string();
    assert_eq!(tags(&ada), ["free-plan"]);
    assert_eq!(wait_emails(&rx, 1).await, [("onboarding-day-0".into(), "ada@example.com".into())]);
    let (status, due) = enrolment(&api.contact(&id).await, "onboarding");
    assert_eq!(status, "active");
    let due = due.unwrap();
    assert!((2 * DAY_MS - 60_000..=2 * DAY_MS).contains(&due), "day 2 is two days out: {due}");

    // upgrade (the worked example): free → pro swaps the tags and starts welcome-pro.
    let ada = api.upsert(json!({"external_id": "u-1", "custom_fields": {"plan": "pro"}})).await;
    assert_eq!(tags(&ada), ["paying-customer"]);
    assert_eq!(wait_emails(&rx, 2).await[1], ("welcome-pro".into(), "ada@example.com".into()));

    // feature-tips: the tracked event tags and sends the tips email.
    api.track("ada@example.com", "feature_activated").await;
    assert_eq!(wait_emails(&rx, 3).await[2].0, "feature-tips");

    // onboarding-done: leaves the onboarding emails early.
    api.track("ADA@example.com", "onboarding_completed").await;
    let c = api.contact(&id).await;
    assert_eq!(tags(&c), ["activated", "onboarded", "paying-customer"]);
    assert_eq!(enrolment(&c, "onboarding").0, "unenrolled");

    // churn-win-back: cancelled → churned, welcome-pro stopped, win-back waits 7 days first.
    let ada = api
        .upsert(json!({"email": "ada@example.com", "custom_fields": {"plan": "cancelled"}}))
        .await;
    assert_eq!(tags(&ada), ["activated", "churned", "onboarded"]);
    let c = api.contact(&id).await;
    assert_eq!(enrolment(&c, "welcome-pro").0, "unenrolled");
    assert_eq!(enrolment(&c, "win-back").0, "active");
    // Enrolled now; the worker then runs step 0 (the wait) and sets the due time.
    let due = eventually("win-back's wait scheduled", Duration::from_secs(10), || async {
        let (_, due) = enrolment(&api.contact(&id).await, "win-back");
        due.filter(|d| *d > DAY_MS)
    })
    .await;
    assert!((7 * DAY_MS - 60_000..=7 * DAY_MS).contains(&due), "{due}");

    // The plain rule beside them: a cancellation event reaches the team channel.
    let resp = api
        .http
        .post(format!("{}/api/v1/events", server.base))
        .header("x-meshes-publishable-key", PUBLISHABLE)
        .json(&json!({"event": "subscription.cancelled", "payload": {"email": "ada@example.com", "reason": "too expensive"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let slack = eventually("the Slack alert", Duration::from_secs(15), || async {
        rx.seen().into_iter().find(|s| s.uri.ends_with("/slack"))
    })
    .await;
    let text: Value = serde_json::from_slice(&slack.body).unwrap();
    assert_eq!(text["text"], "ada@example.com cancelled (too expensive)");

    // Every run is in the activity log, with its condition's result.
    let (_, activity) =
        api.call(reqwest::Method::GET, &format!("/contacts/{id}/activity?limit=200"), None).await;
    let ran = |auto: &str| {
        activity["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["automation"] == auto && a["condition"] != false)
    };
    for auto in
        ["signup-onboarding", "upgrade", "feature-tips", "onboarding-done", "churn-win-back"]
    {
        assert!(ran(auto), "{auto} is not in the activity log: {activity}");
    }

    // SIGKILL and restart: nothing is sent again; a new contact still works.
    // (Killed once every delivery is recorded: an attempt cut off before its
    // record commits is sent again by design, with the same Idempotency-Key.)
    eventually("every delivery recorded", Duration::from_secs(15), || async {
        let (_, page) = api.call(reqwest::Method::GET, "/events?limit=200", None).await;
        let records = page["records"].as_array()?;
        records.iter().all(|e| e["status"] == "completed").then_some(())
    })
    .await;
    server.kill();
    let server = start(dir.path(), &rx);
    let api = Api { base: server.base.clone(), http: reqwest::Client::new() };
    api.upsert(json!({"email": "bob@example.com", "custom_fields": {"plan": "free"}})).await;
    let sent = wait_emails(&rx, 4).await;
    assert_eq!(sent[3], ("onboarding-day-0".into(), "bob@example.com".into()));
    let ada_sent: Vec<&str> =
        sent.iter().filter(|e| e.1 == "ada@example.com").map(|e| e.0.as_str()).collect();
    assert_eq!(ada_sent, ["onboarding-day-0", "welcome-pro", "feature-tips"]);
    drop(server);
}
