//! Salesforce (REST API, OAuth 2 refresh-token flow): campaign members and fields.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::Contact;
use super::discover::PAGE_LIMIT;
use super::discover::{
    ActionOption, Discovered, MAX_PAGES, discovery_deadline, failed, items, json_of, text,
    too_many_pages,
};
use super::http::{
    Api, Reply, deadline, delivered, metadata_id, parse_url, plain, secret, unknown_action,
};
use super::oauth::{ClientAuth, Grant, Token, TokenCache};
use super::{BuildError, Lookup, resolve_field};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// A Salesforce org, reached through a connected app's refresh token.
    pub struct SalesforceConfig {
        /// Connected app consumer key.
        pub client_id: EnvString,
        /// Connected app consumer secret.
        pub client_secret: Secret,
        /// Refresh token (scopes `api refresh_token`).
        pub refresh_token: Secret,
        /// Token endpoint host: `https://login.salesforce.com` (default),
        /// `https://test.salesforce.com` for sandboxes, or your My Domain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub login_url: Option<EnvString>,
        /// Org API host; the token response's `instance_url` is used when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub instance_url: Option<EnvString>,
        /// REST API version, e.g. `62.0`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(regex(pattern = r"^[0-9]+\.[0-9]$"))]
        pub api_version: Option<String>,
    }
}

/// REST API version used when the connection does not pin one.
const DEFAULT_VERSION: &str = "62.0";

/// Runtime of [`SalesforceConfig`].
#[derive(Debug)]
pub struct SalesforceAdapter {
    tokens: TokenCache,
    /// `base_url`, else `instance_url`; else the token's `instance_url`.
    host: Option<reqwest::Url>,
    version: String,
    client: reqwest::Client,
}

/// A person record found or created: `Contact` or `Lead`, and its id.
struct Person {
    kind: &'static str,
    id: String,
}

impl SalesforceAdapter {
    /// Sets up the refresh flow on `login_url` (default `https://login.salesforce.com`).
    pub fn build(
        cfg: &SalesforceConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
        tokens: Option<super::token_store::TokenSlot>,
    ) -> Result<Self, BuildError> {
        let login = plain("login_url", cfg.login_url.as_ref(), lookup)?
            .unwrap_or_else(|| "https://login.salesforce.com".into());
        let token_api = Api::at(parse_url("login_url", &login)?, client.clone())?;
        let client_id = resolve_field("client_id", &cfg.client_id.0, lookup)?.trim().to_string();
        let grant = Grant::RefreshToken {
            refresh_token: secret("refresh_token", &cfg.refresh_token, lookup)?,
        };
        let client_secret = secret("client_secret", &cfg.client_secret, lookup)?;
        let tokens = TokenCache::new(
            token_api,
            &["services", "oauth2", "token"],
            client_id,
            client_secret,
            ClientAuth::Body,
            grant,
        )
        .persisting(tokens);
        let host = match (
            plain("base_url", cfg.base_url.as_ref(), lookup)?,
            plain("instance_url", cfg.instance_url.as_ref(), lookup)?,
        ) {
            (Some(url), _) => Some(parse_url("base_url", &url)?),
            (None, Some(url)) => Some(parse_url("instance_url", &url)?),
            (None, None) => None,
        };
        let version = cfg.api_version.clone().unwrap_or_else(|| DEFAULT_VERSION.into());
        Ok(SalesforceAdapter { tokens, host, version, client })
    }

