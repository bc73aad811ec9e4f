//! AWeber (API 1.0, OAuth 2 with refresh tokens): list subscriptions.

use crate::config::env::{EnvString, Secret};

connection_config! {
    /// An AWeber account, reached with an OAuth 2 app's refresh token.
    pub struct AweberConfig {
        /// OAuth client id of your AWeber app.
        pub client_id: EnvString,
        /// OAuth client secret of your AWeber app.
        pub client_secret: Secret,
        /// Refresh token from the app's authorization; access tokens (2 h) are refreshed from it.
        pub refresh_token: Secret,
        /// AWeber account id; looked up with `GET /accounts` when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub account_id: Option<EnvString>,
    }
}
