//! The HTTP helper every provider adapter calls through.
//!
//! One [`Api`] per connection (base URL, auth headers, the shared client and
//! the credentials to redact), one [`Call`] per request. A call either comes
//! back as a [`Reply`] the provider inspects (ids, `ok:false`, titles) or as
//! a finished [`AttemptReport`] (timeout, network error), so provider flows
//! chain steps with `?` on `Result<_, AttemptReport>`.
//!
//! Classification starts from [`Reply::classify`] (providers.md section 0);
//! providers override the cases they know (throttling 403s, "already a
//! member") before falling back to it.

pub use super::reply::{
    Reply, delivered, error_message, metadata_id, permanent, retry_hint, settle, unknown_action,
};

use super::adapter::AttemptReport;
use super::failure::{no_answer, transport_failure};
use super::redact::Secrets;
use super::{BuildError, Lookup, resolve_field};
use crate::config::env::{EnvString, Secret};
use crate::config::model::Outcome;
use reqwest::header::{
    AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, USER_AGENT,
};
use std::time::Duration;
use tokio::time::Instant;

/// Sent on every provider request.
const AGENT: &str = concat!("meshes/", env!("CARGO_PKG_VERSION"));

/// Most bytes of a provider response read (ids and error messages live in
/// the first kilobytes; the rest is never needed).
const BODY_LIMIT: usize = 256 * 1024;

/// One provider connection's HTTP side: base URL, fixed headers (auth) and
/// the secrets that must never appear in a message or excerpt.
#[derive(Clone)]
pub struct Api {
    base: reqwest::Url,
    headers: HeaderMap,
    secrets: Secrets,
    client: reqwest::Client,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The host only: a webhook-style base URL is itself a credential.
        f.debug_struct("Api").field("host", &self.base.host_str()).finish_non_exhaustive()
    }
}

/// A resolved secret field; kept out of `Debug` by its holders.
pub fn secret(field: &str, s: &Secret, lookup: Lookup<'_>) -> Result<String, BuildError> {
    let value = resolve_field(field, s.template(), lookup)?.trim().to_string();
    if value.is_empty() {
        return Err(invalid(field, "the value is empty"));
    }
    Ok(value)
}

/// A resolved optional plain field (`${VAR}` allowed).
pub fn plain(
    field: &str,
    s: Option<&EnvString>,
    lookup: Lookup<'_>,
) -> Result<Option<String>, BuildError> {
    s.map(|s| resolve_field(field, &s.0, lookup).map(|v| v.trim().to_string())).transpose()
}

/// A connection's default sender (`from`): a blank one would send every
/// email with an empty sender, so it is refused rather than ignored.
pub fn sender(s: Option<&EnvString>, lookup: Lookup<'_>) -> Result<Option<String>, BuildError> {
    match plain("from", s, lookup)? {
        Some(from) if from.is_empty() => Err(invalid(
            "from",
            "the value is empty: expected a sender address such as `Acme <hello@acme.dev>`, or remove the key (each rule then sets `from`)",
        )),
        from => Ok(from),
    }
}

/// A [`BuildError::Invalid`] for `field`.
pub fn invalid(field: &str, message: impl Into<String>) -> BuildError {
    BuildError::Invalid { field: field.to_string(), message: message.into() }
}

/// Parses an absolute http(s) URL with a host; errors never echo the value.
pub fn parse_url(field: &str, raw: &str) -> Result<reqwest::Url, BuildError> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| {
        invalid(field, format!("not a URL ({e}): expected an absolute http:// or https:// URL"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(field, "expected an http:// or https:// URL with a host"));
    }
    Ok(url)
}

impl Api {
    /// An API rooted at `base_url` (the connection's override) or `default`.
    pub fn new(
        base_url: Option<&EnvString>,
        default: &str,
        lookup: Lookup<'_>,
        client: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let raw = plain("base_url", base_url, lookup)?.unwrap_or_else(|| default.to_string());
        Self::at(parse_url("base_url", &raw)?, client)
    }

