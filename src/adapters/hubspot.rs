//! HubSpot (CRM v3): list memberships and contact properties.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::Contact;
use super::discover::PAGE_LIMIT;
use super::discover::{
    ActionOption, Discovered, MAX_PAGES, discovery_deadline, failed, json_of, text, too_many_pages,
};
use super::http::{
    Api, Reply, deadline, delivered, invalid, metadata_id, permanent, plain, secret, unknown_action,
};
use super::oauth::{Bearer, ClientAuth, Grant, TokenCache};
use super::{BuildError, Lookup};
use crate::config::diagnostic::{Code, Issue, Path};
use crate::config::env::{EnvString, Secret};
use crate::config::model::{Outcome, Scalar};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// A HubSpot portal, through a private app's access token or an OAuth app's refresh token.
    pub struct HubspotConfig {
        /// Private app access token (`pat-…`). Use this or the three OAuth fields.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub access_token: Option<Secret>,
        /// OAuth client id (with `client_secret` and `refresh_token`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_id: Option<EnvString>,
        /// OAuth client secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub client_secret: Option<Secret>,
        /// OAuth refresh token; access tokens are refreshed from it before they expire.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refresh_token: Option<Secret>,
    }
}

impl HubspotConfig {
    pub(super) fn check(&self, at: &Path) -> Vec<Issue> {
        let oauth = [
            ("client_id", self.client_id.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("refresh_token", self.refresh_token.is_some()),
        ];
        let given = oauth.iter().filter(|(_, set)| *set).count();
        let message = match (self.access_token.is_some(), given) {
            (true, 0) | (false, 3) => return Vec::new(),
            (true, _) => "both `access_token` and OAuth fields are set: expected either `access_token` or `client_id` + `client_secret` + `refresh_token`".to_string(),
            (false, 0) => "no credentials: expected `access_token` (private app) or `client_id` + `client_secret` + `refresh_token` (OAuth)".to_string(),
            (false, _) => {
                let missing: Vec<&str> = oauth.iter().filter(|(_, set)| !set).map(|(n, _)| *n).collect();
                format!("incomplete OAuth credentials: missing `{}`", missing.join("`, `"))
            }
        };
        vec![Issue::error(Code::InvalidCredentials, at.clone(), message)]
    }
}

/// Runtime of [`HubspotConfig`].
#[derive(Debug)]
pub struct HubspotAdapter {
    api: Api,
    auth: Bearer,
}

impl HubspotAdapter {
    /// Resolves the private-app token, or sets up the OAuth refresh flow
    /// (`POST /oauth/v3/token` on the same host).
    pub fn build(
        cfg: &HubspotConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
        tokens: Option<super::token_store::TokenSlot>,
    ) -> Result<Self, BuildError> {
        let api = Api::new(cfg.base_url.as_ref(), "https://api.hubapi.com", lookup, client)?;
        if let Some(token) = &cfg.access_token {
            let token = secret("access_token", token, lookup)?;
            return Ok(HubspotAdapter { api: api.bearer(&token)?, auth: Bearer::Fixed });
        }
        let (Some(id), Some(client_secret), Some(refresh)) =
            (&cfg.client_id, &cfg.client_secret, &cfg.refresh_token)
        else {
            return Err(invalid(
                "access_token",
                "set `access_token` or `client_id` + `client_secret` + `refresh_token`",
            ));
        };
        let client_id = plain("client_id", Some(id), lookup)?.unwrap_or_default();
        let grant =
            Grant::RefreshToken { refresh_token: secret("refresh_token", refresh, lookup)? };
        let client_secret = secret("client_secret", client_secret, lookup)?;
        let cache = TokenCache::new(
            api.clone(),
            &["oauth", "v3", "token"],
            client_id,
            client_secret,
            ClientAuth::Body,
            grant,
        )
        .persisting(tokens);
        Ok(HubspotAdapter { api, auth: Bearer::OAuth(Box::new(cache)) })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let contact = Contact::for_delivery(d)?;
        let (list_op, extra) = match d.metadata.action.as_str() {
            "add_to_list" => ("add", None),
            "remove_from_list" => ("remove", None),
            "update_property" => ("", Some((metadata_id(d)?, scalar(d.metadata.value.as_ref())))),
            other => return Err(unknown_action("hubspot", other)),
        };
        // Removing someone HubSpot does not know is already done.
        let create = list_op != "remove";
        let id = match self.contact_id(&contact, create, extra.as_ref(), deadline).await? {
            Found::Existing(id) => id,
            Found::Created(_) if extra.is_some() => return Ok(delivered()),
            Found::Created(id) => id,
            Found::Absent => return Ok(delivered()),
        };
        let reply = match extra {
            Some((name, value)) => {
                let body = json!({"properties": {name: value}});
                self.auth
                    .send(deadline, || {
                        self.api
                            .call(Method::PATCH, &["crm", "v3", "objects", "contacts", &id])
                            .json(&body)
                    })
                    .await?
            }
            None => {
                let list = metadata_id(d)?;
                let path = ["crm", "v3", "lists", list.as_str(), "memberships", list_op];
                let body = json!([id]);
                let reply = self
                    .auth
                    .send(deadline, || self.api.call(Method::PUT, &path).json(&body))
                    .await?;
                return Ok(membership_result(&reply, list_op, &id));
            }
        };
        Ok(classify(&reply))
    }

