//! `log`: prints each delivery to stdout. Needs no credentials, so the
//! bundled `meshes.yaml` runs anywhere.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

connection_config! {
    no_base_url
    /// Prints deliveries to stdout.
    pub struct LogConfig {
        /// `pretty` (one readable line) or `json` (one JSON object per line).
        #[serde(default, skip_serializing_if = "LogFormat::is_default")]
        pub format: LogFormat,
        /// Include the event payload in each line.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        pub include_payload: bool,
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// How a `log` connection prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per delivery.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn is_default(&self) -> bool {
        *self == LogFormat::Pretty
    }
}

crate::no_env_fields!(LogFormat);
