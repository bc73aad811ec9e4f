//! OAuth 2 access tokens for providers that need them (HubSpot, Salesforce,
//! AWeber, Intercom with OAuth, Zoom server-to-server).
//!
//! One [`TokenCache`] per connection: the token is fetched on first use,
//! reused until shortly before it expires, and dropped when the provider
//! answers 401 so [`TokenCache::authorized`] refreshes once and retries.
//! A rotated refresh token replaces the configured one in memory and, when
//! the gateway has a data directory, in its [`TokenStore`](super::token_store)
//! so that a restart keeps using it. The
//! token endpoint refusing the grant (4xx) is a permanent `auth_failed`;
//! its 5xx, 429 and network failures are retried like any call.

use super::adapter::{AttemptReport, AttemptResult};
use super::http::{Api, Call, Reply};
use super::token_store::{TokenSlot, fingerprint};
use crate::config::model::Outcome;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Tokens are refreshed this long before they expire, so a request never
/// leaves with a token that dies in flight.
const EARLY: Duration = Duration::from_secs(60);

/// Lifetime assumed when the token response has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Longest a token is reused before it is refreshed, whatever `expires_in`
/// says: a provider announcing years gains nothing, and an absurd value
/// (up to `u64::MAX` seconds) must not overflow the clock arithmetic.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// How the token is obtained.
#[derive(Clone)]
pub enum Grant {
    /// `grant_type=refresh_token` (HubSpot, Salesforce, AWeber, Intercom).
    RefreshToken {
        /// The refresh token (replaced when the provider rotates it).
        refresh_token: String,
    },
    /// Zoom server-to-server: `grant_type=account_credentials&account_id=…`.
    AccountCredentials {
        /// The Zoom account id.
        account_id: String,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grant::RefreshToken { .. } => "RefreshToken",
            Grant::AccountCredentials { .. } => "AccountCredentials",
        })
    }
}

/// Where the client credentials go: form fields (HubSpot, Salesforce) or
/// HTTP Basic (AWeber, Zoom).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    Body,
    /// `Authorization: Basic base64(client_id:client_secret)`.
    Basic,
}

/// A usable access token and the rest of the token response (Salesforce's
/// `instance_url`, scopes).
#[derive(Debug)]
pub struct Token {
    /// The bearer token.
    pub access_token: String,
    /// When to stop using it.
    pub refresh_at: Instant,
    /// The full token response, minus nothing (never logged).
    pub response: Value,
}

/// A connection's token source and cache.
pub struct TokenCache {
    token_api: Api,
    path: Vec<String>,
    client_id: String,
    client_secret: String,
    client_auth: ClientAuth,
    state: Mutex<State>,
    persist: Option<Persist>,
}

/// Where rotated refresh tokens are persisted, and the fingerprint of the
/// configured token they descend from.
struct Persist {
    slot: TokenSlot,
    configured: String,
}

struct State {
    grant: Grant,
    token: Option<Arc<Token>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").field("token_api", &self.token_api).finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache fetching tokens from `token_api` + `path` (e.g. `/oauth/v1/token`).
    pub fn new(
        token_api: Api,
        path: &[&str],
        client_id: String,
        client_secret: String,
        client_auth: ClientAuth,
        grant: Grant,
    ) -> Self {
        let redacted = match &grant {
            Grant::RefreshToken { refresh_token } => token_api.clone().redacting(refresh_token),
            Grant::AccountCredentials { .. } => token_api,
        };
        TokenCache {
            token_api: redacted.redacting(&client_secret),
            path: path.iter().map(|s| (*s).to_string()).collect(),
            client_id,
            client_secret,
            client_auth,
            state: Mutex::new(State { grant, token: None }),
            persist: None,
        }
    }

    /// Persists rotated refresh tokens in `slot` (no-op without one, or for
    /// grants without a refresh token), starting from the token persisted
    /// there if it descends from the configured one.
    #[must_use]
    pub fn persisting(mut self, slot: Option<TokenSlot>) -> Self {
        let (Some(slot), Grant::RefreshToken { refresh_token }) =
            (slot, &mut self.state.get_mut().grant)
        else {
            return self;
        };
        let configured = fingerprint(refresh_token);
        if let Some(saved) = slot.current(&configured) {
            self.token_api = self.token_api.redacting(&saved);
            *refresh_token = saved;
        }
        self.persist = Some(Persist { slot, configured });
        self
    }

