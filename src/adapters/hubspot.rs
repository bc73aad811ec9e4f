//! HubSpot (CRM v3): list memberships and contact properties.

use crate::config::diagnostic::{Code, Issue, Path};
use crate::config::env::{EnvString, Secret};

connection_config! {
    /// A HubSpot portal, through a private app's access token or an OAuth app's refresh token.
    pub struct HubspotConfig {
        /// Private app access token (`pat-…`). Use this or the three OAuth fields.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub access_token: Option<Secret>,
        /// OAuth client id (with `client_secret` and `refresh_token`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_id: Option<EnvString>,
        /// OAuth client secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_secret: Option<Secret>,
        /// OAuth refresh token; access tokens are refreshed from it before they expire.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refresh_token: Option<Secret>,
    }
}

impl HubspotConfig {
    pub(super) fn check(&self, at: &Path) -> Vec<Issue> {
        let oauth = [
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("refresh_token", self.refresh_token.is_some()),
        ];
        let given = oauth.iter().filter(|(_, set)| *set).count();
        let message = match (self.access_token.is_some(), given) {
            (true, 0) | (false, 3) => return Vec::new(),
            (true, _) => "both `access_token` and OAuth fields are set: expected either `access_token` or `client_id` + `client_secret` + `refresh_token`".to_string(),
            (false, 0) => "no credentials: expected `access_token` (private app) or `client_id` + `client_secret` + `refresh_token` (OAuth)".to_string(),
            (false, _) => {
                let missing: Vec<&str> = oauth.iter().filter(|(_, set)| !set).map(|(n, _)| *n).collect();
                format!("incomplete OAuth credentials: missing `{}`", missing.join("`, `"))
            }
        };
        vec![Issue::error(Code::InvalidCredentials, at.clone(), message)]
    }
}
