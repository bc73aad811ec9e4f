//! Generic webhooks: any HTTPS endpoint, signed per the Standard Webhooks spec.

use crate::config::diagnostic::Path;
use crate::config::env::{EnvField, EnvFields, EnvString, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

connection_config! {
    no_base_url no_mapping
    /// An HTTP endpoint that receives events.
    pub struct WebhookConfig {
        /// Endpoint URL.
        pub url: EnvString,
        /// HTTP method.
        #[serde(default, skip_serializing_if = "Method::is_default")]
        pub method: Method,
        /// Body shape: `wrapped` (`{uuid, event, resource, resource_id, payload, time_created, time_sent}`) or `raw` (the payload alone).
        #[serde(default, skip_serializing_if = "PayloadFormat::is_default")]
        pub payload_format: PayloadFormat,
        /// Standard Webhooks signing secret(s) (`whsec_…`). Give a list while
        /// rotating (1 to 10 secrets): every secret signs, so receivers accept
        /// either. Leave the key out to send unsigned requests.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub signing_secret: Option<SigningSecrets>,
        /// Authentication sent with each request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub auth: Option<WebhookAuth>,
        /// Extra request headers (at most 5); values may use `${VAR}`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        #[schemars(extend("maxProperties" = MAX_HEADERS))]
        pub headers: BTreeMap<String, EnvString>,
    }
}

/// Most extra headers a webhook sends: the schema refuses more, so
/// `validate` (and with it `serve` and every reload) does.
pub const MAX_HEADERS: usize = 5;

/// Most secrets a rotation list holds: each adds a 48-byte signature to
/// every request, and a rotation needs two or three, so more is a mistake.
pub const MAX_SIGNING_SECRETS: usize = 10;

/// HTTP method of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `POST`.
    #[default]
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
}

impl Method {
    fn is_default(&self) -> bool {
        *self == Method::Post
    }
}

/// Webhook body shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// The event envelope with the payload inside.
    #[default]
    Wrapped,
    /// The payload alone.
    Raw,
}

impl PayloadFormat {
    fn is_default(&self) -> bool {
        *self == PayloadFormat::Wrapped
    }
}

/// One signing secret or several (rotation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SigningSecrets {
    /// A single secret.
    One(Secret),
    /// Several secrets, all used to sign. An empty list would send every
    /// request unsigned without a word, so it is refused.
    #[schemars(extend("minItems" = 1, "maxItems" = MAX_SIGNING_SECRETS))]
    Many(Vec<Secret>),
}

impl EnvFields for SigningSecrets {
    fn env_fields<'a>(&'a self, at: &Path, out: &mut Vec<EnvField<'a>>) {
        match self {
            SigningSecrets::One(s) => s.env_fields(at, out),
            SigningSecrets::Many(v) => v.env_fields(at, out),
        }
    }
}

/// Webhook authentication, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WebhookAuth {
    /// HTTP Basic.
    Basic {
        /// User name.
        username: EnvString,
        /// Password.
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// A custom header, e.g. `X-Api-Key`.
    Header {
        /// Header name.
        name: String,
        /// Header value.
        value: Secret,
    },
}

impl EnvFields for WebhookAuth {
    fn env_fields<'a>(&'a self, at: &Path, out: &mut Vec<EnvField<'a>>) {
        match self {
            WebhookAuth::Basic { username, password } => {
                username.env_fields(&at.key("username"), out);
                password.env_fields(&at.key("password"), out);
            }
            WebhookAuth::Bearer { token } => token.env_fields(&at.key("token"), out),
            WebhookAuth::Header { value, .. } => value.env_fields(&at.key("value"), out),
        }
    }
}

crate::no_env_fields!(Method, PayloadFormat);

// The runtime lives in its own file so this one stays the config contract
// (its types are part of the committed JSON Schema).
#[path = "webhook_runtime.rs"]
mod runtime;
pub use runtime::{WebhookAdapter, sign};

#[path = "webhook_checks.rs"]
mod checks;
pub use checks::check;

#[path = "webhook_secrets.rs"]
mod secrets;
pub(crate) use secrets::userinfo;

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
