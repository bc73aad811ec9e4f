//! A connection's rate limit counts HTTP requests: an attempt whose flow
//! sends three requests (ActiveCampaign `add_tag`: sync, read the tag rows,
//! add the row) spends three turns of the budget, not one.

use crate::fake::*;
use meshes::adapters::limits::{RequestBudget, paced};
use meshes::config::duration::Duration as Window;
use meshes::config::model::RateLimit;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const KEY: &str = "ac-secret-api-key";

fn api(e: Expect) -> Expect {
    e.header("api-token", KEY).header("accept", "application/json")
}

async fn add_tag_in_three_requests(fake: &Fake) {
    let sync = api(Expect::new("POST", "/api/3/contact/sync").json(json!({
        "contact": {"firstName": "Ada", "lastName": "Lovelace", "phone": "+441234", "email": "Ada@Example.com"}
    })));
    let synced = json!({"contact": {"id": "113", "email": "ada@example.com"}});
    fake.expect(sync, ResponseTemplate::new(201).set_body_json(synced)).await;
    let rows = json!({"contactTags": [{"id": "54", "tag": "3", "contact": "113"}]});
    let read = api(Expect::new("GET", "/api/3/contacts/113/contactTags"));
    fake.expect(read, ResponseTemplate::new(200).set_body_json(rows)).await;
    let add = api(Expect::new("POST", "/api/3/contactTags")
        .json(json!({"contactTag": {"contact": "113", "tag": "7"}})));
    fake.expect(add, ResponseTemplate::new(201).set_body_json(json!({"contactTag": {"id": "56"}})))
        .await;
}

#[tokio::test]
async fn an_attempt_spends_one_turn_per_request_it_sends() {
    let fake = Fake::start().await;
    add_tag_in_three_requests(&fake).await;
    let yaml = "type: activecampaign\napi_url: ${AC_URL}\napi_key: ${AC_KEY}\n";
    let ac = adapter(yaml, &[("AC_URL", &fake.uri()), ("AC_KEY", KEY)]);
    // Three requests per three hours: a burst of three, then one an hour.
    // The real clock (real sockets) never waits here; what is left is checked.
    let limit = RateLimit { requests: 3, per: Window::from_millis(3 * 3_600_000) };
    let budget = Arc::new(RequestBudget::new(&limit).unwrap());
    // As the engine does: the first turn before the attempt, the rest per request.
    budget.take().await;
    let d = delivery(json!({"action": "add_tag", "id": 7}), person());
    assert_delivered(&paced(budget.clone(), true, deliver(&ac, &d)).await.0);
    let hour = Duration::from_secs(3_600);
    let wait = budget.wait_now();
    assert!(wait > hour - Duration::from_secs(60) && wait <= hour, "all three spent: {wait:?}");
}
