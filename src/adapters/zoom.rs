//! Zoom (API v2, server-to-server OAuth): meeting and webinar registrants.

use super::adapter::{AttemptReport, Delivery, QuotaScope};
use super::contact::Contact;
use super::discover::PAGE_LIMIT;
use super::discover::{
    ActionOption, Discovered, MAX_PAGES, discovery_deadline, failed, items, json_of, text,
    too_many_pages,
};
use super::http::{Api, Reply, deadline, metadata_id, permanent, secret, unknown_action};
use super::oauth::{Bearer, ClientAuth, Grant, TokenCache};
use super::reply::next_utc_midnight;
use super::{BuildError, Lookup, resolve_field};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

connection_config! {
    /// A Zoom account, through a server-to-server OAuth app.
    pub struct ZoomConfig {
        /// Account id of the server-to-server app.
        pub account_id: EnvString,
        /// Client id of the server-to-server app.
        pub client_id: EnvString,
        /// Client secret of the server-to-server app.
        pub client_secret: Secret,
    }
}

/// Runtime of [`ZoomConfig`].
#[derive(Debug)]
pub struct ZoomAdapter {
    api: Api,
    auth: Bearer,
}

impl ZoomAdapter {
    /// Sets up the server-to-server token flow. Tokens come from
    /// `https://zoom.us/oauth/token`, or from the `base_url` host when the
    /// API is overridden (proxies, local fakes).
    pub fn build(
        cfg: &ZoomConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let api =
            Api::new(cfg.base_url.as_ref(), "https://api.zoom.us/v2", lookup, client.clone())?;
        let token_host = if cfg.base_url.is_some() {
            let mut origin = api.base().clone();
            origin.set_path("");
            origin.set_query(None);
            Api::at(origin, client)?
        } else {
            Api::new(None, "https://zoom.us", lookup, client)?
        };
        let grant = Grant::AccountCredentials {
            account_id: resolve_field("account_id", &cfg.account_id.0, lookup)?.trim().to_string(),
        };
        let client_id = resolve_field("client_id", &cfg.client_id.0, lookup)?.trim().to_string();
        let client_secret = secret("client_secret", &cfg.client_secret, lookup)?;
        let cache = TokenCache::new(
            token_host,
            &["oauth", "token"],
            client_id,
            client_secret,
            ClientAuth::Basic,
            grant,
        );
        Ok(ZoomAdapter { api, auth: Bearer::OAuth(Box::new(cache)) })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let c = Contact::for_delivery(d)?;
        let (kind, meeting) = match d.metadata.action.as_str() {
            "add_meeting_registrant" => ("meetings", true),
            "add_webinar_registrant" => ("webinars", false),
            other => return Err(unknown_action("zoom", other)),
        };
        let first = c.first_name.clone().ok_or_else(|| {
            permanent(
                Outcome::MappingError,
                "Zoom requires a first name: the payload has no `first_name` or `name`",
            )
        })?;
        let mut body =
            Value::Object(c.standard(&[("last_name", &c.last_name), ("phone", &c.phone)]));
        body["email"] = json!(c.require_email()?);
        body["first_name"] = json!(first);
        if !c.custom.is_empty() {
            body["custom_questions"] = custom_questions(&c);
        }
        if meeting {
            body["auto_approve"] = json!(true);
        }
        let id = metadata_id(d)?;
        let path = [kind, id.as_str(), "registrants"];
        // Registering an email twice returns the existing registrant: safe to retry.
        let reply =
            self.auth.send(deadline, || self.api.call(Method::POST, &path).json(&body)).await?;
        Ok(classify(&reply))
    }
}

/// Past 00:00 UTC by this much, so a clock a little ahead of Zoom's does
/// not try while Zoom still counts the old day (and then wait a whole day).
pub const RESET_MARGIN: Duration = Duration::from_secs(60);

/// Zoom's per-registrant limit (3 registrations of one email a day) lifts
/// at 00:00 UTC ("do not retry until after 00:00 UTC"): the next try waits
/// for it; other 429s follow the default.
fn classify(reply: &Reply) -> AttemptReport {
    if reply.status == 429 && reply.message().contains("daily rate limit") {
        let until = next_utc_midnight(crate::clock::now_ms(), RESET_MARGIN);
        let why = "Zoom's per-registrant daily limit lifts at 00:00 UTC";
        return reply.deferred(until, QuotaScope::Delivery, why);
    }
    reply.default_report()
}

provider_adapter!(ZoomAdapter, discover: events);

impl ZoomAdapter {
    /// The account owner's upcoming meetings and webinars (`next_page_token` paging).
    async fn events(&self) -> Discovered {
        let until = discovery_deadline();
        let mut out = self.every("meetings", "meeting", until).await?;
        out.extend(self.every("webinars", "webinar", until).await?);
        Ok(out)
    }

    async fn every(&self, what: &str, kind: &str, until: tokio::time::Instant) -> Discovered {
        let mut out = Vec::new();
        let mut token = String::new();
        for _ in 0..MAX_PAGES {
            let call = || {
                let mut c = self
                    .api
                    .call(Method::GET, &["users", "me", what])
                    .query("page_size", "300")
                    .read_limit(PAGE_LIMIT);
                if what == "meetings" {
                    c = c.query("type", "upcoming");
                }
                if !token.is_empty() {
                    c = c.query("next_page_token", &token);
                }
                c
            };
            let reply = self.auth.send(until, call).await.map_err(failed)?;
            // Accounts without the webinar add-on answer 400 ("Webinar plan is missing").
            if what == "webinars" && reply.status == 400 {
                return Ok(out);
            }
            let v = json_of(reply)?;
            out.extend(items(&v, &format!("/{what}")).iter().map(|m| {
                ActionOption::new(kind, text(m, "id"), text(m, "topic")).with_extra(
                    json!({"start_time": m.get("start_time").cloned().unwrap_or(Value::Null)}),
                )
            }));
            token = text(&v, "next_page_token");
            if token.is_empty() {
                return Ok(out);
            }
        }
        Err(too_many_pages(&format!("Zoom {what}")))
    }
}

/// Custom fields as answers to the meeting's registration questions,
/// matched by question title; Zoom's answers are strings.
fn custom_questions(c: &Contact) -> Value {
    c.custom_text().map(|(title, value)| json!({"title": title, "value": value})).collect()
}
