//! SendGrid (v3): marketing lists and email.

use crate::config::env::{EnvString, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

connection_config! {
    /// A SendGrid account.
    pub struct SendgridConfig {
        /// API key (`SG.…`).
        pub api_key: Secret,
        /// Default sender when a rule gives no `from`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<EnvString>,
        /// `global` (`api.sendgrid.com`) or `eu` (`api.eu.sendgrid.com`, EU regional subusers).
        #[serde(default, skip_serializing_if = "Region::is_default")]
        pub region: Region,
    }
}

/// SendGrid region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `api.sendgrid.com`.
    #[default]
    Global,
    /// `api.eu.sendgrid.com`.
    Eu,
}

impl Region {
    fn is_default(&self) -> bool {
        *self == Region::Global
    }
}

crate::no_env_fields!(Region);
