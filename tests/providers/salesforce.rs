//! Salesforce: refresh-token OAuth with the token's `instance_url`, SOQL
//! lookups, Lead creation, campaign members and field updates.

use crate::fake::*;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const DATA: &str = "/services/data/v62.0";

/// Two fakes: the login host and the org (the token names the org's URL).
async fn fakes() -> (Fake, Fake) {
    (Fake::start().await, Fake::start().await)
}

fn salesforce(login: &Fake) -> Arc<dyn Adapter> {
    let yaml = format!(
        "type: salesforce\nclient_id: sf-client\nclient_secret: ${{SF_SECRET}}\nrefresh_token: ${{SF_REFRESH}}\nlogin_url: {}\n",
        login.uri()
    );
    adapter(&yaml, &[("SF_SECRET", "sf-client-secret"), ("SF_REFRESH", "sf-refresh-token")])
}

async fn token(login: &Fake, org: &Fake, access: &str, times: u64) {
    let call = Expect::new("POST", "/services/oauth2/token")
        .form("grant_type=refresh_token&refresh_token=sf-refresh-token&client_id=sf-client&client_secret=sf-client-secret");
    let body = json!({"access_token": access, "instance_url": org.uri(), "token_type": "Bearer", "issued_at": "1700000000000"});
    login.expect_n(call, ResponseTemplate::new(200).set_body_json(body), times).await;
}

fn query(q: &str, access: &str) -> Expect {
    Expect::new("GET", &format!("{DATA}/query"))
        .query("q", q)
        .header("authorization", &format!("Bearer {access}"))
}

const CONTACT_Q: &str = "SELECT Id FROM Contact WHERE Email = 'ada@example.com' LIMIT 1";
const LEAD_Q: &str =
    "SELECT Id FROM Lead WHERE Email = 'ada@example.com' AND IsConverted = false LIMIT 1";

fn records(ids: &[&str]) -> ResponseTemplate {
    let list: Vec<Value> =
        ids.iter().map(|id| json!({"attributes": {"type": "X"}, "Id": id})).collect();
    ResponseTemplate::new(200)
        .set_body_json(json!({"totalSize": ids.len(), "done": true, "records": list}))
}

fn member(body: Value) -> Expect {
    Expect::new("POST", &format!("{DATA}/sobjects/CampaignMember"))
        .header("authorization", "Bearer sf-at")
        .json(body)
}

fn rule(meta: Value) -> meshes::adapters::adapter::Delivery {
    delivery(meta, person())
}

fn add() -> meshes::adapters::adapter::Delivery {
    rule(json!({"action": "add_to_campaign", "id": "701xx0000001"}))
}

#[tokio::test]
async fn add_to_campaign_uses_the_contact_on_the_tokens_instance() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    org.expect(query(CONTACT_Q, "sf-at"), records(&["003C1"])).await;
    org.expect(
        member(json!({"CampaignId": "701xx0000001", "ContactId": "003C1"})),
        ResponseTemplate::new(201)
            .set_body_json(json!({"id": "00vM1", "success": true, "errors": []})),
    )
    .await;
    assert_delivered(&deliver(&salesforce(&login), &add()).await);
}

#[tokio::test]
async fn an_unknown_person_becomes_a_lead_and_already_a_member_is_success() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    org.expect(query(CONTACT_Q, "sf-at"), records(&[])).await;
    org.expect(query(LEAD_Q, "sf-at"), records(&[])).await;
    let lead = json!({"FirstName": "Ada", "LastName": "Lovelace", "Company": "[not provided]", "Email": "Ada@Example.com", "Phone": "+441234"});
    let create = Expect::new("POST", &format!("{DATA}/sobjects/Lead"))
        .header("authorization", "Bearer sf-at")
        .json(lead);
    org.expect(
        create,
        ResponseTemplate::new(201)
            .set_body_json(json!({"id": "00QL1", "success": true, "errors": []})),
    )
    .await;
    let dup = json!([{"message": "Already a campaign member.", "errorCode": "DUPLICATE_VALUE", "fields": []}]);
    org.expect(
        member(json!({"CampaignId": "701xx0000001", "LeadId": "00QL1"})),
        ResponseTemplate::new(400).set_body_json(dup),
    )
    .await;
    assert_delivered(&deliver(&salesforce(&login), &add()).await);
}

#[tokio::test]
async fn remove_from_campaign_deletes_the_member_row() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    org.expect(query(CONTACT_Q, "sf-at"), records(&["003C1"])).await;
    let q = "SELECT Id FROM CampaignMember WHERE CampaignId = '701xx0000001' AND (ContactId = '003C1' OR LeadId = '003C1') LIMIT 1";
    org.expect(query(q, "sf-at"), records(&["00vM1"])).await;
    org.expect(
        Expect::new("DELETE", &format!("{DATA}/sobjects/CampaignMember/00vM1"))
            .header("authorization", "Bearer sf-at"),
        ResponseTemplate::new(204),
    )
    .await;
    assert_delivered(
        &deliver(
            &salesforce(&login),
            &rule(json!({"action": "remove_from_campaign", "id": "701xx0000001"})),
        )
        .await,
    );
}

