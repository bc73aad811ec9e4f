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
