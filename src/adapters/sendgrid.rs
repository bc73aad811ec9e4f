//! SendGrid (v3): marketing lists and email.

use super::adapter::{AttemptReport, Delivery};
use super::contact::{Contact, text_or_number};
use super::discover::{Discovered, MAX_PAGES, discovery_deadline, fetch, options, too_many_pages};
use super::http::{Api, deadline, metadata_id, permanent, secret, unknown_action};
use super::{BuildError, Lookup, template};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

connection_config! {
    /// A SendGrid account.
    pub struct SendgridConfig {
        /// API key (`SG.…`).
        pub api_key: Secret,
        /// Default sender when a rule gives no `from`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub from: Option<EnvString>,
        /// `global` (`api.sendgrid.com`) or `eu` (`api.eu.sendgrid.com`, EU regional subusers).
        #[serde(default, skip_serializing_if = "Region::is_default")]
        pub region: Region,
    }
}

/// SendGrid region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `api.sendgrid.com`.
    #[default]
    Global,
    /// `api.eu.sendgrid.com`.
    Eu,
}

impl Region {
    fn is_default(&self) -> bool {
        *self == Region::Global
    }
}

crate::no_env_fields!(Region);

/// Runtime of [`SendgridConfig`].
#[derive(Debug)]
pub struct SendgridAdapter {
    api: Api,
    from: Option<String>,
}

impl SendgridAdapter {
    /// Resolves the key, region and default sender.
    pub fn build(
        cfg: &SendgridConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let key = secret("api_key", &cfg.api_key, lookup)?;
        let default = match cfg.region {
            Region::Global => "https://api.sendgrid.com",
            Region::Eu => "https://api.eu.sendgrid.com",
        };
        let api = Api::new(cfg.base_url.as_ref(), default, lookup, client)?.bearer(&key)?;
        Ok(SendgridAdapter { api, from: super::http::sender(cfg.from.as_ref(), lookup)? })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let c = Contact::for_delivery(d)?;
        let (path, body, idempotent): (&[&str], Value, bool) = match d.metadata.action.as_str() {
            "add_to_list" => {
                // Phone is left out: SendGrid's `phone_number_id` is an
                // identifier (it would merge contacts), not the phone column.
                let (first, last) = (capped(&c.first_name), capped(&c.last_name));
                let mut contact =
                    Value::Object(c.standard(&[("first_name", &first), ("last_name", &last)]));
                contact["email"] = json!(contact_email(&c)?);
                if !c.custom.is_empty() {
                    contact["custom_fields"] = custom_fields(&c);
                }
                let body = json!({"list_ids": [metadata_id(d)?], "contacts": [contact]});
                (&["v3", "marketing", "contacts"], body, true)
            }
            "send_email_template" => (&["v3", "mail", "send"], self.template_mail(d, &c)?, false),
            "send_email" => (&["v3", "mail", "send"], self.plain_mail(d, &c)?, false),
            other => return Err(unknown_action("sendgrid", other)),
        };
        let call =
            self.api.call(if idempotent { Method::PUT } else { Method::POST }, path).json(&body);
        // Mail send has no idempotency key: a timeout must not send twice.
        let call = if idempotent { call } else { call.not_idempotent() };
        // A 429's `X-RateLimit-Reset` (a Unix time) is read by the default hint parsing.
        Ok(call.send(deadline).await?.default_report())
    }

    /// A dynamic template with the contact fields as its data.
    fn template_mail(&self, d: &Delivery, c: &Contact) -> Result<Value, AttemptReport> {
        let mut p = personalization(d, c)?;
        p["dynamic_template_data"] = Value::Object(c.fields(&[
            ("email", &c.email),
            ("first_name", &c.first_name),
            ("last_name", &c.last_name),
            ("name", &c.name),
            ("phone", &c.phone),
        ]));
        // An override that renders blank is left out (the spec wants at
        // least one character): the template's own subject applies.
        let ctx = template::context(d);
        if let Some(subject) = template::render_filled(d.metadata.subject.as_ref(), &ctx) {
            p["subject"] = json!(subject);
        }
        Ok(json!({
            "from": self.sender(d)?,
            "template_id": metadata_id(d)?,
            "personalizations": [p],
        }))
    }

    /// A plain-text email from the rule's subject and body templates.
    fn plain_mail(&self, d: &Delivery, c: &Contact) -> Result<Value, AttemptReport> {
        let ctx = template::context(d);
        // SendGrid refuses an empty subject or body (minLength 1), and a blank
        // one is no better: fail here, naming the field, not with a 400.
        let required = |v: &Option<String>, field: &str| {
            let text = v.as_ref().map(|t| template::render(t, &ctx)).ok_or_else(|| {
                permanent(Outcome::MappingError, format!("`send_email` needs `metadata.{field}`"))
            })?;
            if text.trim().is_empty() {
                let message = format!(
                    "`metadata.{field}` rendered empty for this event; SendGrid needs at least one character"
                );
                return Err(permanent(Outcome::MappingError, message));
            }
            Ok(text)
        };
        Ok(json!({
            "from": self.sender(d)?,
            "subject": required(&d.metadata.subject, "subject")?,
            "content": [{"type": "text/plain", "value": required(&d.metadata.body, "body")?}],
            "personalizations": [personalization(d, c)?],
        }))
    }

