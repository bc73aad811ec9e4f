//! Discord: messages through a channel webhook or a bot token.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::http::{Api, Reply, deadline, invalid, metadata_id, parse_url, secret, unknown_action};
use super::{BuildError, Lookup, template};
use crate::config::diagnostic::{Issue, Path};
use crate::config::env::Secret;
use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use serde_json::{Value, json};
use std::time::Duration;

connection_config! {
    no_mapping
    /// A Discord channel webhook, or a bot that posts to channels named in each rule.
    pub struct DiscordConfig {
        /// Channel webhook URL (`https://discord.com/api/webhooks/<id>/<token>`); the URL is the credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub webhook_url: Option<Secret>,
        /// Bot token; each rule then names the channel in `metadata.id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bot_token: Option<Secret>,
        /// Display name that overrides the webhook's (webhook mode); 1 to 80
        /// characters, as Discord refuses every message with another.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(length(min = 1, max = 80))]
        pub username: Option<String>,
    }
}

impl DiscordConfig {
    pub(super) fn check(&self, at: &Path) -> Vec<Issue> {
        super::exactly_one(
            at,
            ("webhook_url", self.webhook_url.is_some()),
            ("bot_token", self.bot_token.is_some()),
        )
    }
}

/// Discord's limit on `content`; longer text is cut rather than refused.
const CONTENT_LIMIT: usize = 2000;
/// Discord's limit on an embed description.
const DESCRIPTION_LIMIT: usize = 4096;

/// Posts rule messages to Discord (runtime of [`DiscordConfig`]).
#[derive(Debug)]
pub struct DiscordAdapter {
    mode: Mode,
    username: Option<String>,
}

#[derive(Debug)]
enum Mode {
    /// Execute webhook: the URL is the credential.
    Webhook(Api),
    /// `POST /channels/{id}/messages` with `Authorization: Bot …`.
    Bot(Api),
}

impl DiscordAdapter {
    /// Resolves the webhook URL or bot token.
    pub fn build(
        cfg: &DiscordConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let mode = match (&cfg.webhook_url, &cfg.bot_token) {
            (Some(url), _) => {
                let url = parse_url("webhook_url", &secret("webhook_url", url, lookup)?)?;
                Mode::Webhook(Api::secret_url(url, client)?)
            }
            (None, Some(token)) => {
                let token = secret("bot_token", token, lookup)?;
                let api =
                    Api::new(cfg.base_url.as_ref(), "https://discord.com/api/v10", lookup, client)?;
                let api = api
                    .redacting(&token)
                    .with_secret_header(AUTHORIZATION, &format!("Bot {token}"))?;
                Mode::Bot(api)
            }
            (None, None) => return Err(invalid("webhook_url", "set `webhook_url` or `bot_token`")),
        };
        Ok(DiscordAdapter { mode, username: cfg.username.clone() })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        if d.metadata.action != "send_message" {
            return Err(unknown_action("discord", &d.metadata.action));
        }
        let deadline = deadline(timeout);
        let mut body = message(d);
        let reply = match &self.mode {
            Mode::Webhook(api) => {
                if let Some(name) = &self.username {
                    body["username"] = json!(name);
                }
                // `wait=true`: Discord answers with the message, so a failure to save is reported.
                let call = api.call(Method::POST, &[]).query("wait", "true").json(&body);
                call.not_idempotent().send(deadline).await?
            }
            Mode::Bot(api) => {
                // A nonce enforced by Discord makes a retry after a timeout return the first message.
                body["nonce"] = json!(nonce(&d.delivery_id));
                body["enforce_nonce"] = json!(true);
                let channel = metadata_id(d)?;
                api.call(Method::POST, &["channels", &channel, "messages"])
                    .json(&body)
                    .send(deadline)
                    .await?
            }
        };
        Ok(classify(&reply))
    }
}

/// `content`, or an embed when the rule has a `title`. Mentions are never
/// parsed: an event payload must not be able to ping `@everyone`.
fn message(d: &Delivery) -> Value {
    let text = match &d.metadata.template {
        Some(t) => template::render(t, &template::context(d)),
        None => format!("{} ({})", d.event, d.event_id),
    };
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    match &d.metadata.title {
        Some(title) => json!({
            "embeds": [{"title": cut(&template::render(title, &template::context(d)), 256),
                        "description": cut(&text, DESCRIPTION_LIMIT)}],
            "allowed_mentions": {"parse": []},
        }),
        None => json!({"content": cut(&text, CONTENT_LIMIT), "allowed_mentions": {"parse": []}}),
    }
}

/// A 25-character nonce derived from the delivery id (Discord's maximum).
fn nonce(delivery_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(delivery_id.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect::<String>()[..25].to_string()
}

/// Default classification, with the body's `retry_after` (seconds) when a
/// 429 lacks the header.
fn classify(reply: &Reply) -> AttemptReport {
    match reply.classify() {
        AttemptResult::Retry { code, after: None, message } if reply.status == 429 => {
            let after = reply
                .json
                .as_ref()
                .and_then(|j| j.get("retry_after")?.as_f64())
                .and_then(|s| Duration::try_from_secs_f64(s).ok());
            reply.report(AttemptResult::Retry { code, after, message })
        }
        other => reply.report(other),
    }
}

provider_adapter!(DiscordAdapter);