    /// An API rooted at an already checked URL.
    pub fn at(base: reqwest::Url, client: reqwest::Client) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        // A `base_url` with a user and password sends them as Basic auth.
        let secrets = Secrets::default().with(super::webhook::userinfo(&base));
        Ok(Api { base, headers, secrets, client })
    }

    /// An API whose URL is itself the credential (Slack and Discord
    /// webhooks): its path and query are redacted from every message.
    pub fn secret_url(base: reqwest::Url, client: reqwest::Client) -> Result<Self, BuildError> {
        let path = base.path().to_string();
        let query = base.query().unwrap_or_default().to_string();
        // The token is the last segment (Discord `/webhooks/<id>/<token>`,
        // Slack `/services/T…/B…/<token>`): redacted on its own too.
        let token = base.path_segments().and_then(Iterator::last).unwrap_or_default().to_string();
        Ok(Self::at(base, client)?.redacting(&path).redacting(&query).redacting(&token))
    }

    /// Adds a fixed header whose value is a credential (marked sensitive, redacted).
    pub fn with_secret_header(mut self, name: HeaderName, value: &str) -> Result<Self, BuildError> {
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| invalid(name.as_str(), "not a valid HTTP header value"))?;
        v.set_sensitive(true);
        self.headers.insert(name, v);
        Ok(self.redacting(value))
    }

    /// Adds a fixed, non-secret header (`Accept`, API version pins).
    pub fn with_header(mut self, name: HeaderName, value: &'static str) -> Self {
        self.headers.insert(name, HeaderValue::from_static(value));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Result<Self, BuildError> {
        self.redacting(token).with_secret_header(AUTHORIZATION, &format!("Bearer {token}"))
    }

    /// `Authorization: Basic base64(user:password)`.
    pub fn basic(self, user: &str, password: &str) -> Result<Self, BuildError> {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let header = format!("Basic {encoded}");
        self.redacting(password).redacting(&encoded).with_secret_header(AUTHORIZATION, &header)
    }

    /// Adds a value to scrub from every message and excerpt.
    pub fn redacting(mut self, secret: &str) -> Self {
        self.secrets = self.secrets.with([secret]);
        self
    }

    /// The base URL (for building absolute URLs elsewhere).
    pub fn base(&self) -> &reqwest::Url {
        &self.base
    }

    /// A request to the base URL plus `segments`, each percent-encoded (an
    /// email or id can never change the path's shape).
    pub fn call(&self, method: reqwest::Method, segments: &[&str]) -> Call<'_> {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Call {
            api: self,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent: true,
            limit: BODY_LIMIT,
            secrets: Vec::new(),
        }
    }

    /// Replaces every credential in `text` with `[redacted]`.
    pub fn redact(&self, text: &str) -> String {
        self.secrets.redact(text)
    }
}

/// One request being built.
#[derive(Debug)]
pub struct Call<'a> {
    api: &'a Api,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: HeaderMap,
    body: Option<Body>,
    idempotent: bool,
    limit: usize,
    /// Credentials of this call only (an OAuth access token, which rotates):
    /// redacted from its answer with the connection's own.
    secrets: Vec<String>,
}

/// A request body.
#[derive(Debug)]
enum Body {
    Json(Vec<u8>),
    Form(Vec<(String, String)>),
}

