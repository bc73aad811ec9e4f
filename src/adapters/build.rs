//! The one `build()` match: config → runtime adapter.

use super::*;

impl ConnectionConfig {
    /// Builds the runtime adapter: the one place a config type becomes
    /// behaviour. Secrets are resolved here, at load time, never at parse time.
    pub fn build(
        &self,
        lookup: Lookup<'_>,
        client: &reqwest::Client,
    ) -> Result<std::sync::Arc<dyn adapter::Adapter>, BuildError> {
        self.build_with(lookup, client, None)
    }

    /// [`build`](Self::build), persisting rotated OAuth refresh tokens in
    /// `tokens` (the gateway's data directory) when given.
    pub fn build_with(
        &self,
        lookup: Lookup<'_>,
        client: &reqwest::Client,
        tokens: Option<token_store::TokenSlot>,
    ) -> Result<std::sync::Arc<dyn adapter::Adapter>, BuildError> {
        use std::sync::Arc;
        Ok(match self {
            ConnectionConfig::Webhook(c) => {
                Arc::new(webhook::WebhookAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Log(c) => Arc::new(log::LogAdapter::new(c)),
            ConnectionConfig::Slack(c) => {
                Arc::new(slack::SlackAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Discord(c) => {
                Arc::new(discord::DiscordAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Resend(c) => {
                Arc::new(resend::ResendAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Activecampaign(c) => {
                Arc::new(activecampaign::ActiveCampaignAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Aweber(c) => {
                Arc::new(aweber::AweberAdapter::build(c, lookup, client.clone(), tokens.clone())?)
            }
            ConnectionConfig::CustomerIo(c) => {
                Arc::new(customer_io::CustomerIoAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Hubspot(c) => {
                Arc::new(hubspot::HubspotAdapter::build(c, lookup, client.clone(), tokens.clone())?)
            }
            ConnectionConfig::Intercom(c) => {
                Arc::new(intercom::IntercomAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Salesforce(c) => Arc::new(salesforce::SalesforceAdapter::build(
                c,
                lookup,
                client.clone(),
                tokens.clone(),
            )?),
            ConnectionConfig::Zoom(c) => {
                Arc::new(zoom::ZoomAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Mailerlite(c) => {
                Arc::new(mailerlite::MailerliteAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Sendgrid(c) => {
                Arc::new(sendgrid::SendgridAdapter::build(c, lookup, client.clone())?)
            }
            ConnectionConfig::Mailchimp(c) => {
                Arc::new(mailchimp::MailchimpAdapter::build(c, lookup, client.clone())?)
            }
        })
    }
}

impl ConnectionConfig {
    /// Whether the connection's adapter refreshes an OAuth refresh token,
    /// which the provider may rotate (revoking the one the gateway holds).
    /// HubSpot with a private-app token and Zoom's account credentials do not.
    pub fn spends_refresh_token(&self) -> bool {
        match self {
            ConnectionConfig::Hubspot(c) => c.access_token.is_none() && c.refresh_token.is_some(),
            ConnectionConfig::Salesforce(_) | ConnectionConfig::Aweber(_) => true,
            _ => false,
        }
    }

    /// The problems [`build`](Self::build) would reject this config for, for
    /// `validate`: every one for a webhook (its values are independent), the
    /// first for the other integrations (their builds chain one value into
    /// the next). Nothing is sent anywhere.
    pub fn check_values(&self, lookup: Lookup<'_>) -> Vec<BuildError> {
        match self {
            ConnectionConfig::Webhook(c) => webhook::check(c, lookup),
            ConnectionConfig::Log(_) => Vec::new(),
            _ => match probe_client() {
                Some(client) => self.build(lookup, client).err().into_iter().collect(),
                None => Vec::new(),
            },
        }
    }
}

/// A client for builds that only check values; adapters keep it but never
/// send with it here. `None` if TLS cannot be set up, where `serve` would fail anyway.
fn probe_client() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::LazyLock<Option<reqwest::Client>> =
        std::sync::LazyLock::new(|| reqwest::Client::builder().build().ok());
    CLIENT.as_ref()
}
