//! Mailchimp (Marketing API 3.0): audience membership.

use super::adapter::{AttemptReport, AttemptResult, Delivery};
use super::contact::{Contact, text_or_number};
use super::discover::{Discovered, MAX_PAGES, discovery_deadline, fetch, options, too_many_pages};
use super::http::{Api, Reply, deadline, invalid, metadata_id, plain, secret, unknown_action};
use super::{BuildError, Lookup};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

connection_config! {
    /// A Mailchimp account.
    pub struct MailchimpConfig {
        /// API key (`…-us6`).
        pub api_key: Secret,
        /// Data center (`us6`); taken from the key's suffix when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub data_center: Option<EnvString>,
    }
}

/// Runtime of [`MailchimpConfig`].
#[derive(Debug)]
pub struct MailchimpAdapter {
    api: Api,
}

impl MailchimpAdapter {
    /// Resolves the key and the data center (`https://<dc>.api.mailchimp.com/3.0`).
    pub fn build(
        cfg: &MailchimpConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let key = secret("api_key", &cfg.api_key, lookup)?;
        let default = match cfg.base_url {
            // The data center only matters for the default host.
            Some(_) => String::new(),
            None => format!("https://{}.api.mailchimp.com/3.0", data_center(cfg, &key, lookup)?),
        };
        let api =
            Api::new(cfg.base_url.as_ref(), &default, lookup, client)?.basic("meshes", &key)?;
        Ok(MailchimpAdapter { api })
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let contact = Contact::for_delivery(d)?;
        let action = d.metadata.action.as_str();
        if !matches!(action, "add_to_list" | "remove_from_list") {
            return Err(unknown_action("mailchimp", action));
        }
        let list = metadata_id(d)?;
        let email = contact.email_key()?;
        let hash = subscriber_hash(&email);
        let member = ["lists", list.as_str(), "members", hash.as_str()];
        if action == "remove_from_list" {
            // Archive: history is kept and the person can be re-added later.
            let reply = self.api.call(Method::DELETE, &member).send(deadline).await?;
            if reply.status != 404 {
                return Ok(classify(&reply));
            }
            return self.absent_member(&list, deadline).await;
        }
        // PUT on the hash is an upsert: safe to retry, and an existing
        // member's status (e.g. unsubscribed) is left alone.
        let mut body =
            json!({"email_address": contact.require_email()?, "status_if_new": "subscribed"});
        let mut merge = contact.standard(&[
            ("FNAME", &contact.first_name),
            ("LNAME", &contact.last_name),
            ("PHONE", &contact.phone),
        ]);
        merge.extend(contact.custom.iter().map(|(k, v)| (k.clone(), merge_value(v))));
        if !merge.is_empty() {
            body["merge_fields"] = Value::Object(merge);
        }
        let reply = self
            .api
            .call(Method::PUT, &member)
            .query("skip_merge_validation", "true")
            .json(&body)
            .send(deadline)
            .await?;
        Ok(classify(&reply))
    }
}

impl MailchimpAdapter {
    /// A 404 on a member's DELETE: the member is already gone (done) or the
    /// audience does not exist (permanent). Mailchimp answers both with the
    /// same "Resource Not Found" problem, so the audience itself is read.
    async fn absent_member(
        &self,
        list: &str,
        deadline: tokio::time::Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let reply = self
            .api
            .call(Method::GET, &["lists", list])
            .query("fields", "id")
            .send(deadline)
            .await?;
        Ok(match reply.status {
            200..=299 => reply.report(AttemptResult::Delivered),
            404 => reply.report(AttemptResult::Permanent {
                code: Outcome::RejectedClientError,
                message: format!("{}: audience `{list}` does not exist", reply.message()),
            }),
            _ => classify(&reply),
        })
    }
}

/// A merge field value as the spec types it: text, a number, or a whole
/// address object (`addr1`, `city`, `state`, `zip` text, optionally `addr2`
/// and `country`); anything else is sent as text.
fn merge_value(v: &Value) -> Value {
    const REQUIRED: [&str; 4] = ["addr1", "city", "state", "zip"];
    let address = v.as_object().is_some_and(|o| {
        REQUIRED.iter().all(|k| o.contains_key(*k))
            && o.iter().all(|(k, v)| {
                v.is_string() && (REQUIRED.contains(&k.as_str()) || k == "addr2" || k == "country")
            })
    });
    if address { v.clone() } else { text_or_number(v) }
}

/// `data_center`, else the key's `-us6` suffix; only `[a-z0-9]` (it becomes a host name).
fn data_center(cfg: &MailchimpConfig, key: &str, lookup: Lookup<'_>) -> Result<String, BuildError> {
    let (field, dc) = match plain("data_center", cfg.data_center.as_ref(), lookup)? {
        Some(dc) => ("data_center", dc),
        None => ("api_key", key.rsplit_once('-').map(|(_, dc)| dc.to_string()).unwrap_or_default()),
    };
    if dc.is_empty() || !dc.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        let message = if field == "data_center" {
            "not a data center: expected lowercase letters and digits, e.g. `us6`"
        } else {
            "no data center: expected a key ending in `-<dc>` (e.g. `…-us6`) or `data_center: us6`"
        };
        return Err(invalid(field, message));
    }
    Ok(dc)
}

/// Mailchimp's member id: MD5 of the lower-cased email, in hex.
pub fn subscriber_hash(email: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(email.to_lowercase().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Mailchimp throttles with a 403 that is not one of its problem+json
/// errors at high volume (bare, or a proxy's HTML page); a 403 problem is
/// a permissions or plan problem.
fn classify(reply: &Reply) -> AttemptReport {
    if reply.status == 403 && !is_problem(reply) {
        return reply.throttled("Mailchimp throttled the request (403 without a problem body)");
    }
    reply.default_report()
}

/// Whether the body is one of Mailchimp's errors: a body sent as
/// `application/problem+json`, or JSON with a problem's `title` or `detail`.
fn is_problem(reply: &Reply) -> bool {
    if reply.excerpt.trim().is_empty() {
        return false;
    }
    let content_type = reply.headers.get(reqwest::header::CONTENT_TYPE);
    let media = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/problem+json") {
        return true;
    }
    let field = |k: &str| reply.json.as_ref().and_then(|j| j.get(k)).is_some_and(Value::is_string);
    field("title") || field("detail")
}

provider_adapter!(MailchimpAdapter, discover: audiences);

impl MailchimpAdapter {
    /// Audiences, 1000 per page (offset paging until `total_items`).
    async fn audiences(&self) -> Discovered {
        let until = discovery_deadline();
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let offset = out.len().to_string();
            let call = self
                .api
                .call(Method::GET, &["lists"])
                .query("count", "1000")
                .query("offset", &offset)
                .query("fields", "lists.id,lists.name,total_items");
            let v = fetch(call, until).await?;
            let got = options(&v, "/lists", "list", "id", "name");
            let total = v.get("total_items").and_then(Value::as_u64).unwrap_or(0);
            let done = got.is_empty();
            out.extend(got);
            if done || out.len() as u64 >= total {
                return Ok(out);
            }
        }
        Err(too_many_pages("Mailchimp audiences"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_hash_is_md5_of_the_lower_cased_email() {
        // md5("urist.mcvankab@freddiesjokes.com"), Mailchimp's documented example.
        assert_eq!(
            subscriber_hash("Urist.McVankab@freddiesjokes.com"),
            "62eeb292278cc15f5817cb78f7790b08"
        );
    }
}
