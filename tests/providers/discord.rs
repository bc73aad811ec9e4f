//! Discord: execute webhook (`?wait=true`) and bot channel messages.

use crate::fake::*;
use crate::spec;
use meshes::adapters::adapter::Adapter;
use meshes::config::model::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use wiremock::ResponseTemplate;

const HOOK: &str = "/api/webhooks/112233/hooktoken-secret";
const EXECUTE: &str = "/webhooks/{webhook_id}/{webhook_token}";
const CREATE: &str = "/channels/{channel_id}/messages";

fn webhook(fake: &Fake) -> Arc<dyn Adapter> {
    let url = format!("{}{HOOK}", fake.uri());
    adapter(
        "type: discord\nwebhook_url: ${DISCORD_URL}\nusername: meshes\n",
        &[("DISCORD_URL", &url)],
    )
}

fn bot(fake: &Fake) -> Arc<dyn Adapter> {
    let yaml =
        format!("type: discord\nbot_token: ${{DISCORD_TOKEN}}\nbase_url: {}/api/v10\n", fake.uri());
    adapter(&yaml, &[("DISCORD_TOKEN", "bot-secret-token")])
}

fn message(meta: Value) -> meshes::adapters::adapter::Delivery {
    let mut m = json!({"action": "send_message", "template": "{{payload.name}} ({{payload.email}}) signed up @everyone"});
    m.as_object_mut().unwrap().extend(meta.as_object().unwrap().clone());
    delivery(m, json!({"name": "Ada", "email": "ada@example.com"}))
}

const TEXT: &str = "Ada (ada@example.com) signed up @everyone";

fn execute(body: Value) -> Expect {
    Expect::new("POST", HOOK).query("wait", "true").json(body).absent("authorization")
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"id": "1", "channel_id": "2", "content": TEXT}))
}

#[tokio::test]
async fn webhook_posts_content_with_wait_and_no_mentions() {
    let fake = Fake::start().await;
    let body = json!({"content": TEXT, "allowed_mentions": {"parse": []}, "username": "meshes"});
    fake.expect(execute(body), created()).await;
    assert_delivered(&deliver(&webhook(&fake), &message(json!({}))).await);
    let sent = fake.bodies(HOOK).await;
    spec::check(&spec::load("discord.EXTRACT.json"), "post", EXECUTE, &sent[0]);
}

#[tokio::test]
async fn a_title_makes_an_embed() {
    let fake = Fake::start().await;
    let body = json!({
        "embeds": [{"title": "New signup: Ada", "description": TEXT}],
        "allowed_mentions": {"parse": []}, "username": "meshes"
    });
    fake.expect(execute(body), created()).await;
    assert_delivered(
        &deliver(&webhook(&fake), &message(json!({"title": "New signup: {{payload.name}}"}))).await,
    );
    spec::check(&spec::load("discord.EXTRACT.json"), "post", EXECUTE, &fake.bodies(HOOK).await[0]);
}

#[tokio::test]
async fn long_content_is_cut_to_discords_limit() {
    let fake = Fake::start().await;
    let long = "x".repeat(2500);
    let body = json!({"content": "x".repeat(2000), "allowed_mentions": {"parse": []}, "username": "meshes"});
    fake.expect(execute(body), created()).await;
    assert_delivered(&deliver(&webhook(&fake), &message(json!({"template": long}))).await);
}

#[tokio::test]
async fn throttling_uses_the_header_else_the_body() {
    let fake = Fake::start().await;
    let body = json!({"content": TEXT, "allowed_mentions": {"parse": []}, "username": "meshes"});
    let limited =
        json!({"message": "You are being rate limited.", "retry_after": 1.5, "global": false});
    fake.expect(execute(body), ResponseTemplate::new(429).set_body_json(&limited)).await;
    let r = deliver(&webhook(&fake), &message(json!({}))).await;
    assert_retry(&r, Outcome::RateLimited, Some(Duration::from_millis(1500)));

    let fake = Fake::start().await;
    let body = json!({"content": TEXT, "allowed_mentions": {"parse": []}, "username": "meshes"});
    let with_header =
        ResponseTemplate::new(429).insert_header("retry-after", "3").set_body_json(&limited);
    fake.expect(execute(body), with_header).await;
    assert_retry(
        &deliver(&webhook(&fake), &message(json!({}))).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(3)),
    );
}

#[tokio::test]
async fn a_deleted_webhook_is_permanent_and_the_token_never_shows() {
    let fake = Fake::start().await;
    let body = json!({"content": TEXT, "allowed_mentions": {"parse": []}, "username": "meshes"});
    let gone = json!({"message": "Unknown Webhook (token hooktoken-secret)", "code": 10015});
    fake.expect(execute(body), ResponseTemplate::new(404).set_body_json(gone)).await;
    let r = deliver(&webhook(&fake), &message(json!({}))).await;
    assert_permanent(&r, Outcome::RejectedClientError, "10015: Unknown Webhook");
    assert_no_secret(&r, "hooktoken-secret");
}

#[tokio::test]
async fn webhook_timeouts_are_not_retried() {
    let fake = Fake::start().await;
    let body = json!({"content": TEXT, "allowed_mentions": {"parse": []}, "username": "meshes"});
    fake.expect(execute(body), created().set_delay(Duration::from_secs(10))).await;
    let r = webhook(&fake).deliver(&message(json!({})), Duration::from_millis(300)).await;
    assert_permanent(&r, Outcome::Timeout, "not retried automatically");
}

