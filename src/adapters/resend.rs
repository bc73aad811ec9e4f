//! Resend: contact segments and template emails.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::{Contact, text_or_number};
use super::discover::{
    Discovered, MAX_PAGES, discovery_deadline, fetch, items, text, too_many_pages,
};
use super::http::{Api, Reply, deadline, metadata_id, secret, unknown_action};
use super::{BuildError, Lookup, template};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// A Resend account. Segment actions need a full-access key.
    pub struct ResendConfig {
        /// API key (`re_…`).
        pub api_key: Secret,
        /// Default sender (`Acme <hello@acme.dev>`) when a rule gives no `from`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<EnvString>,
    }
}

/// Runtime of [`ResendConfig`].
#[derive(Debug)]
pub struct ResendAdapter {
    api: Api,
    from: Option<String>,
}

impl ResendAdapter {
    /// Resolves the key and default sender.
    pub fn build(
        cfg: &ResendConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let key = secret("api_key", &cfg.api_key, lookup)?;
        let api = Api::new(cfg.base_url.as_ref(), "https://api.resend.com", lookup, client)?
            .bearer(&key)?;
        Ok(ResendAdapter { api, from: super::http::sender(cfg.from.as_ref(), lookup)? })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let contact = Contact::for_delivery(d)?;
        match d.metadata.action.as_str() {
            "add_to_segment" => self.add_to_segment(&contact, &metadata_id(d)?, deadline).await,
            "remove_from_segment" => {
                let email = contact.email_key()?;
                let segment = metadata_id(d)?;
                let reply = self
                    .api
                    .call(Method::DELETE, &["contacts", &email, "segments", &segment])
                    .send(deadline)
                    .await?;
                // Not in the segment (or no such contact): already the desired state.
                Ok(if reply.status == 404 {
                    reply.report(AttemptResult::Delivered)
                } else {
                    classify(&reply)
                })
            }
            "send_email_template" => self.send_template(d, &contact, deadline).await,
            other => Err(unknown_action("resend", other)),
        }
    }

    /// Adds by email; a contact Resend does not know yet is created with
    /// the segment in one call.
    async fn add_to_segment(
        &self,
        c: &Contact,
        segment: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let email = c.email_key()?;
        let add = || {
            self.api.call(Method::POST, &["contacts", &email, "segments", segment]).send(deadline)
        };
        let reply = add().await?;
        if reply.status != 404 {
            return Ok(classify(&reply));
        }
        let mut body = json!({"email": email, "segments": [segment]});
        for (key, value) in [("first_name", &c.first_name), ("last_name", &c.last_name)] {
            if let Some(v) = value {
                body[key] = json!(v);
            }
        }
        if !c.custom.is_empty() {
            body["properties"] = Value::Object(c.custom.clone());
        }
        let created = self.api.call(Method::POST, &["contacts"]).json(&body).send(deadline).await?;
        // Created meanwhile by another attempt: the add-by-email now works.
        if created.status == 409 {
            return Ok(classify(&add().await?));
        }
        Ok(classify(&created))
    }

    /// `POST /emails` with the delivery id as `Idempotency-Key`: a retry
    /// after a timeout returns the first email instead of sending again.
    async fn send_template(
        &self,
        d: &Delivery,
        c: &Contact,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let to = c.require_email()?;
        let ctx = template::context(d);
        let mut body = json!({
            "to": [to],
            "template": {"id": metadata_id(d)?, "variables": variables(c)},
        });
        // A published template has its own subject and sender, which these
        // override (Resend's template docs); one that renders blank is left
        // out rather than sent empty. The OpenAPI file marks both required,
        // but Resend's own send-with-template example sends neither.
        let from = template::render_filled(d.metadata.from.as_ref(), &ctx);
        if let Some(from) = from.or_else(|| self.from.clone()) {
            body["from"] = json!(from);
        }
        if let Some(subject) = template::render_filled(d.metadata.subject.as_ref(), &ctx) {
            body["subject"] = json!(subject);
        }
        let reply = self
            .api
            .call(Method::POST, &["emails"])
            .header("idempotency-key", &d.delivery_id)
            .json(&body)
            .send(deadline)
            .await?;
        Ok(classify(&reply))
    }
}

/// Template variables from the contact: `EMAIL`, `FIRST_NAME`, `LAST_NAME`,
/// `NAME`, `PHONE` when present, then the mapped custom fields; the spec
/// types each value string or number, so others are sent as text.
fn variables(c: &Contact) -> Value {
    let mut vars = c.standard(&[
        ("EMAIL", &c.email),
        ("FIRST_NAME", &c.first_name),
        ("LAST_NAME", &c.last_name),
        ("NAME", &c.name),
        ("PHONE", &c.phone),
    ]);
    vars.extend(c.custom.iter().map(|(k, v)| (k.clone(), text_or_number(v))));
    Value::Object(vars)
}

/// Resend's error `name` decides where the status alone is ambiguous.
fn classify(reply: &Reply) -> AttemptReport {
    let name = reply.str_at("/name").unwrap_or_default();
    let message = reply.message();
    let result = match (reply.status, name.as_str()) {
        // Another attempt with the same key is still running.
        (409, "concurrent_idempotent_requests") => {
            AttemptResult::Retry { code: Outcome::RateLimited, after: reply.retry_hint(), message }
        }
        // The team's quota: "wait until 24 hours have passed" (or the
        // `retry-after` Resend sends), for every delivery of the connection.
        (429, "daily_quota_exceeded") => {
            return reply.daily_quota("Resend's daily sending quota");
        }
        (429, "monthly_quota_exceeded") => {
            AttemptResult::Permanent { code: Outcome::RateLimited, message }
        }
        // 403 also means "domain not verified", which is not a credential problem.
        (403, "validation_error") | (451, _) => {
            AttemptResult::Permanent { code: Outcome::RejectedClientError, message }
        }
        _ => return reply.default_report(),
    };
    reply.report(result)
}

provider_adapter!(ResendAdapter, discover: options);

impl ResendAdapter {
    /// Segments and published templates.
    async fn options(&self) -> Discovered {
        let until = discovery_deadline();
        let mut out = Vec::new();
        for (path, kind) in [("segments", "segment"), ("templates", "template")] {
            for item in self.every(path, until).await? {
                // Only published templates can be sent.
                if kind == "template" && text(&item, "status") != "published" {
                    continue;
                }
                let option = super::discover::ActionOption::new(
                    kind,
                    text(&item, "id"),
                    text(&item, "name"),
                );
                let alias = text(&item, "alias");
                out.push(if alias.is_empty() {
                    option
                } else {
                    option.with_extra(json!({"alias": alias}))
                });
            }
        }
        Ok(out)
    }

    /// Every item of a cursor listing (`after=<last id>` while `has_more`).
    async fn every(
        &self,
        path: &str,
        until: Instant,
    ) -> Result<Vec<Value>, super::discover::DiscoverError> {
        let mut all: Vec<Value> = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut call = self.api.call(Method::GET, &[path]).query("limit", "100");
            let last = all.last().map(|v| text(v, "id")).unwrap_or_default();
            if !last.is_empty() {
                call = call.query("after", &last);
            }
            let v = fetch(call, until).await?;
            let page = items(&v, "/data");
            let more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
            all.extend(page.iter().cloned());
            if !more || page.is_empty() {
                return Ok(all);
            }
        }
        Err(too_many_pages(&format!("Resend {path}")))
    }
}