    /// One REST call under `/services/data/vNN.0/`, with the cached token
    /// (refreshed once on 401) on the org's host.
    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: Option<&str>,
        body: Option<&Value>,
        deadline: Instant,
    ) -> Result<Reply, AttemptReport> {
        self.tokens
            .authorized(deadline, |token| {
                let api = self.api(&token);
                let method = method.clone();
                async move {
                    let api = api?;
                    let version = format!("v{}", self.version);
                    let mut segments = vec!["services", "data", version.as_str()];
                    segments.extend_from_slice(path);
                    let mut call = api.call(method, &segments).bearer(&token.access_token);
                    if path.first() == Some(&"query") {
                        // Query pages hold up to 2,000 records.
                        call = call.read_limit(PAGE_LIMIT);
                    }
                    if let Some(q) = query {
                        call = call.query("q", q);
                    }
                    if let Some(b) = body {
                        call = call.json(b);
                    }
                    call.send(deadline).await
                }
            })
            .await
    }

    fn api(&self, token: &Arc<Token>) -> Result<Api, AttemptReport> {
        let host = match &self.host {
            Some(h) => h.clone(),
            None => token
                .response
                .get("instance_url")
                .and_then(Value::as_str)
                .and_then(|u| parse_url("instance_url", u).ok())
                .ok_or_else(|| {
                    super::http::permanent(
                        Outcome::AuthFailed,
                        "the token response has no usable `instance_url`; set `instance_url`",
                    )
                })?,
        };
        Api::at(host, self.client.clone())
            .map_err(|e| super::http::permanent(Outcome::InternalError, e.to_string()))
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let c = Contact::for_delivery(d)?;
        let target = metadata_id(d)?;
        match d.metadata.action.as_str() {
            "add_to_campaign" => self.add_to_campaign(&c, d, &target, deadline).await,
            "remove_from_campaign" => self.remove_from_campaign(&c, &target, deadline).await,
            "update_property" => self.update_property(&c, d, &target, deadline).await,
            other => Err(unknown_action("salesforce", other)),
        }
    }

    /// Adds the person (a new Lead when there is none) to the campaign; a
    /// membership that already exists counts as delivered.
    async fn add_to_campaign(
        &self,
        c: &Contact,
        d: &Delivery,
        campaign: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let p = match self.find(c, deadline).await? {
            Some(p) => p,
            None => self.create_lead(c, d, None, deadline).await?,
        };
        let body = json!({"CampaignId": campaign, format!("{}Id", p.kind): p.id});
        let reply = self
            .send(Method::POST, &["sobjects", "CampaignMember"], None, Some(&body), deadline)
            .await?;
        if error_code(&reply).as_deref() == Some("DUPLICATE_VALUE") {
            return Ok(reply.report(AttemptResult::Delivered));
        }
        Ok(classify(&reply))
    }

    /// Deletes the person's membership; no person, no membership or a
    /// membership already gone all count as delivered.
    async fn remove_from_campaign(
        &self,
        c: &Contact,
        campaign: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let Some(p) = self.find(c, deadline).await? else { return Ok(delivered()) };
        let q = format!(
            "SELECT Id FROM CampaignMember WHERE CampaignId = '{}' AND (ContactId = '{id}' OR LeadId = '{id}') LIMIT 1",
            soql(campaign),
            id = soql(&p.id)
        );
        let found = self.send(Method::GET, &["query"], Some(&q), None, deadline).await?;
        let Some(member) = found.str_at("/records/0/Id") else {
            return Ok(if found.ok() {
                found.report(AttemptResult::Delivered)
            } else {
                classify(&found)
            });
        };
        let path = ["sobjects", "CampaignMember", member.as_str()];
        let reply = self.send(Method::DELETE, &path, None, None, deadline).await?;
        Ok(if reply.status == 404 {
            reply.report(AttemptResult::Delivered)
        } else {
            classify(&reply)
        })
    }

    /// Sets one field on the person, or creates a Lead carrying it.
    async fn update_property(
        &self,
        c: &Contact,
        d: &Delivery,
        field: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let value = d
            .metadata
            .value
            .as_ref()
            .map(crate::config::model::Scalar::to_text)
            .unwrap_or_default();
        let Some(p) = self.find(c, deadline).await? else {
            self.create_lead(c, d, Some((field, &value)), deadline).await?;
            return Ok(delivered());
        };
        let body = json!({field: value});
        let reply = self
            .send(Method::PATCH, &["sobjects", p.kind, &p.id], None, Some(&body), deadline)
            .await?;
        Ok(classify(&reply))
    }

    /// The Contact with this email, else an unconverted Lead.
    async fn find(&self, c: &Contact, deadline: Instant) -> Result<Option<Person>, AttemptReport> {
        let email = soql(&c.email_key()?);
        for (kind, extra) in [("Contact", ""), ("Lead", " AND IsConverted = false")] {
            let q = format!("SELECT Id FROM {kind} WHERE Email = '{email}'{extra} LIMIT 1");
            let reply = self.send(Method::GET, &["query"], Some(&q), None, deadline).await?;
            if !reply.ok() {
                return Err(classify(&reply));
            }
            if let Some(id) = reply.str_at("/records/0/Id") {
                return Ok(Some(Person { kind, id }));
            }
        }
        Ok(None)
    }

    /// Creates a Lead. A retry after a timeout finds it first (`find` runs
    /// on every attempt), so a lost answer never makes a duplicate.
    async fn create_lead(
        &self,
        c: &Contact,
        d: &Delivery,
        field: Option<(&str, &str)>,
        deadline: Instant,
    ) -> Result<Person, AttemptReport> {
        let placeholder = Some("[not provided]".to_string());
        let company = d
            .payload
            .lookup(&["company"])
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| placeholder.clone());
        let mut body: Map<String, Value> = c.fields(&[
            ("FirstName", &c.first_name),
            ("LastName", if c.last_name.is_some() { &c.last_name } else { &placeholder }),
            ("Company", &company),
            ("Email", &c.email),
            ("Phone", &c.phone),
        ]);
        if let Some((name, value)) = field {
            body.insert(name.to_string(), json!(value));
        }
        let reply = self
            .send(Method::POST, &["sobjects", "Lead"], None, Some(&Value::Object(body)), deadline)
            .await?;
        match reply.str_at("/id") {
            Some(id) if reply.ok() => Ok(Person { kind: "Lead", id }),
            _ => Err(classify(&reply)),
        }
    }
}

