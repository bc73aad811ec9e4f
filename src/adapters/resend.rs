//! Resend: contact segments and template emails.

use crate::config::env::{EnvString, Secret};

connection_config! {
    /// A Resend account. Segment actions need a full-access key.
    pub struct ResendConfig {
        /// API key (`re_…`).
        pub api_key: Secret,
        /// Default sender (`Acme <hello@acme.dev>`) when a rule gives no `from`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<EnvString>,
    }
}
