//! Slack: incoming webhook and `chat.postMessage`.

use crate::fake::*;
use meshes::config::model::Outcome;
use serde_json::json;
use std::time::Duration;
use wiremock::ResponseTemplate;

const HOOK_PATH: &str = "/services/T000/B000/hooksecret123";

fn webhook(fake: &Fake) -> std::sync::Arc<dyn meshes::adapters::adapter::Adapter> {
    let url = format!("{}{HOOK_PATH}", fake.uri());
    adapter("type: slack\nwebhook_url: ${SLACK_URL}\n", &[("SLACK_URL", &url)])
}

fn bot(fake: &Fake) -> std::sync::Arc<dyn meshes::adapters::adapter::Adapter> {
    let yaml = format!("type: slack\nbot_token: ${{SLACK_TOKEN}}\nbase_url: {}/api\n", fake.uri());
    adapter(&yaml, &[("SLACK_TOKEN", "xoxb-secret-token")])
}

fn message(id: Option<&str>) -> meshes::adapters::adapter::Delivery {
    let mut meta = json!({"action": "send_message", "template": ":wave: {{payload.name}} ({{payload.email}}) on {{payload.plan}}"});
    if let Some(id) = id {
        meta["id"] = json!(id);
    }
    delivery(meta, json!({"name": "Ada", "email": "ada@example.com"}))
}

fn hook_post() -> Expect {
    Expect::new("POST", HOOK_PATH)
        .json(json!({"text": ":wave: Ada (ada@example.com) on "}))
        .absent("authorization")
}

fn bot_post() -> Expect {
    Expect::new("POST", "/api/chat.postMessage")
        .header("authorization", "Bearer xoxb-secret-token")
        .json(json!({"channel": "C0123", "text": ":wave: Ada (ada@example.com) on ", "unfurl_links": false}))
        .header("content-type", "application/json; charset=utf-8")
}

#[tokio::test]
async fn webhook_posts_the_rendered_template() {
    let fake = Fake::start().await;
    fake.expect(hook_post(), ResponseTemplate::new(200).set_body_string("ok")).await;
    assert_delivered(&deliver(&webhook(&fake), &message(None)).await);
}

#[tokio::test]
async fn webhook_errors_are_classified_without_leaking_the_url() {
    let fake = Fake::start().await;
    fake.expect(hook_post(), ResponseTemplate::new(404).set_body_string("no_service")).await;
    let r = deliver(&webhook(&fake), &message(None)).await;
    assert_permanent(&r, Outcome::RejectedClientError, "no_service");
    assert_eq!(r.http_status, Some(404));
    assert_no_secret(&r, "hooksecret123");
}

#[tokio::test]
async fn webhook_throttling_honours_retry_after() {
    let fake = Fake::start().await;
    fake.expect(hook_post(), ResponseTemplate::new(429).insert_header("retry-after", "7")).await;
    assert_retry(
        &deliver(&webhook(&fake), &message(None)).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(7)),
    );
}

#[tokio::test]
async fn webhook_server_errors_are_retried() {
    let fake = Fake::start().await;
    fake.expect(hook_post(), ResponseTemplate::new(500).set_body_string("rollup_error")).await;
    assert_retry(
        &deliver(&webhook(&fake), &message(None)).await,
        Outcome::RejectedServerError,
        None,
    );
}

#[tokio::test]
async fn a_timeout_is_not_retried_so_the_message_is_never_posted_twice() {
    let fake = Fake::start().await;
    let slow = ResponseTemplate::new(200).set_body_string("ok").set_delay(Duration::from_secs(10));
    fake.expect(hook_post(), slow).await;
    let r = webhook(&fake).deliver(&message(None), Duration::from_millis(300)).await;
    assert_permanent(&r, Outcome::Timeout, "not retried automatically");
}

#[tokio::test]
async fn bot_posts_to_the_rule_channel() {
    let fake = Fake::start().await;
    let ok = json!({"ok": true, "channel": "C0123", "ts": "1.2"});
    fake.expect(bot_post(), ResponseTemplate::new(200).set_body_json(ok)).await;
    assert_delivered(&deliver(&bot(&fake), &message(Some("C0123"))).await);
}

#[tokio::test]
async fn bot_ok_false_is_an_error_despite_http_200() {
    let fake = Fake::start().await;
    let answer =
        |e: &str| ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": e}));
    fake.expect(bot_post(), answer("channel_not_found")).await;
    let r = deliver(&bot(&fake), &message(Some("C0123"))).await;
    assert_permanent(&r, Outcome::RejectedClientError, "channel_not_found");
    fake.server.reset().await;

    let fake = Fake::start().await;
    fake.expect(bot_post(), answer("invalid_auth")).await;
    let r = deliver(&bot(&fake), &message(Some("C0123"))).await;
    assert_permanent(&r, Outcome::AuthFailed, "invalid_auth");
    assert_no_secret(&r, "xoxb-secret-token");
}

