//! Mailchimp (Marketing API 3.0): audience membership.

use crate::config::env::{EnvString, Secret};

connection_config! {
    /// A Mailchimp account.
    pub struct MailchimpConfig {
        /// API key (`…-us6`).
        pub api_key: Secret,
        /// Data center (`us6`); taken from the key's suffix when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub data_center: Option<EnvString>,
    }
}
