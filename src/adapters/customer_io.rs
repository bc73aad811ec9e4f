//! Customer.io (Track API): tracked events and manual segments.

use super::adapter::{AttemptReport, Delivery};
use super::contact::Contact;
use super::discover::{
    ActionOption, DiscoverError, Discovered, discovery_deadline, fetch, items, text,
};
use super::http::{Api, deadline, metadata_id, permanent, secret, unknown_action};
use super::{BuildError, Lookup, resolve_field};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

connection_config! {
    /// A Customer.io workspace (Track API credentials from Settings → API Credentials).
    pub struct CustomerIoConfig {
        /// Track API site id.
        pub site_id: EnvString,
        /// Track API key.
        pub api_key: Secret,
        /// App API key (Bearer), used only to list manual segments for `meshes actions`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub app_api_key: Option<Secret>,
        /// Data region of the workspace.
        #[serde(default, skip_serializing_if = "Region::is_default")]
        pub region: Region,
    }
}

/// Customer.io data region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    /// `track.customer.io`.
    #[default]
    Us,
    /// `track-eu.customer.io`.
    Eu,
}

impl Region {
    fn is_default(&self) -> bool {
        *self == Region::Us
    }
}

crate::no_env_fields!(Region);

/// Runtime of [`CustomerIoConfig`] (Track API).
#[derive(Debug)]
pub struct CustomerIoAdapter {
    api: Api,
    /// The App API (segment listing), or why it is unavailable: an unset
    /// `app_api_key` must not stop deliveries, which never need it.
    app: Result<Api, String>,
}

/// How the person is addressed: the payload's `id` when it has one (the
/// workspace's primary identifier), else the email.
struct Person {
    identifier: String,
    id_type: &'static str,
}

impl CustomerIoAdapter {
    /// Resolves the site id and key (HTTP Basic); the region picks the host.
    pub fn build(
        cfg: &CustomerIoConfig,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let site = resolve_field("site_id", &cfg.site_id.0, lookup)?;
        let key = secret("api_key", &cfg.api_key, lookup)?;
        let default = match cfg.region {
            Region::Us => "https://track.customer.io",
            Region::Eu => "https://track-eu.customer.io",
        };
        let api = Api::new(cfg.base_url.as_ref(), default, lookup, client.clone())?
            .basic(site.trim(), &key)?;
        let app = app_api(cfg, lookup, client).map_err(|e| e.to_string());
        Ok(CustomerIoAdapter { api, app })
    }

    /// Manual segments (App API `GET /v1/segments`, not paginated).
    async fn segments(&self) -> Discovered {
        let app = self.app.as_ref().map_err(|why| DiscoverError::Unsupported(why.clone()))?;
        let v = fetch(app.call(Method::GET, &["v1", "segments"]), discovery_deadline()).await?;
        Ok(items(&v, "/segments")
            .iter()
            .filter(|s| text(s, "type") == "manual")
            .map(|s| ActionOption::new("segment", text(s, "id"), text(s, "name")))
            .collect())
    }

    async fn attempt(
        &self,
        d: &Delivery,
        timeout: Duration,
    ) -> Result<AttemptReport, AttemptReport> {
        let deadline = deadline(timeout);
        let c = Contact::for_delivery(d)?;
        let who = person(&c)?;
        match d.metadata.action.as_str() {
            "track_event" => {
                self.identify(&c, &who, deadline).await?;
                let name =
                    d.metadata.event_name_override.clone().unwrap_or_else(|| d.event.clone());
                let body = Track {
                    name,
                    data: d.payload.raw(),
                    timestamp: d.created_at_ms / 1000,
                    // Customer.io drops a repeated event id: retries never double-count.
                    id: ulid(d.created_at_ms, &d.delivery_id),
                };
                let path = ["api", "v1", "customers", who.identifier.as_str(), "events"];
                Ok(self
                    .api
                    .call(Method::POST, &path)
                    .json(&body)
                    .send(deadline)
                    .await?
                    .default_report())
            }
            "add_to_segment" => {
                // Assume add_customers does not create people: identify first.
                self.identify(&c, &who, deadline).await?;
                self.segment(d, &who, "add_customers", deadline).await
            }
            "remove_from_segment" => self.segment(d, &who, "remove_customers", deadline).await,
            other => Err(unknown_action("customer_io", other)),
        }
    }

