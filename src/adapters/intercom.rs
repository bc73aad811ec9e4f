//! Intercom (API 2.14): contact tags.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::Contact;
use super::discover::{Discovered, discovery_deadline, fetch, options};
use super::http::{Api, Reply, deadline, delivered, metadata_id, secret, unknown_action};
use super::{BuildError, Lookup};
use crate::config::env::Secret;
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderName};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// An Intercom workspace.
    pub struct IntercomConfig {
        /// Access token (Developer Hub → your app → Authentication).
        pub access_token: Secret,
        /// Data region of the workspace.
        #[serde(default, skip_serializing_if = "Region::is_default")]
        pub region: Region,
    }
}

/// Intercom data region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `api.intercom.io`.
    #[default]
    Us,
    /// `api.eu.intercom.io`.
    Eu,
    /// `api.au.intercom.io`.
    Au,
}

impl Region {
    fn is_default(&self) -> bool {
        *self == Region::Us
    }
}

crate::no_env_fields!(Region);

/// The API version every request pins, so a workspace's default version
/// cannot change the shapes this adapter reads.
const VERSION: &str = "2.14";

/// Runtime of [`IntercomConfig`].
#[derive(Debug)]
pub struct IntercomAdapter {
    api: Api,
}

impl IntercomAdapter {
    /// Resolves the token; the region picks the default host.
    pub fn build(
        cfg: &IntercomConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let token = secret("access_token", &cfg.access_token, lookup)?;
        let default = match cfg.region {
            Region::Us => "https://api.intercom.io",
            Region::Eu => "https://api.eu.intercom.io",
            Region::Au => "https://api.au.intercom.io",
        };
        let api = Api::new(cfg.base_url.as_ref(), default, lookup, client)?
            .bearer(&token)?
            .with_header(ACCEPT, "application/json")
            .with_header(HeaderName::from_static("intercom-version"), VERSION);
        Ok(IntercomAdapter { api })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let contact = Contact::for_delivery(d)?;
        let add = match d.metadata.action.as_str() {
            "add_tag" => true,
            "remove_tag" => false,
            other => return Err(unknown_action("intercom", other)),
        };
        let tag = metadata_id(d)?;
        let Some(id) = self.contact_id(&contact, add, deadline).await? else {
            // Nobody to untag: already the desired state.
            return Ok(delivered());
        };
        if add {
            let body = json!({"id": tag});
            let reply = self
                .api
                .call(Method::POST, &["contacts", &id, "tags"])
                .json(&body)
                .send(deadline)
                .await?;
            return Ok(reply.default_report());
        }
        // Untagging a tag that is not applied is undocumented: look first.
        let applied = self.api.call(Method::GET, &["contacts", &id, "tags"]).send(deadline).await?;
        if !applied.ok() {
            return Ok(applied.default_report());
        }
        let tags = applied.json.as_ref().and_then(|j| j.get("data")).and_then(Value::as_array);
        if !tags.is_some_and(|t| {
            t.iter().any(|t| t.get("id").and_then(Value::as_str) == Some(tag.as_str()))
        }) {
            return Ok(applied.report(AttemptResult::Delivered));
        }
        let reply =
            self.api.call(Method::DELETE, &["contacts", &id, "tags", &tag]).send(deadline).await?;
        Ok(reply.default_report())
    }

    /// Searches by email; creates a `user` contact when `create` is set.
    async fn contact_id(
        &self,
        c: &Contact,
        create: bool,
        deadline: Instant,
    ) -> Result<Option<String>, AttemptReport> {
        let email = c.email_key()?;
        let query = json!({"query": {"field": "email", "operator": "=", "value": email}});
        let found = self
            .api
            .call(Method::POST, &["contacts", "search"])
            .json(&query)
            .send(deadline)
            .await?;
        if !found.ok() {
            return Err(found.default_report());
        }
        if let Some(id) = found.str_at("/data/0/id") {
            return Ok(Some(id));
        }
        if !create {
            return Ok(None);
        }
        let mut body = Value::Object(c.standard(&[("name", &c.name), ("phone", &c.phone)]));
        // Intercom types custom attributes itself (string, number, boolean,
        // date as Unix seconds), so mapped values keep their JSON type.
        if !c.custom.is_empty() {
            body["custom_attributes"] = Value::Object(c.custom.clone());
        }
        body["role"] = json!("user");
        body["email"] = json!(email);
        let made = self.api.call(Method::POST, &["contacts"]).json(&body).send(deadline).await?;
        match (made.status, made.str_at("/id")) {
            (200..=299, Some(id)) => Ok(Some(id)),
            // Search lags behind creation: the conflict names the existing contact.
            (409, _) => conflict_id(&made).map(Some).ok_or_else(|| made.default_report()),
            _ => Err(made.default_report()),
        }
    }
}

/// The id in `A contact matching those details already exists with id=<id>`.
fn conflict_id(reply: &Reply) -> Option<String> {
    let message = reply.str_at("/errors/0/message")?;
    let id: String =
        message.split("id=").nth(1)?.chars().take_while(char::is_ascii_alphanumeric).collect();
    (!id.is_empty()).then_some(id)
}

provider_adapter!(IntercomAdapter, discover: tags);

impl IntercomAdapter {
    /// Tags (`GET /tags` is one unpaginated list).
    async fn tags(&self) -> Discovered {
        let v = fetch(self.api.call(Method::GET, &["tags"]), discovery_deadline()).await?;
        Ok(options(&v, "/data", "tag", "id", "name"))
    }
}