impl Call<'_> {
    /// Appends a query parameter.
    #[must_use]
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.url.query_pairs_mut().append_pair(key, value);
        self
    }

    /// Adds a header (ignored if the value cannot be a header, e.g. a newline in an id).
    #[must_use]
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    /// A per-call `Authorization: Bearer` (OAuth access tokens).
    #[must_use]
    pub fn bearer(mut self, token: &str) -> Self {
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            v.set_sensitive(true);
            self.headers.insert(AUTHORIZATION, v);
        }
        self.secrets.push(token.to_string());
        self
    }

    /// A JSON body (`Content-Type: application/json`).
    #[must_use]
    pub fn json(self, body: &(impl serde::Serialize + ?Sized)) -> Self {
        self.json_as(body, "application/json")
    }

    /// A JSON body with a specific content type (Slack wants a charset).
    #[must_use]
    pub fn json_as(
        mut self,
        body: &(impl serde::Serialize + ?Sized),
        content_type: &'static str,
    ) -> Self {
        self.headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        self.body = serde_json::to_vec(body).ok().map(Body::Json);
        self
    }

    /// A form body (OAuth token requests), with optional HTTP Basic client auth.
    #[must_use]
    pub fn form(mut self, fields: &[(&str, &str)], basic: Option<(&String, &String)>) -> Self {
        use base64::Engine as _;
        let pairs = fields.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        self.body = Some(Body::Form(pairs));
        if let Some((user, password)) = basic {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            if let Ok(mut v) = HeaderValue::from_str(&format!("Basic {encoded}")) {
                v.set_sensitive(true);
                self.headers.insert(AUTHORIZATION, v);
            }
            self.secrets.extend([password.clone(), encoded]);
        }
        self
    }

    /// Marks the call as not safe to repeat (a message or email without an
    /// idempotency key): when the request may have reached the provider but
    /// no answer came back, the attempt fails permanently instead of
    /// retrying, so a timeout never turns into a second message.
    #[must_use]
    pub fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// Reads up to `limit` bytes of the answer instead of `BODY_LIMIT`
    /// (discovery listings, whose pages are the data itself).
    #[must_use]
    pub fn read_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Sends, reading the answer before `deadline`. Inside a delivery
    /// attempt it first waits for the connection's request budget
    /// ([`super::limits::paced`]), and `deadline` moves by the attempt's waits.
    pub async fn send(self, deadline: Instant) -> Result<Reply, AttemptReport> {
        let waited = super::limits::request_turn().await;
        let deadline = deadline.checked_add(waited).unwrap_or(deadline);
        let client = match self.idempotent {
            true => &self.api.client,
            false => unpooled().unwrap_or(&self.api.client),
        };
        let mut request = client.request(self.method, self.url).headers(self.api.headers.clone());
        request = request.headers(self.headers);
        match self.body {
            Some(Body::Json(bytes)) => request = request.body(bytes),
            Some(Body::Form(pairs)) => request = request.form(&pairs),
            None => {}
        }
        let (idempotent, limit) = (self.idempotent, self.limit);
        let secrets = self.api.secrets.with(&self.secrets);
        match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => {
                Err(no_answer(idempotent, Outcome::Timeout, "no response within the timeout"))
            }
            Ok(Err(e)) => Err(transport_failure(&secrets, &e, idempotent)),
            Ok(Ok(response)) => Ok(read(secrets, response, deadline, limit).await),
        }
    }
}

/// The client for calls that are not safe to repeat: one connection per
/// request. A kept-alive connection the provider closes just as a request
/// is written on it fails that request with nothing received, and such a
/// call cannot be retried blindly (it fails for good, to be retried by
/// hand); a fresh connection costs a handshake, these calls are few
/// (messages, emails), and their rate limits are far below it.
fn unpooled() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::LazyLock<Option<reqwest::Client>> =
        std::sync::LazyLock::new(|| client_builder().pool_max_idle_per_host(0).build().ok());
    CLIENT.as_ref()
}

/// The settings of every client meshes sends with (the gateway's, the
/// CLI's, [`unpooled`]'s).
pub fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder()
        .user_agent(concat!("meshes/", env!("CARGO_PKG_VERSION")))
        // A redirect would resend the signed body (and its credentials) to a
        // host the config never named; a 3xx is reported as the outcome instead.
        .redirect(reqwest::redirect::Policy::none());
    super::trust::with_extra_roots(builder)
}

/// Reads at most `limit` bytes before the deadline.
async fn read(
    secrets: Secrets,
    mut response: reqwest::Response,
    deadline: Instant,
    limit: usize,
) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let (buf, complete) = read_body(&mut response, deadline, limit).await;
    // The JSON stays raw (a rotated refresh token must be read as sent);
    // messages built from it are redacted by `Reply::message`.
    let json = serde_json::from_slice(&buf).ok();
    let text = secrets.excerpt(&buf, complete);
    Reply { status, headers, json, excerpt: text, secrets }
}

/// At most `limit` bytes of the body before `deadline`, and whether that
/// is all of it. A body still arriving at the deadline keeps what came.
pub(super) async fn read_body(
    response: &mut reqwest::Response,
    deadline: Instant,
    limit: usize,
) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let take = chunk.len().min(limit - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(Ok(None)) => return (buf, true),
            _ => return (buf, false),
        }
    }
    (buf, false)
}

/// A deadline `timeout` from now (about a year for absurd timeouts).
pub fn deadline(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(365 * 86_400))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
