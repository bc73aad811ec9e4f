//! MailerLite (connect.mailerlite.com API): subscriber groups.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::Contact;
use super::discover::{Discovered, MAX_PAGES, discovery_deadline, fetch, options, too_many_pages};
use super::http::{Api, deadline, metadata_id, secret, unknown_action};
use super::{BuildError, Lookup};
use crate::config::env::Secret;
use reqwest::Method;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// A MailerLite account.
    pub struct MailerliteConfig {
        /// API token (Integrations → API).
        pub api_key: Secret,
    }
}

/// Runtime of [`MailerliteConfig`].
#[derive(Debug)]
pub struct MailerliteAdapter {
    api: Api,
}

impl MailerliteAdapter {
    /// Resolves the token.
    pub fn build(
        cfg: &MailerliteConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let key = secret("api_key", &cfg.api_key, lookup)?;
        let api =
            Api::new(cfg.base_url.as_ref(), "https://connect.mailerlite.com/api", lookup, client)?
                .bearer(&key)?
                // MailerLite requires both Accept and Content-Type to be JSON.
                .with_header(ACCEPT, "application/json");
        Ok(MailerliteAdapter { api })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let contact = Contact::for_delivery(d)?;
        match d.metadata.action.as_str() {
            "add_to_group" => self.add(&contact, &metadata_id(d)?, deadline).await,
            "remove_from_group" => self.remove(&contact, &metadata_id(d)?, deadline).await,
            other => Err(unknown_action("mailerlite", other)),
        }
    }

    /// One upsert keyed on email creates the subscriber if needed and adds
    /// the group; it never removes fields or groups, so it is safe to retry.
    async fn add(
        &self,
        c: &Contact,
        group: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let mut body = json!({"email": c.email_key()?, "groups": [group]});
        // MailerLite's `name` field is the first name.
        let fields =
            c.fields(&[("name", &c.first_name), ("last_name", &c.last_name), ("phone", &c.phone)]);
        if !fields.is_empty() {
            body["fields"] = Value::Object(fields);
        }
        let reply =
            self.api.call(Method::POST, &["subscribers"]).json(&body).send(deadline).await?;
        Ok(reply.default_report())
    }

    /// Looks the subscriber up by email, then unassigns the group. No such
    /// subscriber, or not in the group, is already the desired state.
    async fn remove(
        &self,
        c: &Contact,
        group: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let email = c.email_key()?;
        let found = self.api.call(Method::GET, &["subscribers", &email]).send(deadline).await?;
        if found.status == 404 {
            return Ok(found.report(AttemptResult::Delivered));
        }
        if !found.ok() {
            return Ok(found.default_report());
        }
        let Some(id) = found.str_at("/data/id") else {
            return Err(found.report(AttemptResult::Permanent {
                code: crate::config::model::Outcome::RejectedServerError,
                message: "MailerLite returned the subscriber without `data.id`".into(),
            }));
        };
        let reply = self
            .api
            .call(Method::DELETE, &["subscribers", &id, "groups", group])
            .send(deadline)
            .await?;
        Ok(if reply.status == 404 {
            reply.report(AttemptResult::Delivered)
        } else {
            reply.default_report()
        })
    }
}

provider_adapter!(MailerliteAdapter, discover: groups);

impl MailerliteAdapter {
    /// Groups, 100 per page (`page=N` up to `meta.last_page`).
    async fn groups(&self) -> Discovered {
        let until = discovery_deadline();
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let call = self
                .api
                .call(Method::GET, &["groups"])
                .query("limit", "100")
                .query("page", &page.to_string());
            let v = fetch(call, until).await?;
            let got = options(&v, "/data", "group", "id", "name");
            let last = v.pointer("/meta/last_page").and_then(Value::as_u64).unwrap_or(0);
            let done = got.is_empty() || page as u64 >= last;
            out.extend(got);
            if done {
                return Ok(out);
            }
        }
        Err(too_many_pages("MailerLite groups"))
    }
}
