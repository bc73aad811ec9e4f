//! Destinations. Each integration is one file holding its connection config
//! (and, from the gateway issue on, its runtime adapter); [`ConnectionConfig`]
//! is the closed enum, tagged by `type:`, that ties them together.
//!
//! Adding a provider's runtime: in its file, a `<Provider>Adapter` with a
//! `build(cfg, lookup, client)` that resolves secrets ([`http::secret`]) and
//! makes an [`http::Api`] (base URL override, auth header; or an
//! [`oauth::TokenCache`] behind [`oauth::Bearer`]); `deliver` reads people
//! through [`contact::Contact`] (where field mapping will slot in), renders
//! text with [`template`], sends with [`http::Call`] and classifies the
//! [`reply::Reply`] (its default plus the provider's own cases). Then one
//! arm in `build.rs`, its limits in [`limits`], and fake-provider tests in
//! `tests/providers/<provider>.rs`.

use crate::config::diagnostic::{Issue, Path};
use crate::config::env::{EnvField, EnvFields};
use crate::config::model::DeliveryOverride;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Declares a connection config struct: the fields given plus the
/// `base_url` override (unless `no_base_url`), the per-connection
/// `delivery` override every connection has, the `mapping` every
/// contact-based one has (unless `no_mapping`: a type that sends no contact
/// has no such field, so neither the schema nor `/integrations` offers it),
/// and its [`EnvFields`].
macro_rules! connection_config {
    (@emit [$( $(#[$xmeta:meta])* pub $xfield:ident : $xty:ty, )*]
        $(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Delivery settings for this connection (concurrency, rate limit,
            /// timeout, retries); unset fields inherit the workspace's `delivery:`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub delivery: Option<$crate::config::model::DeliveryOverride>,
            $( $(#[$xmeta])* pub $xfield: $xty, )*
        }
        impl $crate::config::env::EnvFields for $name {
            fn env_fields<'a>(
                &'a self,
                at: &$crate::config::diagnostic::Path,
                out: &mut Vec<$crate::config::env::EnvField<'a>>,
            ) {
                $( self.$field.env_fields(&at.key(stringify!($field)), out); )*
            }
        }
    };
    (no_base_url no_mapping $(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
    }) => {
        connection_config! { @emit [] $(#[$meta])* pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        } }
    };
    (no_base_url $(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
    }) => {
        connection_config! { @emit [
            /// Field mapping for every rule on this connection (contact-based
            /// integrations): destination field → source and transforms. A
            /// rule's own `mapping` overrides it field by field.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub mapping: Option<$crate::config::mapping::Mapping>,
        ] $(#[$meta])* pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        } }
    };
    (no_mapping $(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
    }) => {
        connection_config! { no_base_url no_mapping $(#[$meta])* pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// API base URL, for regional hosts, proxies and local fakes in tests.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_url: Option<$crate::config::env::EnvString>,
        } }
    };
    ($(#[$meta:meta])* pub struct $name:ident {
        $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
    }) => {
        connection_config! { no_base_url $(#[$meta])* pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// API base URL, for regional hosts, proxies and local fakes in tests.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub base_url: Option<$crate::config::env::EnvString>,
        } }
    };
}

/// The `Adapter` impl every provider shares: `deliver` runs the provider's
/// `attempt(delivery, timeout)` and settles its `Result` into a report;
/// `discover` (when given) lists the account's options.
macro_rules! provider_adapter {
    ($ty:ty) => {
        impl $crate::adapters::adapter::Adapter for $ty {
            fn deliver<'a>(
                &'a self,
                delivery: &'a $crate::adapters::adapter::Delivery,
                timeout: std::time::Duration,
            ) -> $crate::adapters::adapter::BoxFuture<'a, $crate::adapters::adapter::AttemptReport>
            {
                Box::pin(async move {
                    $crate::adapters::http::settle(self.attempt(delivery, timeout).await)
                })
            }
        }
    };
    ($ty:ty, discover: $list:ident) => {
        impl $crate::adapters::adapter::Adapter for $ty {
            fn deliver<'a>(
                &'a self,
                delivery: &'a $crate::adapters::adapter::Delivery,
                timeout: std::time::Duration,
            ) -> $crate::adapters::adapter::BoxFuture<'a, $crate::adapters::adapter::AttemptReport>
            {
                Box::pin(async move {
                    $crate::adapters::http::settle(self.attempt(delivery, timeout).await)
                })
            }
            fn discover(
                &self,
            ) -> $crate::adapters::adapter::BoxFuture<'_, $crate::adapters::discover::Discovered>
            {
                Box::pin(self.$list())
            }
        }
    };
}

pub mod adapter;
pub mod contact;
pub mod discover;
mod failure;
pub mod http;
pub mod limits;
pub mod mapping;
pub mod oauth;
pub mod payload;
pub mod proxy;
pub mod redact;
pub mod reply;
pub mod template;
pub mod token_store;
mod transform;
pub mod trust;

pub mod activecampaign;
pub mod aweber;
mod build;
pub mod customer_io;
pub mod discord;
pub mod hubspot;
pub mod intercom;
pub mod log;
pub mod mailchimp;
pub mod mailerlite;
pub mod resend;
pub mod salesforce;
pub mod sendgrid;
pub mod slack;
pub mod webhook;
pub mod zoom;

/// A destination, tagged by `type`. Adding an integration means one new file,
/// one variant here and one entry in the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConnectionConfig {
    /// ActiveCampaign: lists, tags and contact sync.
    Activecampaign(activecampaign::ActiveCampaignConfig),
    /// AWeber: list subscriptions (OAuth 2).
    Aweber(aweber::AweberConfig),
    /// Customer.io: tracked events and manual segments.
    CustomerIo(customer_io::CustomerIoConfig),
    /// Discord: messages through a channel webhook or a bot.
    Discord(discord::DiscordConfig),
    /// HubSpot: lists and contact properties.
    Hubspot(hubspot::HubspotConfig),
    /// Intercom: contact tags.
    Intercom(intercom::IntercomConfig),
    /// Mailchimp: audience membership.
    Mailchimp(mailchimp::MailchimpConfig),
    /// MailerLite: subscriber groups.
    Mailerlite(mailerlite::MailerliteConfig),
    /// Resend: segments and template emails.
    Resend(resend::ResendConfig),
    /// Salesforce: campaign members and record fields (OAuth 2).
    Salesforce(salesforce::SalesforceConfig),
    /// SendGrid: marketing lists and email.
    Sendgrid(sendgrid::SendgridConfig),
    /// Slack: messages through an incoming webhook or a bot.
    Slack(slack::SlackConfig),
    /// Any HTTPS endpoint, signed per the Standard Webhooks spec.
    Webhook(webhook::WebhookConfig),
    /// Zoom: meeting and webinar registrants (server-to-server OAuth).
    Zoom(zoom::ZoomConfig),
    /// Prints each delivery to stdout: runs with no credentials at all.
    Log(log::LogConfig),
}

/// Calls `$body` with the inner config of whichever variant `$self` is.
macro_rules! each_variant {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            ConnectionConfig::Activecampaign($c) => $body,
            ConnectionConfig::Aweber($c) => $body,
            ConnectionConfig::CustomerIo($c) => $body,
            ConnectionConfig::Discord($c) => $body,
            ConnectionConfig::Hubspot($c) => $body,
            ConnectionConfig::Intercom($c) => $body,
            ConnectionConfig::Mailchimp($c) => $body,
            ConnectionConfig::Mailerlite($c) => $body,
            ConnectionConfig::Resend($c) => $body,
            ConnectionConfig::Salesforce($c) => $body,
            ConnectionConfig::Sendgrid($c) => $body,
            ConnectionConfig::Slack($c) => $body,
            ConnectionConfig::Webhook($c) => $body,
            ConnectionConfig::Zoom($c) => $body,
            ConnectionConfig::Log($c) => $body,
        }
    };
}

impl ConnectionConfig {
    /// The `type:` value, which is also the integration's catalog key.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectionConfig::Activecampaign(_) => "activecampaign",
            ConnectionConfig::Aweber(_) => "aweber",
            ConnectionConfig::CustomerIo(_) => "customer_io",
            ConnectionConfig::Discord(_) => "discord",
            ConnectionConfig::Hubspot(_) => "hubspot",
            ConnectionConfig::Intercom(_) => "intercom",
            ConnectionConfig::Mailchimp(_) => "mailchimp",
            ConnectionConfig::Mailerlite(_) => "mailerlite",
            ConnectionConfig::Resend(_) => "resend",
            ConnectionConfig::Salesforce(_) => "salesforce",
            ConnectionConfig::Sendgrid(_) => "sendgrid",
            ConnectionConfig::Slack(_) => "slack",
            ConnectionConfig::Webhook(_) => "webhook",
            ConnectionConfig::Zoom(_) => "zoom",
            ConnectionConfig::Log(_) => "log",
        }
    }

    /// This connection's own delivery settings, if any.
    pub fn delivery(&self) -> Option<&DeliveryOverride> {
        each_variant!(self, c => c.delivery.as_ref())
    }

    /// This connection's own field mapping, if any (the types that send
    /// no contact have none).
    pub fn mapping(&self) -> Option<&crate::config::mapping::Mapping> {
        match self {
            ConnectionConfig::Activecampaign(c) => c.mapping.as_ref(),
            ConnectionConfig::Aweber(c) => c.mapping.as_ref(),
            ConnectionConfig::CustomerIo(c) => c.mapping.as_ref(),
            ConnectionConfig::Hubspot(c) => c.mapping.as_ref(),
            ConnectionConfig::Intercom(c) => c.mapping.as_ref(),
            ConnectionConfig::Mailchimp(c) => c.mapping.as_ref(),
            ConnectionConfig::Mailerlite(c) => c.mapping.as_ref(),
            ConnectionConfig::Resend(c) => c.mapping.as_ref(),
            ConnectionConfig::Salesforce(c) => c.mapping.as_ref(),
            ConnectionConfig::Sendgrid(c) => c.mapping.as_ref(),
            ConnectionConfig::Zoom(c) => c.mapping.as_ref(),
            ConnectionConfig::Discord(_)
            | ConnectionConfig::Slack(_)
            | ConnectionConfig::Webhook(_)
            | ConnectionConfig::Log(_) => None,
        }
    }

    /// True for chat integrations configured with a bot token (which need a
    /// channel `id` in each rule) rather than a webhook URL.
    pub fn bot_mode(&self) -> bool {
        match self {
            ConnectionConfig::Discord(c) => c.bot_token.is_some(),
            ConnectionConfig::Slack(c) => c.bot_token.is_some(),
            _ => false,
        }
    }

    /// Whether the connection gives a default for rule metadata `field`
    /// (a `from` sender), so rules may leave it out.
    pub fn sets_default(&self, field: &str) -> bool {
        match (self, field) {
            // A blank one is refused on its own (`http::sender`), not a default.
            (ConnectionConfig::Sendgrid(c), "from") => c.from.as_ref().is_some_and(filled),
            (ConnectionConfig::Resend(c), "from") => c.from.as_ref().is_some_and(filled),
            _ => false,
        }
    }

    /// Credential combinations the schema cannot express (one of two modes, all-or-nothing groups).
    pub fn check_credentials(&self, at: &Path) -> Vec<Issue> {
        match self {
            ConnectionConfig::Discord(c) => c.check(at),
            ConnectionConfig::Slack(c) => c.check(at),
            ConnectionConfig::Hubspot(c) => c.check(at),
            _ => Vec::new(),
        }
    }
}

impl EnvFields for ConnectionConfig {
    fn env_fields<'a>(&'a self, at: &Path, out: &mut Vec<EnvField<'a>>) {
        each_variant!(self, c => c.env_fields(at, out))
    }
}

/// "exactly one of `a` or `b`" for the two-mode chat integrations.
fn exactly_one(at: &Path, a: (&str, bool), b: (&str, bool)) -> Vec<Issue> {
    use crate::config::diagnostic::Code;
    let message = match (a.1, b.1) {
        (true, false) | (false, true) => return Vec::new(),
        (true, true) => {
            format!("both `{}` and `{}` are set: expected exactly one of them", a.0, b.0)
        }
        (false, false) => format!("no credentials: expected exactly one of `{}` or `{}`", a.0, b.0),
    };
    vec![Issue::error(Code::InvalidCredentials, at.clone(), message)]
}

/// Why a connection's runtime adapter could not be built from its config.
/// Never carries a secret's value: only field names and reasons.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A `${VAR}` could not be resolved.
    #[error("connection field `{field}`: {source}")]
    Env {
        /// The config field, e.g. `signing_secret[1]`.
        field: String,
        /// What went wrong.
        source: crate::config::env::ResolveError,
    },
    /// A resolved value is unusable (bad URL, secret not `whsec_` base64, …).
    #[error("connection field `{field}`: {message}")]
    Invalid {
        /// The config field.
        field: String,
        /// What is wrong and what was expected (no secret values).
        message: String,
    },
    /// A map key is unusable (a header name): the key is at fault, not its value.
    #[error("connection field `{field}`: {message}")]
    Key {
        /// The config field, e.g. `headers.Bad Header`.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

impl BuildError {
    /// The config field as written in the message (`headers.X-Tenant`, `signing_secret[1]`).
    pub fn field(&self) -> &str {
        match self {
            BuildError::Env { field, .. }
            | BuildError::Invalid { field, .. }
            | BuildError::Key { field, .. } => field,
        }
    }

    /// The field's path under the connection at `at`. A header name may
    /// hold dots, so everything after `headers.` is one key.
    pub fn path(&self, at: &Path) -> Path {
        if let Some(name) = self.field().strip_prefix("headers.") {
            return at.key("headers").key(name);
        }
        let mut path = at.clone();
        for part in self.field().split('.') {
            let (key, index) = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
                Some((key, i)) => (key, i.parse().ok()),
                None => (part, None),
            };
            path = path.key(key);
            if let Some(i) = index {
                path = path.index(i);
            }
        }
        path
    }
}

/// Looks up environment variables when building adapters (the process
/// environment in production, a map in tests).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Resolves a `${…}` template for `field`, mapping failures to [`BuildError`].
pub fn resolve_field(
    field: &str,
    template: &str,
    lookup: Lookup<'_>,
) -> Result<String, BuildError> {
    crate::config::env::resolve(template, lookup)
        .map_err(|source| BuildError::Env { field: field.to_string(), source })
}

/// A value that is not blank as written (`${VAR}` counts as filled: its
/// value is checked when it is read).
fn filled(s: &crate::config::env::EnvString) -> bool {
    !s.0.trim().is_empty()
}