fn nonce() -> String {
    use sha2::{Digest, Sha256};
    let hex: String =
        Sha256::digest(b"dlv_0193a1b2c3d4e5f6").iter().map(|b| format!("{b:02x}")).collect();
    hex[..25].to_string()
}

fn bot_post() -> Expect {
    Expect::new("POST", "/api/v10/channels/987654/messages").header("authorization", "Bot bot-secret-token").json(json!({
        "content": TEXT, "allowed_mentions": {"parse": []}, "nonce": nonce(), "enforce_nonce": true
    }))
}

#[tokio::test]
async fn bot_posts_with_an_enforced_nonce() {
    let fake = Fake::start().await;
    fake.expect(bot_post(), created()).await;
    assert_delivered(&deliver(&bot(&fake), &message(json!({"id": "987654"}))).await);
    let sent = fake.bodies("/api/v10/channels/987654/messages").await;
    spec::check(&spec::load("discord.EXTRACT.json"), "post", CREATE, &sent[0]);
}

#[tokio::test]
async fn bot_timeouts_retry_because_the_nonce_deduplicates() {
    let fake = Fake::start().await;
    fake.expect(bot_post(), created().set_delay(Duration::from_secs(10))).await;
    let r = bot(&fake).deliver(&message(json!({"id": "987654"})), Duration::from_millis(300)).await;
    assert_retry(&r, Outcome::Timeout, None);
}

#[tokio::test]
async fn bot_auth_failures_are_permanent() {
    let fake = Fake::start().await;
    let unauthorized = json!({"message": "401: Unauthorized", "code": 0});
    fake.expect(bot_post(), ResponseTemplate::new(401).set_body_json(unauthorized)).await;
    let r = deliver(&bot(&fake), &message(json!({"id": "987654"}))).await;
    assert_permanent(&r, Outcome::AuthFailed, "Unauthorized");
    assert_no_secret(&r, "bot-secret-token");
}

#[test]
fn the_spec_check_rejects_bad_bodies() {
    let spec = spec::load("discord.EXTRACT.json");
    assert!(!spec::violations(&spec, "post", EXECUTE, &json!({"content": 5})).is_empty());
}

#[tokio::test]
async fn discover_has_nothing_to_list_and_sends_nothing() {
    let fake = Fake::start().await;
    for a in [webhook(&fake), bot(&fake)] {
        let err = discover(&a).await.unwrap_err();
        assert!(err.contains("no account data to list"), "{err}");
    }
}

/// Every way each integration can be configured (a mode each), pointed at `base`.
fn modes(kind: &str, base: &str) -> Vec<String> {
    let oauth = "client_id: cid\nclient_secret: ${S}\nrefresh_token: ${S}";
    let modes = match kind {
        "activecampaign" => vec![format!("api_url: {base}\napi_key: ${{S}}")],
        "aweber" => vec![format!("{oauth}\nbase_url: {base}")],
        "customer_io" => ["", "\napp_api_key: ${S}"]
            .iter()
            .map(|app| format!("site_id: s1\napi_key: ${{S}}{app}\nbase_url: {base}"))
            .collect(),
        "discord" | "slack" => vec![
            format!("webhook_url: {base}/hook"),
            format!("bot_token: ${{S}}\nbase_url: {base}"),
        ],
        "hubspot" | "intercom" => vec![format!("access_token: ${{S}}\nbase_url: {base}")],
        "log" => vec![String::new()],
        "mailchimp" | "mailerlite" | "resend" | "sendgrid" => {
            vec![format!("api_key: ${{S}}\nbase_url: {base}")]
        }
        "salesforce" => vec![format!("{oauth}\nlogin_url: {base}")],
        "webhook" => vec![format!("url: {base}/hook")],
        "zoom" => {
            vec![format!("account_id: a1\nclient_id: cid\nclient_secret: ${{S}}\nbase_url: {base}")]
        }
        other => panic!("no test configuration for `{other}`: add its modes here"),
    };
    modes.into_iter().map(|m| format!("type: {kind}\n{m}\n")).collect()
}

/// The catalog's `data_source` (what `GET /integrations`, `meshes actions`
/// and `validate --check-remote` offer to list) names account data only
/// where the adapter can list it, in at least one of its modes.
#[tokio::test]
async fn the_catalog_offers_data_sources_exactly_where_adapters_discover() {
    use meshes::adapters::discover::DiscoverError;
    // Any provider call fails: discovery that is attempted is a provider error.
    let down = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    for integration in meshes::catalog::INTEGRATIONS {
        let mut discovers = false;
        for yaml in modes(integration.kind, &down.uri()) {
            let a = adapter(&yaml, &[("S", "secret")]);
            match a.discover().await {
                Err(DiscoverError::Unsupported(_)) => {}
                Err(DiscoverError::Provider(_)) => discovers = true,
                Ok(found) => panic!("{yaml}: discovered {found:?} from a failing provider"),
            }
        }
        let offered: Vec<&str> = integration.actions.iter().filter_map(|a| a.data_source).collect();
        assert_eq!(
            !offered.is_empty(),
            discovers,
            "`{}`: the catalog offers {offered:?}, discovery {}",
            integration.kind,
            if discovers { "lists account data" } else { "has nothing to list" }
        );
    }
}