    /// `PUT /api/v1/customers/{identifier}`: an upsert of the standard attributes.
    async fn identify(
        &self,
        c: &Contact,
        who: &Person,
        deadline: Instant,
    ) -> Result<(), AttemptReport> {
        let body = Value::Object(c.fields(&[
            ("email", &c.email),
            ("first_name", &c.first_name),
            ("last_name", &c.last_name),
            ("phone", &c.phone),
        ]));
        let path = ["api", "v1", "customers", who.identifier.as_str()];
        let reply = self.api.call(Method::PUT, &path).json(&body).send(deadline).await?;
        if reply.ok() { Ok(()) } else { Err(reply.default_report()) }
    }

    /// Manual segment membership; set semantics, so repeats are harmless.
    async fn segment(
        &self,
        d: &Delivery,
        who: &Person,
        op: &str,
        deadline: Instant,
    ) -> Result<AttemptReport, AttemptReport> {
        let segment = metadata_id(d)?;
        let body = json!({"ids": [who.identifier]});
        let call = self.api.call(Method::POST, &["api", "v1", "segments", &segment, op]);
        Ok(call.query("id_type", who.id_type).json(&body).send(deadline).await?.default_report())
    }
}

/// A `track_event` body, in this field order; the payload goes in as its
/// text, never as a tree.
#[derive(Serialize)]
struct Track<'a> {
    name: String,
    data: &'a serde_json::value::RawValue,
    timestamp: u64,
    id: String,
}

fn person(c: &Contact) -> Result<Person, AttemptReport> {
    match (&c.id, &c.email) {
        (Some(id), _) => Ok(Person { identifier: id.clone(), id_type: "id" }),
        (None, Some(_)) => Ok(Person { identifier: c.email_key()?, id_type: "email" }),
        (None, None) => Err(permanent(
            Outcome::MappingError,
            "the payload has neither `id` nor `email` to identify the person",
        )),
    }
}

/// A ULID fixed per delivery: the event's time (ms) and 80 bits of
/// SHA-256 of the delivery id, in Crockford base32.
pub fn ulid(created_at_ms: u64, delivery_id: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let hash = Sha256::digest(delivery_id.as_bytes());
    let random = hash[..10].iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let value = (u128::from(created_at_ms & 0xFFFF_FFFF_FFFF) << 80) | random;
    (0..26).map(|i| char::from(ALPHABET[((value >> (125 - 5 * i)) & 31) as usize])).collect()
}

provider_adapter!(CustomerIoAdapter, discover: segments);

/// The App API (Bearer `app_api_key`): `base_url` when set (proxies, fakes),
/// else the region's `api.customer.io` host.
fn app_api(
    cfg: &CustomerIoConfig,
    lookup: Lookup<'_>,
    client: reqwest::Client,
) -> Result<Api, BuildError> {
    let Some(app_key) = &cfg.app_api_key else {
        return Err(super::http::invalid(
            "app_api_key",
            "not set: listing segments needs a Customer.io App API key",
        ));
    };
    let key = secret("app_api_key", app_key, lookup)?;
    let default = match cfg.region {
        Region::Us => "https://api.customer.io",
        Region::Eu => "https://api-eu.customer.io",
    };
    Api::new(cfg.base_url.as_ref(), default, lookup, client)?.bearer(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_stable_time_ordered_and_well_formed() {
        let a = ulid(1_700_000_000_000, "dlv_1");
        assert_eq!(a, ulid(1_700_000_000_000, "dlv_1"));
        assert_ne!(a, ulid(1_700_000_000_000, "dlv_2"));
        assert!(ulid(1_700_000_000_001, "dlv_0") > a);
        assert_eq!(a.len(), 26);
        // 1700000000000 ms = 0x18BCFE56800 → the ULID time prefix "01HF7YAT00".
        assert!(a.starts_with("01HF7YAT00"), "{a}");
    }
}
