//! MailerLite (connect.mailerlite.com API): subscriber groups.

use crate::config::env::Secret;

connection_config! {
    /// A MailerLite account.
    pub struct MailerliteConfig {
        /// API token (Integrations → API).
        pub api_key: Secret,
    }
}
