//! ActiveCampaign (API v3): lists, tags and contact sync.

use crate::config::env::{EnvString, Secret};

connection_config! {
    /// An ActiveCampaign account. Copy the API URL and key from Settings → Developer.
    pub struct ActiveCampaignConfig {
        /// The account's API URL exactly as shown in Settings → Developer
        /// (e.g. `https://acme.api-us1.com`); ActiveCampaign asks clients not to build it.
        pub api_url: EnvString,
        /// API key (`Api-Token` header).
        pub api_key: Secret,
    }
}