/// A SOQL string literal's content: backslashes and quotes escaped.
fn soql(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The first error's `errorCode` (Salesforce errors are an array).
fn error_code(reply: &Reply) -> Option<String> {
    reply.str_at("/0/errorCode")
}

/// The org's daily API limit (403 `REQUEST_LIMIT_EXCEEDED`) and row-lock
/// contention are retried; everything else follows the default.
fn classify(reply: &Reply) -> AttemptReport {
    match error_code(reply).as_deref() {
        Some("REQUEST_LIMIT_EXCEEDED") => reply.report(AttemptResult::Retry {
            code: Outcome::RateLimited,
            after: Some(Duration::from_secs(3600)),
            message: reply.message(),
        }),
        Some("UNABLE_TO_LOCK_ROW") => reply.report(AttemptResult::Retry {
            code: Outcome::RejectedServerError,
            after: None,
            message: reply.message(),
        }),
        _ => reply.default_report(),
    }
}

provider_adapter!(SalesforceAdapter, discover: campaigns);

/// Active campaigns, for `add_to_campaign`.
const CAMPAIGNS_Q: &str =
    "SELECT Id, Name, Status FROM Campaign WHERE IsActive = true ORDER BY Name";

impl SalesforceAdapter {
    /// Active campaigns, following `nextRecordsUrl` (its query locator, on
    /// the org host) while `done` is false.
    async fn campaigns(&self) -> Discovered {
        let until = discovery_deadline();
        let mut reply = self.send(Method::GET, &["query"], Some(CAMPAIGNS_Q), None, until).await;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let v = json_of(reply.map_err(failed)?)?;
            out.extend(items(&v, "/records").iter().map(|r| {
                ActionOption::new("campaign", text(r, "Id"), text(r, "Name"))
                    .with_extra(json!({"status": r.get("Status").cloned().unwrap_or(Value::Null)}))
            }));
            let next = text(&v, "nextRecordsUrl");
            let locator = next.rsplit('/').next().unwrap_or_default();
            if v.get("done").and_then(Value::as_bool) != Some(false) || locator.is_empty() {
                return Ok(out);
            }
            reply = self.send(Method::GET, &["query", locator], None, None, until).await;
        }
        Err(too_many_pages("Salesforce campaigns"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn soql_literals_escape_quotes_and_backslashes() {
        assert_eq!(super::soql(r"o'hara\x@example.com"), r"o\'hara\\x@example.com");
    }
}
