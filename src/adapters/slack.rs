//! Slack: messages through an incoming webhook or a bot token (`chat.postMessage`).

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::discover::{
    ActionOption, DiscoverError, Discovered, MAX_PAGES, discovery_deadline, fetch, items, text,
    too_many_pages,
};
use super::http::{Api, Reply, deadline, invalid, metadata_id, parse_url, secret, unknown_action};
use super::{BuildError, Lookup, template};
use crate::config::diagnostic::{Issue, Path};
use crate::config::env::Secret;
use crate::config::model::Outcome;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

connection_config! {
    no_mapping
    /// A Slack incoming webhook, or a bot that posts to channels named in each rule.
    pub struct SlackConfig {
        /// Incoming webhook URL (`https://hooks.slack.com/services/…`); the URL is the credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub webhook_url: Option<Secret>,
        /// Bot token (`xoxb-…`, scope `chat:write`); each rule then names the channel in `metadata.id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bot_token: Option<Secret>,
    }
}

impl SlackConfig {
    pub(super) fn check(&self, at: &Path) -> Vec<Issue> {
        super::exactly_one(
            at,
            ("webhook_url", self.webhook_url.is_some()),
            ("bot_token", self.bot_token.is_some()),
        )
    }
}

/// Posts rule messages to Slack (runtime of [`SlackConfig`]).
#[derive(Debug)]
pub struct SlackAdapter {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// The whole URL is the credential.
    Webhook(Api),
    /// `chat.postMessage` on `base_url` (default `https://slack.com/api`).
    Bot(Api),
}

/// `chat.postMessage` errors that mean the token itself is bad.
const AUTH_ERRORS: [&str; 6] = [
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
];

impl SlackAdapter {
    /// Resolves the webhook URL or bot token.
    pub fn build(
        cfg: &SlackConfig,
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
                let api = Api::new(cfg.base_url.as_ref(), "https://slack.com/api", lookup, client)?;
                Mode::Bot(api.bearer(&token)?)
            }
            (None, None) => return Err(invalid("webhook_url", "set `webhook_url` or `bot_token`")),
        };
        Ok(SlackAdapter { mode })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        if d.metadata.action != "send_message" {
            return Err(unknown_action("slack", &d.metadata.action));
        }
        let text = message_text(d);
        let deadline = deadline(timeout);
        match &self.mode {
            Mode::Webhook(api) => {
                let reply = api
                    .call(Method::POST, &[])
                    .json(&json!({"text": text}))
                    .not_idempotent()
                    .send(deadline)
                    .await?;
                Ok(reply.default_report())
            }
            Mode::Bot(api) => {
                let body = json!({"channel": metadata_id(d)?, "text": text, "unfurl_links": false});
                let reply = api
                    .call(Method::POST, &["chat.postMessage"])
                    .json_as(&body, "application/json; charset=utf-8")
                    .not_idempotent()
                    .send(deadline)
                    .await?;
                Ok(bot_result(&reply, d.attempt))
            }
        }
    }
}

/// The rule's template rendered, or the event type when there is none.
/// Values from the event are escaped, so a payload cannot mention people
/// (`<@U123>`, `<!channel>`) or mask a link (`<https://evil|Click>`); the
/// template's own text is the author's and is kept as written.
fn message_text(d: &Delivery) -> String {
    match &d.metadata.template {
        Some(t) => template::render_escaped(t, &template::context(d), escape),
        None => escape(&format!("{} ({})", d.event, d.event_id)),
    }
}

/// Slack's escaping for untrusted text: `&`, `<` and `>` only.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `chat.postMessage` answers 200 with `ok:false` for errors: the `error`
/// code decides. `internal_error`/`fatal_error` may have posted anyway, so
/// they are retried once at most.
fn bot_result(reply: &Reply, attempt: u32) -> AttemptReport {
    if !reply.ok() {
        return reply.default_report();
    }
    if reply.json.as_ref().and_then(|j| j.get("ok")).and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        return reply.report(AttemptResult::Delivered);
    }
    let error = reply.str_at("/error").unwrap_or_else(|| "no `ok` in the response".into());
    let message = reply.redact(&format!("Slack error: {error}"));
    let result = match error.as_str() {
        "ratelimited" | "rate_limited" => {
            AttemptResult::Retry { code: Outcome::RateLimited, after: reply.retry_hint(), message }
        }
        "internal_error" | "fatal_error" | "service_unavailable" if attempt < 2 => {
            AttemptResult::Retry { code: Outcome::RejectedServerError, after: None, message }
        }
        e if AUTH_ERRORS.contains(&e) => {
            AttemptResult::Permanent { code: Outcome::AuthFailed, message }
        }
        _ => AttemptResult::Permanent { code: Outcome::RejectedClientError, message },
    };
    reply.report(result)
}

provider_adapter!(SlackAdapter, discover: channels);

impl SlackAdapter {
    /// Channels the bot can see (`conversations.list`, cursor paging);
    /// a webhook posts to its one fixed channel, so there is nothing to pick.
    async fn channels(&self) -> Discovered {
        let Mode::Bot(api) = &self.mode else {
            return Err(DiscoverError::Unsupported(
                "a Slack incoming webhook posts to one fixed channel; channels are listed with a `bot_token`".into(),
            ));
        };
        let until = discovery_deadline();
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut call = api
                .call(Method::GET, &["conversations.list"])
                .query("types", "public_channel,private_channel")
                .query("exclude_archived", "true")
                .query("limit", "200");
            if !cursor.is_empty() {
                call = call.query("cursor", &cursor);
            }
            let v = fetch(call, until).await?;
            // Slack answers errors with HTTP 200 and `ok: false`.
            if v.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
                let error = text(&v, "error");
                return Err(DiscoverError::Provider(format!(
                    "Slack refused: {}",
                    api.redact(&error)
                )));
            }
            out.extend(items(&v, "/channels").iter().map(|c| {
                let private = c.get("is_private").cloned().unwrap_or(serde_json::Value::Null);
                ActionOption::new("channel", text(c, "id"), text(c, "name"))
                    .with_extra(json!({"is_private": private}))
            }));
            cursor = text(&v, "/response_metadata/next_cursor");
            if cursor.is_empty() {
                return Ok(out);
            }
        }
        Err(too_many_pages("Slack channels"))
    }
}
