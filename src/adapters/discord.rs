//! Discord: messages through a channel webhook or a bot token.

use crate::config::diagnostic::{Issue, Path};
use crate::config::env::Secret;

connection_config! {
    /// A Discord channel webhook, or a bot that posts to channels named in each rule.
    pub struct DiscordConfig {
        /// Channel webhook URL (`https://discord.com/api/webhooks/<id>/<token>`); the URL is the credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub webhook_url: Option<Secret>,
        /// Bot token; each rule then names the channel in `metadata.id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bot_token: Option<Secret>,
        /// Display name that overrides the webhook's (webhook mode).
        #[serde(default, skip_serializing_if = "Option::is_none")]
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
