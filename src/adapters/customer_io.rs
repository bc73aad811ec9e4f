//! Customer.io (Track API): tracked events and manual segments.

use crate::config::env::{EnvString, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

connection_config! {
    /// A Customer.io workspace (Track API credentials from Settings → API Credentials).
    pub struct CustomerIoConfig {
        /// Track API site id.
        pub site_id: EnvString,
        /// Track API key.
        pub api_key: Secret,
        /// App API key (Bearer), used only to list manual segments for `meshes actions`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub app_api_key: Option<Secret>,
        /// Data region of the workspace.
        #[serde(default, skip_serializing_if = "Region::is_default")]
        pub region: Region,
    }
}

/// Customer.io data region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `track.customer.io`.
    #[default]
    Us,
    /// `track-eu.customer.io`.
    Eu,
}

impl Region {
    fn is_default(&self) -> bool {
        *self == Region::Us
    }
}

crate::no_env_fields!(Region);