#[tokio::test]
async fn bot_internal_errors_are_retried_once_only() {
    let fake = Fake::start().await;
    let answer =
        ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": "internal_error"}));
    fake.expect_n(bot_post(), answer, 2).await;
    let a = bot(&fake);
    let mut d = message(Some("C0123"));
    assert_retry(&deliver(&a, &d).await, Outcome::RejectedServerError, None);
    d.attempt = 2;
    assert_permanent(&deliver(&a, &d).await, Outcome::RejectedClientError, "internal_error");
}

#[tokio::test]
async fn bot_rate_limits_honour_retry_after() {
    let fake = Fake::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "30")
        .set_body_json(json!({"ok": false, "error": "ratelimited"}));
    fake.expect(bot_post(), limited).await;
    assert_retry(
        &deliver(&bot(&fake), &message(Some("C0123"))).await,
        Outcome::RateLimited,
        Some(Duration::from_secs(30)),
    );
}

#[tokio::test]
async fn bot_without_a_channel_is_a_mapping_error_and_sends_nothing() {
    let fake = Fake::start().await;
    assert_permanent(
        &deliver(&bot(&fake), &message(None)).await,
        Outcome::MappingError,
        "metadata.id",
    );
}

#[tokio::test]
async fn bad_webhook_urls_fail_the_build_without_echoing_them() {
    let err =
        try_adapter("type: slack\nwebhook_url: ${U}\n", &[("U", "hooks.slack.com/secretpath")])
            .unwrap_err();
    assert!(err.contains("webhook_url") && !err.contains("secretpath"), "{err}");
}

fn channels(cursor: Option<&str>) -> Expect {
    let e = Expect::new("GET", "/api/conversations.list")
        .header("authorization", "Bearer xoxb-secret-token")
        .query("types", "public_channel,private_channel")
        .query("exclude_archived", "true")
        .query("limit", "200");
    match cursor {
        Some(c) => e.query("cursor", c),
        None => e,
    }
}

#[tokio::test]
async fn discover_pages_channels_by_cursor_for_a_bot() {
    let fake = Fake::start().await;
    let p1 = json!({"ok": true, "channels": [{"id": "C1", "name": "general", "is_private": false}],
        "response_metadata": {"next_cursor": "dGVhbTpDMg=="}});
    let p2 = json!({"ok": true, "channels": [{"id": "C2", "name": "sales", "is_private": true}],
        "response_metadata": {"next_cursor": ""}});
    fake.expect(channels(None), ResponseTemplate::new(200).set_body_json(p1)).await;
    fake.expect(channels(Some("dGVhbTpDMg==")), ResponseTemplate::new(200).set_body_json(p2)).await;
    let got = discover(&bot(&fake)).await.unwrap();
    assert_eq!(got, rows(&[("channel", "C1", "general"), ("channel", "C2", "sales")]));
}

#[tokio::test]
async fn discover_reports_ok_false_and_needs_a_bot_token() {
    let fake = Fake::start().await;
    let refused = json!({"ok": false, "error": "missing_scope"});
    fake.expect(channels(None), ResponseTemplate::new(200).set_body_json(refused)).await;
    let err = discover(&bot(&fake)).await.unwrap_err();
    assert!(err.contains("missing_scope") && !err.contains("xoxb-secret-token"), "{err}");
    let err = discover(&webhook(&fake)).await.unwrap_err();
    assert!(err.contains("bot_token") && !err.contains("hooksecret123"), "{err}");
}

/// Payload values are escaped (`&`, `<`, `>`) so an event cannot mention
/// people or mask a link; the template's own `<!here>` is the author's
/// and stays a mention. Both modes send the same text.
#[tokio::test]
async fn payload_values_are_escaped_but_the_template_is_not() {
    let text =
        "<!here> New: Ada &lt;@U123&gt; &amp; &lt;!channel&gt; via &lt;https://evil|Click here&gt;";
    let meta = json!({"action": "send_message", "id": "C0123",
                      "template": "<!here> New: {{payload.name}} via {{payload.site}}"});
    let payload = json!({"name": "Ada <@U123> & <!channel>", "site": "<https://evil|Click here>"});
    let fake = Fake::start().await;
    let hook = Expect::new("POST", HOOK_PATH).json(json!({"text": text}));
    fake.expect(hook, ResponseTemplate::new(200).set_body_string("ok")).await;
    assert_delivered(&deliver(&webhook(&fake), &delivery(meta.clone(), payload.clone())).await);

    let fake = Fake::start().await;
    let post = Expect::new("POST", "/api/chat.postMessage")
        .json(json!({"channel": "C0123", "text": text, "unfurl_links": false}))
        .header("content-type", "application/json; charset=utf-8");
    fake.expect(post, ResponseTemplate::new(200).set_body_json(json!({"ok": true}))).await;
    assert_delivered(&deliver(&bot(&fake), &delivery(meta, payload)).await);
}
