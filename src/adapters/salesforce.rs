//! Salesforce (REST API, OAuth 2 refresh-token flow): campaign members and fields.

use crate::config::env::{EnvString, Secret};

connection_config! {
    /// A Salesforce org, reached through a connected app's refresh token.
    pub struct SalesforceConfig {
        /// Connected app consumer key.
        pub client_id: EnvString,
        /// Connected app consumer secret.
        pub client_secret: Secret,
        /// Refresh token (scopes `api refresh_token`).
        pub refresh_token: Secret,
        /// Token endpoint host: `https://login.salesforce.com` (default),
        /// `https://test.salesforce.com` for sandboxes, or your My Domain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub login_url: Option<EnvString>,
        /// Org API host; the token response's `instance_url` is used when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub instance_url: Option<EnvString>,
        /// REST API version, e.g. `62.0`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(regex(pattern = r"^[0-9]+\.[0-9]$"))]
        pub api_version: Option<String>,
    }
}
