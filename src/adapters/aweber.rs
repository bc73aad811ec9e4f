//! AWeber (API 1.0, OAuth 2 with refresh tokens): list subscriptions.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::Contact;
use super::discover::PAGE_LIMIT;
use super::discover::{
    Discovered, MAX_PAGES, discovery_deadline, failed, json_of, options, too_many_pages,
};
use super::http::{Api, Reply, deadline, metadata_id, plain, secret, unknown_action};
use super::oauth::{Bearer, ClientAuth, Grant, TokenCache};
use super::{BuildError, Lookup, resolve_field};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

connection_config! {
    /// An AWeber account, reached with an OAuth 2 app's refresh token.
    pub struct AweberConfig {
        /// OAuth client id of your AWeber app.
        pub client_id: EnvString,
        /// OAuth client secret of your AWeber app.
        pub client_secret: Secret,
        /// Refresh token from the app's authorization; access tokens (2 h) are refreshed from it.
        pub refresh_token: Secret,
        /// AWeber account id; looked up with `GET /accounts` when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub account_id: Option<EnvString>,
    }
}

/// AWeber blocks for about a minute after its rate-limit 403.
const THROTTLE_WAIT: Duration = Duration::from_secs(60);

/// Runtime of [`AweberConfig`].
#[derive(Debug)]
pub struct AweberAdapter {
    api: Api,
    auth: Bearer,
    /// The configured account id, else the first of `GET /accounts`, looked up once.
    account: OnceCell<String>,
}

impl AweberAdapter {
    /// Sets up the refresh-token flow (`https://auth.aweber.com/oauth2/token`,
    /// or the `base_url` host when the API is overridden).
    pub fn build(
        cfg: &AweberConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
        tokens: Option<super::token_store::TokenSlot>,
    ) -> Result<Self, BuildError> {
        let api =
            Api::new(cfg.base_url.as_ref(), "https://api.aweber.com/1.0", lookup, client.clone())?;
        let token_host = if cfg.base_url.is_some() {
            let mut origin = api.base().clone();
            origin.set_path("");
            Api::at(origin, client)?
        } else {
            Api::new(None, "https://auth.aweber.com", lookup, client)?
        };
        let client_id = resolve_field("client_id", &cfg.client_id.0, lookup)?.trim().to_string();
        let grant = Grant::RefreshToken {
            refresh_token: secret("refresh_token", &cfg.refresh_token, lookup)?,
        };
        let client_secret = secret("client_secret", &cfg.client_secret, lookup)?;
        let cache = TokenCache::new(
            token_host,
            &["oauth2", "token"],
            client_id,
            client_secret,
            ClientAuth::Basic,
            grant,
        )
        .persisting(tokens);
        let account = match plain("account_id", cfg.account_id.as_ref(), lookup)? {
            Some(id) if !id.is_empty() => OnceCell::from(id),
            _ => OnceCell::new(),
        };
        Ok(AweberAdapter { api, auth: Bearer::OAuth(Box::new(cache)), account })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let c = Contact::for_delivery(d)?;
        let add = match d.metadata.action.as_str() {
            "add_to_list" => true,
            "remove_from_list" => false,
            other => return Err(unknown_action("aweber", other)),
        };
        let account = self.account_id(deadline).await?;
        let list = metadata_id(d)?;
        let email = c.email_key()?;
        let subscribers = ["accounts", account.as_str(), "lists", list.as_str(), "subscribers"];
        let find = || {
            self.api.call(Method::GET, &subscribers).query("ws.op", "find").query("email", &email)
        };
        let found = self.auth.send(deadline, find).await?;
        if !found.ok() {
            return Err(classify(&found));
        }
        match (add, found.str_at("/entries/0/id")) {
            // Already on the list (whatever their status: an unsubscribe is theirs to undo).
            (true, Some(_)) | (false, None) => Ok(found.report(AttemptResult::Delivered)),
            (true, None) => self.subscribe(&c, &subscribers, deadline).await,
            (false, Some(id)) => {
                let path = [&subscribers[..], &[id.as_str()]].concat();
                self.unsubscribe(&path, deadline).await
            }
        }
    }