#[tokio::test]
async fn removing_an_unknown_person_is_done() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    org.expect(query(CONTACT_Q, "sf-at"), records(&[])).await;
    org.expect(query(LEAD_Q, "sf-at"), records(&[])).await;
    assert_delivered(
        &deliver(
            &salesforce(&login),
            &rule(json!({"action": "remove_from_campaign", "id": "701xx0000001"})),
        )
        .await,
    );
}

#[tokio::test]
async fn update_property_patches_the_lead() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    org.expect(query(CONTACT_Q, "sf-at"), records(&[])).await;
    org.expect(query(LEAD_Q, "sf-at"), records(&["00QL1"])).await;
    let patch = Expect::new("PATCH", &format!("{DATA}/sobjects/Lead/00QL1"))
        .header("authorization", "Bearer sf-at")
        .json(json!({"Plan__c": "pro"}));
    org.expect(patch, ResponseTemplate::new(204)).await;
    assert_delivered(
        &deliver(
            &salesforce(&login),
            &rule(json!({"action": "update_property", "id": "Plan__c", "value": "pro"})),
        )
        .await,
    );
}

#[tokio::test]
async fn an_invalid_session_refreshes_once() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 2).await;
    let expired =
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
    wiremock::Mock::given(query(CONTACT_Q, "sf-at"))
        .respond_with(ResponseTemplate::new(401).set_body_json(expired))
        .up_to_n_times(1)
        .expect(1)
        .mount(&org.server)
        .await;
    wiremock::Mock::given(query(CONTACT_Q, "sf-at"))
        .respond_with(records(&["003C1"]))
        .expect(1)
        .mount(&org.server)
        .await;
    org.expect(
        member(json!({"CampaignId": "701xx0000001", "ContactId": "003C1"})),
        ResponseTemplate::new(201).set_body_json(json!({"id": "00vM1"})),
    )
    .await;
    assert_delivered(&deliver(&salesforce(&login), &add()).await);
}

#[tokio::test]
async fn the_daily_api_limit_waits_and_validation_is_permanent() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    let limit = json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]);
    org.expect(query(CONTACT_Q, "sf-at"), ResponseTemplate::new(403).set_body_json(limit)).await;
    assert_retry(
        &deliver(&salesforce(&login), &add()).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(3600)),
    );

    let (login, org) = fakes().await;
    token(&login, &org, "sf-at", 1).await;
    org.expect(query(CONTACT_Q, "sf-at"), records(&["003C1"])).await;
    let invalid = json!([{"message": "No such column 'Nope__c' on sobject of type Contact", "errorCode": "INVALID_FIELD"}]);
    let patch = Expect::new("PATCH", &format!("{DATA}/sobjects/Contact/003C1"))
        .json(json!({"Nope__c": "x"}));
    org.expect(patch, ResponseTemplate::new(400).set_body_json(invalid)).await;
    let r = deliver(
        &salesforce(&login),
        &rule(json!({"action": "update_property", "id": "Nope__c", "value": "x"})),
    )
    .await;
    assert_permanent(&r, Outcome::RejectedClientError, "INVALID_FIELD: No such column");
}

#[tokio::test]
async fn a_refused_refresh_is_a_permanent_auth_failure() {
    let login = Fake::start().await;
    let call = Expect::new("POST", "/services/oauth2/token");
    let refused =
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"});
    let call = call.form("grant_type=refresh_token&refresh_token=sf-refresh-token&client_id=sf-client&client_secret=sf-client-secret");
    login.expect(call, ResponseTemplate::new(400).set_body_json(refused)).await;
    let r = deliver(&salesforce(&login), &add()).await;
    assert_permanent(&r, Outcome::AuthFailed, "invalid_grant: expired access/refresh token");
    assert_no_secret(&r, "sf-client-secret");
}

#[tokio::test]
async fn discover_follows_next_records_urls_for_active_campaigns() {
    let (login, org) = fakes().await;
    token(&login, &org, "sf-at-1", 1).await;
    let q = "SELECT Id, Name, Status FROM Campaign WHERE IsActive = true ORDER BY Name";
    let p1 = json!({"totalSize": 2, "done": false, "nextRecordsUrl": format!("{DATA}/query/01gXX-2000"),
        "records": [{"attributes": {"type": "Campaign"}, "Id": "701A", "Name": "Launch", "Status": "In Progress"}]});
    let p2 = json!({"totalSize": 2, "done": true,
        "records": [{"attributes": {"type": "Campaign"}, "Id": "701B", "Name": "Webinar", "Status": "Planned"}]});
    org.expect(query(q, "sf-at-1"), ResponseTemplate::new(200).set_body_json(p1)).await;
    let next = Expect::new("GET", &format!("{DATA}/query/01gXX-2000"))
        .header("authorization", "Bearer sf-at-1");
    org.expect(next, ResponseTemplate::new(200).set_body_json(p2)).await;
    let got = discover(&salesforce(&login)).await.unwrap();
    assert_eq!(got, rows(&[("campaign", "701A", "Launch"), ("campaign", "701B", "Webinar")]));
}