    /// The rule's `from`, else the connection's, as `{email, name}`.
    fn sender(&self, d: &Delivery) -> Result<Value, AttemptReport> {
        // One that renders blank (`{{payload.sender}}` absent) is not a sender.
        let from = template::render_filled(d.metadata.from.as_ref(), &template::context(d))
            .or_else(|| self.from.clone());
        let from = from.ok_or_else(|| {
            permanent(Outcome::MappingError, "no sender: set `from` on the rule or the connection")
        })?;
        Ok(address(&from))
    }
}

/// The one recipient, named when the payload has a name. The delivery id
/// rides along in `custom_args` (the per-personalization object: the spec
/// types the top-level one as a string) to correlate SendGrid's activity.
fn personalization(d: &Delivery, c: &Contact) -> Result<Value, AttemptReport> {
    let mut to = json!({"email": c.require_email()?});
    if let Some(name) = &c.name {
        to["name"] = json!(name);
    }
    Ok(json!({"to": [to], "custom_args": {"meshes_delivery_id": d.delivery_id}}))
}

/// ContactRequest caps `first_name` and `last_name` at 50 characters; a
/// longer one would fail the whole upsert, so it is cut (characters, not
/// bytes), as Discord's text is.
const NAME_LIMIT: usize = 50;
/// ContactRequest caps `email` at 254 characters.
const EMAIL_LIMIT: usize = 254;

fn capped(name: &Option<String>) -> Option<String> {
    name.as_ref().map(|n| n.chars().take(NAME_LIMIT).collect())
}

/// The contact's email, refused (not cut: it identifies the contact) when
/// longer than SendGrid accepts.
fn contact_email(c: &Contact) -> Result<&str, AttemptReport> {
    let email = c.require_email()?;
    let n = email.chars().count();
    if n > EMAIL_LIMIT {
        return Err(permanent(
            Outcome::MappingError,
            format!(
                "the payload's `email` is {n} characters long; SendGrid accepts at most {EMAIL_LIMIT}"
            ),
        ));
    }
    Ok(email)
}

/// Custom fields keyed by field id (`e1_T`). Numbers stay numbers for
/// Number fields; everything else is text, the only other type SendGrid
/// stores (Date fields take their date as text too).
fn custom_fields(c: &Contact) -> Value {
    Value::Object(c.custom.iter().map(|(id, v)| (id.clone(), text_or_number(v))).collect())
}

/// `Acme <hello@acme.dev>` → `{"email": "hello@acme.dev", "name": "Acme"}`.
fn address(text: &str) -> Value {
    match text.trim().strip_suffix('>').and_then(|t| t.rsplit_once('<')) {
        Some((name, email)) if !name.trim().is_empty() => {
            json!({"email": email.trim(), "name": name.trim()})
        }
        Some((_, email)) => json!({"email": email.trim()}),
        None => json!({"email": text.trim()}),
    }
}

provider_adapter!(SendgridAdapter, discover: options);

impl SendgridAdapter {
    /// Marketing lists and dynamic templates.
    async fn options(&self) -> Discovered {
        let until = discovery_deadline();
        let lists = ["v3", "marketing", "lists"];
        let mut out = self.every(&lists, &[("page_size", "1000")], "list", until).await?;
        // `page_size` is required and `generations` defaults to legacy.
        let templates = [("generations", "dynamic"), ("page_size", "200")];
        out.extend(self.every(&["v3", "templates"], &templates, "template", until).await?);
        Ok(out)
    }

    /// Every page of a listing: the `page_token` of `_metadata.next`.
    async fn every(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
        kind: &str,
        until: tokio::time::Instant,
    ) -> Discovered {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut call = self.api.call(Method::GET, path);
            for (k, v) in query {
                call = call.query(k, v);
            }
            if let Some(t) = &token {
                call = call.query("page_token", t);
            }
            let v = fetch(call, until).await?;
            out.extend(options(&v, "/result", kind, "id", "name"));
            token = next_token(&v);
            if token.is_none() {
                return Ok(out);
            }
        }
        Err(too_many_pages(&format!("SendGrid {kind}s")))
    }
}

/// The `page_token` of `_metadata.next` (a URL), if there is a next page.
fn next_token(v: &Value) -> Option<String> {
    let next = reqwest::Url::parse(v.pointer("/_metadata/next")?.as_str()?).ok()?;
    let token = next.query_pairs().find(|(k, _)| k == "page_token")?.1.into_owned();
    (!token.is_empty()).then_some(token)
}