    /// Adds a new subscriber; one AWeber says is already subscribed counts
    /// as delivered.
    async fn subscribe(
        &self,
        c: &Contact,
        subscribers: &[&str],
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let mut body =
            Value::Object(c.standard(&[("name", &c.name), ("ip_address", &c.ip_address)]));
        body["email"] = json!(c.require_email()?);
        if !c.custom.is_empty() {
            // Keyed by the list's custom field name; AWeber's values are strings.
            let fields = c.custom_text().map(|(name, v)| (name.to_string(), Value::String(v)));
            body["custom_fields"] = Value::Object(fields.collect());
        }
        let reply = self
            .auth
            .send(deadline, || self.api.call(Method::POST, subscribers).json(&body))
            .await?;
        if reply.status == 400 && reply.message().contains("already subscribed") {
            return Ok(reply.report(AttemptResult::Delivered));
        }
        Ok(classify(&reply))
    }

    /// Marks the subscriber unsubscribed: that keeps the record and is
    /// idempotent (DELETE fails for people who have not confirmed).
    async fn unsubscribe(
        &self,
        subscriber: &[&str],
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let body = json!({"status": "unsubscribed"});
        let reply = self
            .auth
            .send(deadline, || self.api.call(Method::PATCH, subscriber).json(&body))
            .await?;
        Ok(classify(&reply))
    }

    async fn account_id(&self, deadline: Instant) -> Result<String, AttemptReport> {
        if let Some(id) = self.account.get() {
            return Ok(id.clone());
        }
        let reply = self.auth.send(deadline, || self.api.call(Method::GET, &["accounts"])).await?;
        if !reply.ok() {
            return Err(classify(&reply));
        }
        let id = reply.str_at("/entries/0/id").ok_or_else(|| {
            reply.report(AttemptResult::Permanent {
                code: Outcome::AuthFailed,
                message: "the token sees no AWeber account; set `account_id`".into(),
            })
        })?;
        Ok(self.account.get_or_init(|| async { id }).await.clone())
    }
}

/// AWeber throttles with 403 "Rate Limit Error"; other 403s are
/// permanent, and a refused address is not a credential problem.
fn classify(reply: &Reply) -> AttemptReport {
    let message = reply.message();
    match reply.status {
        403 if message.contains("Rate Limit Error") => reply.report(AttemptResult::Retry {
            code: Outcome::RateLimited,
            after: reply.retry_hint().or(Some(THROTTLE_WAIT)),
            message,
        }),
        403 if message.contains("cannot be accepted") => {
            reply.report(AttemptResult::Permanent { code: Outcome::RejectedClientError, message })
        }
        _ => reply.default_report(),
    }
}

provider_adapter!(AweberAdapter, discover: lists);

impl AweberAdapter {
    /// The account's lists, following `next_collection_link`. Only the
    /// link's query (`ws.start`, `ws.size`) is reused, on our own base URL:
    /// the token is never sent to a host the config did not name.
    async fn lists(&self) -> Discovered {
        let until = discovery_deadline();
        let account = self.account_id(until).await.map_err(failed)?;
        let mut out = Vec::new();
        let mut query: Vec<(String, String)> = Vec::new();
        for _ in 0..MAX_PAGES {
            let call = || {
                let mut c = self
                    .api
                    .call(Method::GET, &["accounts", &account, "lists"])
                    .read_limit(PAGE_LIMIT);
                for (k, v) in &query {
                    c = c.query(k, v);
                }
                c
            };
            let v = json_of(self.auth.send(until, call).await.map_err(failed)?)?;
            out.extend(options(&v, "/entries", "list", "id", "name"));
            let next = v.get("next_collection_link").and_then(Value::as_str);
            match next.and_then(|n| reqwest::Url::parse(n).ok()) {
                Some(url) => query = url.query_pairs().map(|(k, v)| (k.into(), v.into())).collect(),
                None => return Ok(out),
            }
        }
        Err(too_many_pages("AWeber lists"))
    }
}