    /// Finds the contact by email; creates it (with `extra` set) when asked.
    async fn contact_id(
        &self,
        c: &Contact,
        create: bool,
        extra: Option<&(String, String)>,
        deadline: Instant,
    ) -> Result<Found, AttemptReport> {
        let email = c.email_key()?;
        let path = ["crm", "v3", "objects", "contacts", email.as_str()];
        let get = || {
            self.api
                .call(Method::GET, &path)
                .query("idProperty", "email")
                .query("properties", "email")
        };
        let found = self.auth.send(deadline, get).await?;
        match (found.status, found.str_at("/id")) {
            (200, Some(id)) => return Ok(Found::Existing(id)),
            (404, _) if !create => return Ok(Found::Absent),
            (404, _) => {}
            _ => return Err(classify_answer(&found, "contact lookup")),
        }
        let body = json!({"properties": properties(c, &email, extra)?, "associations": []});
        let made = self
            .auth
            .send(deadline, || {
                self.api.call(Method::POST, &["crm", "v3", "objects", "contacts"]).json(&body)
            })
            .await?;
        match (made.status, made.str_at("/id")) {
            (200..=299, Some(id)) => Ok(Found::Created(id)),
            // Created meanwhile (or the lookup index lagged): the message names the id.
            (409, _) => existing_id(&made).map(Found::Existing).ok_or_else(|| classify(&made)),
            _ => Err(classify_answer(&made, "contact creation")),
        }
    }
}

/// A new contact's properties, every value a string as HubSpot's
/// `SimplePublicObjectInputForCreate` types them (mapped `to_number` and
/// `to_boolean` values included).
fn properties(
    c: &Contact,
    email: &str,
    extra: Option<&(String, String)>,
) -> Result<Map<String, Value>, AttemptReport> {
    let fields =
        c.fields(&[("firstname", &c.first_name), ("lastname", &c.last_name), ("phone", &c.phone)]);
    let mut out = Map::new();
    for (name, value) in fields {
        if let Some(text) = property_value(&name, &value)? {
            out.insert(name, Value::String(text));
        }
    }
    out.insert("email".into(), json!(email));
    if let Some((name, value)) = extra {
        out.insert(name.clone(), json!(value));
    }
    Ok(out)
}

/// A mapped value as HubSpot property text: numbers in plain decimal
/// (`1e21` is written out), booleans `true`/`false`, a list `;`-joined (the
/// multiple-checkbox form). Null is left out, so nothing is blanked.
fn property_value(name: &str, v: &Value) -> Result<Option<String>, AttemptReport> {
    let scalar = |v: &Value| match v {
        Value::Number(n) => Some(decimal(n)),
        other => super::transform::text(other),
    };
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => {
            let texts: Option<Vec<String>> = items.iter().map(scalar).collect();
            texts.map(|t| Some(t.join(";"))).ok_or_else(|| not_a_value(name, v))
        }
        other => scalar(other).map(Some).ok_or_else(|| not_a_value(name, v)),
    }
}

/// `n` without an exponent: integers as they are, others by `f64`'s
/// shortest round-trip form.
fn decimal(n: &serde_json::Number) -> String {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.to_string(),
        (_, Some(u), _) => u.to_string(),
        (_, _, Some(f)) => f.to_string(),
        _ => n.to_string(),
    }
}

fn not_a_value(name: &str, v: &Value) -> AttemptReport {
    let kind = if v.is_object() { "an object" } else { "a list holding lists or objects" };
    permanent(
        Outcome::MappingError,
        format!(
            "HubSpot property `{name}` takes text, a number, a boolean or a list of them; the mapping gave {kind}"
        ),
    )
}

/// [`classify`], except that a 2xx without the contact's `id` is not a
/// success: the action needs the id and was not done. Retried, since the
/// lookup and the create are both safe to repeat.
fn classify_answer(reply: &Reply, what: &str) -> AttemptReport {
    if !reply.ok() {
        return classify(reply);
    }
    reply.report(AttemptResult::Retry {
        code: Outcome::RejectedServerError,
        after: None,
        message: format!(
            "HTTP {}: HubSpot answered the {what} without the contact's `id`, so the action was not done",
            reply.status
        ),
    })
}

