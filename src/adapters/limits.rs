//! Provider rate limits and concurrency caps applied by default.
//!
//! A connection's own `delivery.rate_limit` / `delivery.concurrency`
//! replaces these; the workspace-wide `delivery.concurrency` still caps the
//! provider default (a workspace asking for less is obeyed).

use super::ConnectionConfig;
use crate::config::duration::Duration;
use crate::config::model::{DeliveryOverride, RateLimit};

/// A provider's documented limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderLimits {
    /// Most attempts in flight (Mailchimp: 10 simultaneous connections).
    pub concurrency: Option<u32>,
    /// Request budget (Resend: 2 per second).
    pub rate_limit: Option<RateLimit>,
}

fn per(requests: u32, ms: u64) -> Option<RateLimit> {
    Some(RateLimit { requests, per: Duration::from_millis(ms) })
}

impl ConnectionConfig {
    /// The provider's documented limits (providers.md, "Rate limits").
    pub fn default_limits(&self) -> ProviderLimits {
        let rate = |rate_limit| ProviderLimits { concurrency: None, rate_limit };
        match self {
            ConnectionConfig::Resend(_) => rate(per(2, 1_000)),
            ConnectionConfig::Activecampaign(_) => rate(per(5, 1_000)),
            ConnectionConfig::Mailchimp(_) => {
                ProviderLimits { concurrency: Some(10), rate_limit: None }
            }
            ConnectionConfig::Mailerlite(_) | ConnectionConfig::Aweber(_) => rate(per(120, 60_000)),
            // Free/Starter private-app burst: 100 per 10 s.
            ConnectionConfig::Hubspot(_) => rate(per(100, 10_000)),
            ConnectionConfig::CustomerIo(_) => rate(per(100, 1_000)),
            // About one message per second per webhook or channel.
            ConnectionConfig::Slack(_) => rate(per(1, 1_000)),
            ConnectionConfig::Discord(_) => rate(per(5, 2_000)),
            _ => ProviderLimits::default(),
        }
    }

    /// The concurrency and rate limit in force: the connection's override,
    /// else the provider default (capped by `workspace_concurrency`), else
    /// the workspace's settings.
    pub fn effective_limits(&self, workspace_concurrency: u32) -> (u32, Option<RateLimit>) {
        let own = self.delivery().cloned().unwrap_or_else(DeliveryOverride::default);
        let defaults = self.default_limits();
        let concurrency = own.concurrency.unwrap_or_else(|| {
            defaults.concurrency.map_or(workspace_concurrency, |c| c.min(workspace_concurrency))
        });
        (concurrency, own.rate_limit.or(defaults.rate_limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(yaml: &str) -> ConnectionConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn provider_defaults_apply_when_not_overridden() {
        let resend = conn("type: resend\napi_key: ${K}\n");
        assert_eq!(resend.effective_limits(8), (8, per(2, 1_000)));
        let mailchimp = conn("type: mailchimp\napi_key: ${K}\n");
        assert_eq!(mailchimp.effective_limits(64), (10, None));
        // The workspace asking for fewer is obeyed.
        assert_eq!(mailchimp.effective_limits(4), (4, None));
        let webhook = conn("type: webhook\nurl: https://example.com\n");
        assert_eq!(webhook.effective_limits(8), (8, None));
    }

    #[test]
    fn connection_overrides_win() {
        let c = conn(
            "type: mailchimp\napi_key: ${K}\ndelivery:\n  concurrency: 20\n  rate_limit: { requests: 3, per: 1s }\n",
        );
        assert_eq!(c.effective_limits(8), (20, per(3, 1_000)));
    }
}