    /// A token valid for at least `EARLY`, refreshing if needed. Callers
    /// waiting on one refresh share its result.
    pub async fn token(&self, deadline: Instant) -> Result<Arc<Token>, AttemptReport> {
        // Waiting behind another attempt's refresh still honours this attempt's deadline.
        let Ok(mut state) = tokio::time::timeout_at(deadline, self.state.lock()).await else {
            let result = AttemptResult::Retry {
                code: Outcome::Timeout,
                after: None,
                message: "timed out waiting for the OAuth token refresh".into(),
            };
            return Err(AttemptReport { result, http_status: None, response_excerpt: None });
        };
        if let Some(t) = &state.token
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        let token = Arc::new(self.fetch(&mut state.grant, deadline).await?);
        state.token = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` (the provider refused it), unless another attempt
    /// already replaced it.
    pub async fn invalidate(&self, stale: &Arc<Token>) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|t| Arc::ptr_eq(t, stale)) {
            state.token = None;
        }
    }

    /// Runs `call` with a token; on 401 refreshes once and runs it again.
    pub async fn authorized<F, Fut>(
        &self,
        deadline: Instant,
        mut call: F,
    ) -> Result<Reply, AttemptReport>
    where
        F: FnMut(Arc<Token>) -> Fut,
        Fut: Future<Output = Result<Reply, AttemptReport>>,
    {
        let token = self.token(deadline).await?;
        let reply = call(token.clone()).await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        self.invalidate(&token).await;
        call(self.token(deadline).await?).await
    }

    async fn fetch(&self, grant: &mut Grant, deadline: Instant) -> Result<Token, AttemptReport> {
        let segments: Vec<&str> = self.path.iter().map(String::as_str).collect();
        self.catch_up(grant);
        // The redaction list was fixed at build time; a token rotated since
        // (or read back from the token file) must not leak through an error.
        let api = match &*grant {
            Grant::RefreshToken { refresh_token } => {
                self.token_api.clone().redacting(refresh_token)
            }
            Grant::AccountCredentials { .. } => self.token_api.clone(),
        };
        let mut form: Vec<(&str, &str)> = Vec::new();
        match &*grant {
            Grant::RefreshToken { refresh_token } => {
                form.extend([("grant_type", "refresh_token"), ("refresh_token", refresh_token)]);
            }
            Grant::AccountCredentials { account_id } => {
                form.extend([("grant_type", "account_credentials"), ("account_id", account_id)]);
            }
        }
        let mut basic = None;
        match self.client_auth {
            ClientAuth::Body => form.extend([
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
            ]),
            ClientAuth::Basic => basic = Some((&self.client_id, &self.client_secret)),
        }
        let reply =
            api.call(reqwest::Method::POST, &segments).form(&form, basic).send(deadline).await?;
        let token = parse(&reply)?;
        self.keep_rotated(grant, &reply).await;
        Ok(token)
    }

    /// Takes the persisted refresh token when another adapter of the same
    /// connection (the previous config's, finishing an attempt after a
    /// reload) rotated it.
    fn catch_up(&self, grant: &mut Grant) {
        if let (Some(p), Grant::RefreshToken { refresh_token }) = (&self.persist, grant)
            && let Some(saved) = p.slot.current(&p.configured)
        {
            *refresh_token = saved;
        }
    }

    /// Keeps a refresh token the provider rotated; persisted before the
    /// access token is used, since the provider has revoked the old one.
    async fn keep_rotated(&self, grant: &mut Grant, reply: &Reply) {
        if let (Grant::RefreshToken { refresh_token }, Some(rotated)) =
            (grant, reply.str_at("/refresh_token"))
            && !rotated.is_empty()
            && rotated != *refresh_token
        {
            if let Some(p) = &self.persist {
                p.slot.save(&p.configured, &rotated).await;
            }
            *refresh_token = rotated;
        }
    }
}

/// The token from a token-endpoint reply, or why there is none.
fn parse(reply: &Reply) -> Result<Token, AttemptReport> {
    let refused = |why: String| {
        reply.report(AttemptResult::Permanent {
            code: Outcome::AuthFailed,
            message: format!("the OAuth token refresh failed: {why}"),
        })
    };
    if !reply.ok() {
        return Err(match reply.classify() {
            AttemptResult::Retry { .. }
            | AttemptResult::Deferred { .. }
            | AttemptResult::Delivered => reply.default_report(),
            AttemptResult::Permanent { .. } => {
                let why = match (reply.str_at("/error"), reply.str_at("/error_description")) {
                    (Some(e), Some(d)) => reply.redact(&format!("{e}: {d}")),
                    _ => reply.message(),
                };
                refused(why)
            }
        });
    }
    let access_token = reply
        .str_at("/access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| refused("the response has no `access_token`".into()))?;
    let lifetime = reply
        .json
        .as_ref()
        .and_then(|j| j.get("expires_in"))
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .map_or(DEFAULT_LIFETIME, Duration::from_secs)
        .min(MAX_LIFETIME);
    let now = Instant::now();
    // Unreachable with the cap; if it ever overflowed, the token would
    // simply be refreshed at its next use.
    let refresh_at = now.checked_add(lifetime.saturating_sub(EARLY)).unwrap_or(now);
    Ok(Token { access_token, refresh_at, response: reply.json.clone().unwrap_or(Value::Null) })
}

/// A connection's bearer credentials: a fixed token already set on its
/// [`Api`] (private apps, API keys) or an OAuth [`TokenCache`].
#[derive(Debug)]
pub enum Bearer {
    /// The `Api` carries `Authorization` itself.
    Fixed,
    /// Each call gets the cached access token; a 401 refreshes once.
    OAuth(Box<TokenCache>),
}

impl Bearer {
    /// Sends the call `make` builds, with the right `Authorization`.
    pub async fn send<'a, F>(&self, deadline: Instant, make: F) -> Result<Reply, AttemptReport>
    where
        F: Fn() -> Call<'a>,
    {
        match self {
            Bearer::Fixed => make().send(deadline).await,
            Bearer::OAuth(cache) => {
                cache.authorized(deadline, |t| make().bearer(&t.access_token).send(deadline)).await
            }
        }
    }
}

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
