//! ActiveCampaign (API v3): lists, tags and contact sync.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::Contact;
use super::discover::{Discovered, MAX_PAGES, discovery_deadline, fetch, options, too_many_pages};
use super::http::{
    Api, Reply, deadline, delivered, metadata_id, parse_url, secret, unknown_action,
};
use super::{BuildError, Lookup, resolve_field};
use crate::config::env::{EnvString, Secret};
use reqwest::Method;
use reqwest::header::{ACCEPT, HeaderName};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// An ActiveCampaign account. Copy the API URL and key from Settings → Developer.
    pub struct ActiveCampaignConfig {
        /// The account's API URL exactly as shown in Settings → Developer
        /// (e.g. `https://acme.api-us1.com`); ActiveCampaign asks clients not to build it.
        pub api_url: EnvString,
        /// API key (`Api-Token` header).
        pub api_key: Secret,
    }
}

/// Runtime of [`ActiveCampaignConfig`].
#[derive(Debug)]
pub struct ActiveCampaignAdapter {
    api: Api,
}

impl ActiveCampaignAdapter {
    /// Resolves the key; the base is `base_url`, else `<api_url>/api/3`.
    pub fn build(
        cfg: &ActiveCampaignConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let key = secret("api_key", &cfg.api_key, lookup)?;
        let api_url = resolve_field("api_url", &cfg.api_url.0, lookup)?;
        let default =
            format!("{}/api/3", parse_url("api_url", &api_url)?.as_str().trim_end_matches('/'));
        let api = Api::new(cfg.base_url.as_ref(), &default, lookup, client)?
            .redacting(&key)
            .with_secret_header(HeaderName::from_static("api-token"), &key)?
            .with_header(ACCEPT, "application/json");
        Ok(ActiveCampaignAdapter { api })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let c = Contact::for_delivery(d)?;
        let action = d.metadata.action.as_str();
        // Removing from someone ActiveCampaign does not know is already done.
        let id = match action {
            "sync_contact" => return self.sync(&c, deadline).await.map(|(_, report)| report),
            "add_to_list" | "add_tag" => self.sync(&c, deadline).await?.0,
            "remove_from_list" | "remove_tag" => match self.find(&c, deadline).await? {
                Some(id) => id,
                None => return Ok(delivered()),
            },
            other => return Err(unknown_action("activecampaign", other)),
        };
        let target = metadata_id(d)?;
        let reply = match action {
            "add_to_list" | "remove_from_list" => {
                // Status 1 subscribes, 2 unsubscribes; setting a status is idempotent.
                let status = if action == "add_to_list" { 1 } else { 2 };
                let body =
                    json!({"contactList": {"list": target, "contact": id, "status": status}});
                self.api.call(Method::POST, &["contactLists"]).json(&body).send(deadline).await?
            }
            _ => return self.tag(action == "add_tag", &id, &target, deadline).await,
        };
        Ok(reply.default_report())
    }

    /// `contact/sync` upserts on email; returns the contact id.
    async fn sync(
        &self,
        c: &Contact,
        deadline: Instant,
    ) -> Result<(String, AttemptReport), AttemptReport> {
        let mut contact = Value::Object(c.standard(&[
            ("firstName", &c.first_name),
            ("lastName", &c.last_name),
            ("phone", &c.phone),
        ]));
        contact["email"] = json!(c.require_email()?);
        if !c.custom.is_empty() {
            contact["fieldValues"] = field_values(c);
        }
        let reply = self
            .api
            .call(Method::POST, &["contact", "sync"])
            .json(&json!({"contact": contact}))
            .send(deadline)
            .await?;
        match reply.str_at("/contact/id") {
            Some(id) if reply.ok() => Ok((id, reply.report(AttemptResult::Delivered))),
            _ => Err(reply.default_report()),
        }
    }

    /// The contact id by email, without creating one.
    async fn find(&self, c: &Contact, deadline: Instant) -> Result<Option<String>, AttemptReport> {
        let email = c.email_key()?;
        let reply =
            self.api.call(Method::GET, &["contacts"]).query("email", &email).send(deadline).await?;
        if !reply.ok() {
            return Err(reply.default_report());
        }
        Ok(reply.str_at("/contacts/0/id"))
    }

    /// Tags need the contact's tag rows: adding skips an existing row,
    /// removing deletes the row (not the tag).
    async fn tag(
        &self,
        add: bool,
        id: &str,
        tag: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let rows =
            self.api.call(Method::GET, &["contacts", id, "contactTags"]).send(deadline).await?;
        if !rows.ok() {
            return Ok(rows.default_report());
        }
        match (add, row_for(&rows, tag)) {
            (true, Some(_)) | (false, None) => Ok(rows.report(AttemptResult::Delivered)),
            (true, None) => {
                let body = json!({"contactTag": {"contact": id, "tag": tag}});
                Ok(self
                    .api
                    .call(Method::POST, &["contactTags"])
                    .json(&body)
                    .send(deadline)
                    .await?
                    .default_report())
            }
            (false, Some(row)) => {
                let reply =
                    self.api.call(Method::DELETE, &["contactTags", &row]).send(deadline).await?;
                // Deleted meanwhile: already removed.
                Ok(if reply.status == 404 {
                    reply.report(AttemptResult::Delivered)
                } else {
                    reply.default_report()
                })
            }
        }
    }
}

/// Custom fields as `fieldValues`: keyed by the custom field id, valued as
/// text (ActiveCampaign stores every custom value as a string).
fn field_values(c: &Contact) -> Value {
    c.custom_text().map(|(field, value)| json!({"field": field, "value": value})).collect()
}

/// The `contactTags[]` row id carrying `tag`.
fn row_for(rows: &Reply, tag: &str) -> Option<String> {
    let list = rows.json.as_ref()?.get("contactTags")?.as_array()?;
    let text = |v: Option<&Value>| match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    list.iter().find(|r| text(r.get("tag")).as_deref() == Some(tag)).and_then(|r| text(r.get("id")))
}

provider_adapter!(ActiveCampaignAdapter, discover: options);

impl ActiveCampaignAdapter {
    /// Lists and tags, 100 per page (offset paging up to `meta.total`).
    async fn options(&self) -> Discovered {
        let until = discovery_deadline();
        let mut out = self.every("lists", "list", "name", until).await?;
        out.extend(self.every("tags", "tag", "tag", until).await?);
        Ok(out)
    }

    async fn every(&self, path: &str, kind: &str, name: &str, until: Instant) -> Discovered {
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let offset = out.len().to_string();
            let call =
                self.api.call(Method::GET, &[path]).query("limit", "100").query("offset", &offset);
            let v = fetch(call, until).await?;
            let got = options(&v, &format!("/{path}"), kind, "id", name);
            // `meta.total` is a string in ActiveCampaign's answers.
            let total = super::discover::text(&v, "/meta/total").parse::<usize>().unwrap_or(0);
            let done = got.is_empty();
            out.extend(got);
            if done || out.len() >= total {
                return Ok(out);
            }
        }
        Err(too_many_pages(&format!("ActiveCampaign {path}")))
    }
}
