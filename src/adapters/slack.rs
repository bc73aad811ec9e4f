//! Slack: messages through an incoming webhook or a bot token (`chat.postMessage`).

use crate::config::diagnostic::{Issue, Path};
use crate::config::env::Secret;

connection_config! {
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