/// A membership change: HubSpot answers 200 even when it did not add the
/// contact, listing it in `recordIdsMissing` ("did not exist"), typically
/// right after creating it while its index lags; retried, since the add is
/// safe to repeat. A missing contact is already out of the list.
fn membership_result(reply: &Reply, op: &str, id: &str) -> AttemptReport {
    let missing = reply
        .json
        .as_ref()
        .and_then(|j| j.get("recordIdsMissing")?.as_array().cloned())
        .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(id)));
    if !(reply.ok() && op == "add" && missing) {
        return classify(reply);
    }
    reply.report(AttemptResult::Retry {
        code: Outcome::RejectedServerError,
        after: None,
        message: format!(
            "HTTP {}: HubSpot did not add contact {id} to the list: it reported the contact missing (`recordIdsMissing`), as it can just after the contact is created",
            reply.status
        ),
    })
}

/// The outcome of find-or-create.
enum Found {
    Existing(String),
    Created(String),
    Absent,
}

/// `metadata.value` as HubSpot's string property value (empty clears it).
fn scalar(v: Option<&Scalar>) -> String {
    v.map(Scalar::to_text).unwrap_or_default()
}

/// The id in a 409 `Contact already exists. Existing ID: 12345`.
fn existing_id(reply: &Reply) -> Option<String> {
    let message = reply.str_at("/message")?;
    let digits: String = message
        .split("Existing ID:")
        .nth(1)?
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}

/// A 429's `policyName`: the ten-second window clears in 10 s; the daily
/// quota not before the portal's midnight (the SDK does not retry it), in
/// a time zone the API does not tell: the connection waits a day, or less
/// when HubSpot says so.
fn classify(reply: &Reply) -> AttemptReport {
    if reply.status != 429 {
        return reply.default_report();
    }
    let policy = reply.str_at("/policyName").unwrap_or_default();
    if policy.contains("DAILY") {
        return reply.daily_quota("HubSpot's daily limit resets at the portal's midnight");
    }
    if reply.retry_hint().is_some() {
        return reply.default_report();
    }
    reply.report(AttemptResult::Retry {
        code: Outcome::RateLimited,
        after: Some(Duration::from_secs(10)),
        message: reply.message(),
    })
}

provider_adapter!(HubspotAdapter, discover: options);

impl HubspotAdapter {
    /// Contact lists (search, 500 per page by `offset` while `hasMore`)
    /// and writable contact properties with their options.
    async fn options(&self) -> Discovered {
        let until = discovery_deadline();
        let mut out = self.lists(until).await?;
        out.extend(self.properties(until).await?);
        Ok(out)
    }

    async fn lists(&self, until: Instant) -> Discovered {
        let mut out = Vec::new();
        let mut offset = 0_u64;
        for _ in 0..MAX_PAGES {
            // The spec's ListSearchRequest requires `additionalProperties`
            // (extra list properties to return): none are needed.
            let body = json!({"query": "", "count": 500, "offset": offset,
                "processingTypes": ["MANUAL", "SNAPSHOT"], "additionalProperties": []});
            let call = || {
                self.api
                    .call(Method::POST, &["crm", "v3", "lists", "search"])
                    .json(&body)
                    .read_limit(PAGE_LIMIT)
            };
            let v = json_of(self.auth.send(until, call).await.map_err(failed)?)?;
            let lists = v.get("lists").and_then(serde_json::Value::as_array);
            // Only contact lists (object type 0-1) hold people.
            out.extend(
                lists.into_iter().flatten().filter(|l| text(l, "objectTypeId") == "0-1").map(|l| {
                    ActionOption::new("list", text(l, "listId"), text(l, "name"))
                        .with_extra(json!({"processingType": text(l, "processingType")}))
                }),
            );
            let more = v.get("hasMore").and_then(serde_json::Value::as_bool).unwrap_or(false);
            let next = v.get("offset").and_then(serde_json::Value::as_u64).unwrap_or(offset);
            if !more || next == offset {
                return Ok(out);
            }
            offset = next;
        }
        Err(too_many_pages("HubSpot lists"))
    }

    async fn properties(&self, until: Instant) -> Discovered {
        let call = || {
            self.api
                .call(Method::GET, &["crm", "v3", "properties", "contacts"])
                .read_limit(PAGE_LIMIT)
        };
        let v = json_of(self.auth.send(until, call).await.map_err(failed)?)?;
        let all = v.get("results").and_then(serde_json::Value::as_array);
        let writable = |p: &&serde_json::Value| {
            let flag =
                |ptr: &str| p.pointer(ptr).and_then(serde_json::Value::as_bool).unwrap_or(false);
            !flag("/modificationMetadata/readOnlyValue") && !flag("/calculated") && !flag("/hidden")
        };
        Ok(all
            .into_iter()
            .flatten()
            .filter(writable)
            .map(|p| {
                let extra = json!({"type": text(p, "type"), "fieldType": text(p, "fieldType"),
                    "options": p.get("options").cloned().unwrap_or_else(|| json!([]))});
                ActionOption::new("property", text(p, "name"), text(p, "label")).with_extra(extra)
            })
            .collect())
    }
}
