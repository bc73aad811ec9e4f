//! Intercom (API 2.14): contact tags.

use crate::config::env::Secret;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

connection_config! {
    /// An Intercom workspace.
    pub struct IntercomConfig {
        /// Access token (Developer Hub → your app → Authentication).
        pub access_token: Secret,
        /// Data region of the workspace.
        #[serde(default, skip_serializing_if = "Region::is_default")]
        pub region: Region,
    }
}

/// Intercom data region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `api.intercom.io`.
    #[default]
    Us,
    /// `api.eu.intercom.io`.
    Eu,
    /// `api.au.intercom.io`.
    Au,
}

impl Region {
    fn is_default(&self) -> bool {
        *self == Region::Us
    }
}

crate::no_env_fields!(Region);
