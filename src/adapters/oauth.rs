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
use super::limits::request_turn;
use super::token_store::{TokenSlot, fingerprint};
use crate::config::model::Outcome;
use futures::future::{BoxFuture, Shared};
use refresh::retry;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Tokens are refreshed this long before they expire, so a request never
/// leaves with a token that dies in flight.
const EARLY: Duration = Duration::from_secs(60);

/// How long one token request may take (waiting for another process's
/// refresh of the same connection, then the request), whoever is still
/// waiting for it: attempts stop waiting at their own deadline, but the
/// answer may carry a rotated refresh token (the provider revoked the old
/// one as it sent it), which must be kept whatever became of the attempt
/// or API request that asked. Generous: longer than attempt timeouts.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(60);

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

/// A connection's token source and cache. With a token store, adapters of
/// every config version with the same OAuth credentials share one (see
/// [`SharedCaches`]).
pub struct TokenCache {
    inner: Arc<Inner>,
}

/// The cache proper, shared by the adapters of a connection's config versions.
struct Inner {
    token_api: Api,
    path: Vec<String>,
    client_id: String,
    client_secret: String,
    client_auth: ClientAuth,
    persist: Option<Persist>,
    state: std::sync::Mutex<State>,
}

/// Where rotated refresh tokens are persisted, and the fingerprint of the
/// configured token they descend from.
struct Persist {
    slot: TokenSlot,
    configured: String,
}

/// A token request in flight, which every caller needing a token awaits.
type Flight = Shared<BoxFuture<'static, Result<Arc<Token>, AttemptReport>>>;

struct State {
    grant: Grant,
    token: Option<Arc<Token>>,
    flight: Option<Flight>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("token_api", &self.inner.token_api)
            .finish_non_exhaustive()
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
        let inner = Inner {
            token_api: token_api.redacting(&client_secret),
            path: path.iter().map(|s| (*s).to_string()).collect(),
            client_id,
            client_secret,
            client_auth,
            persist: None,
            state: std::sync::Mutex::new(State { grant, token: None, flight: None }),
        };
        TokenCache { inner: Arc::new(inner) }
    }

    /// Persists rotated refresh tokens in `slot` (no-op without one, or for
    /// grants without a refresh token), and shares the cache with the
    /// connection's other adapters with the same credentials.
    #[must_use]
    pub fn persisting(mut self, slot: Option<TokenSlot>) -> Self {
        let (Some(slot), Some(inner)) = (slot, Arc::get_mut(&mut self.inner)) else { return self };
        let state = inner.state.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Grant::RefreshToken { refresh_token } = &state.grant else { return self };
        let configured = fingerprint(refresh_token);
        let credentials = inner.credentials(&configured);
        inner.persist = Some(Persist { slot: slot.clone(), configured });
        match Arc::try_unwrap(self.inner) {
            Ok(fresh) => {
                TokenCache { inner: slot.store().caches().share(slot.key(), credentials, fresh) }
            }
            Err(inner) => TokenCache { inner },
        }
    }

    /// A token valid for at least `EARLY`, refreshing if needed. Callers
    /// needing one while it is refreshed share that refresh; one whose
    /// `deadline` passes stops waiting, and the refresh goes on (see
    /// [`REFRESH_TIMEOUT`]).
    pub async fn token(&self, mut deadline: Instant) -> Result<Arc<Token>, AttemptReport> {
        let flight = match self.inner.cached_or_flight() {
            Ok(token) => return Ok(token),
            Err(Some(flight)) => flight,
            Err(None) => {
                // The token request runs in its own task, outside this
                // attempt's budget scope: it takes its turn here.
                let waited = request_turn().await;
                deadline = deadline.checked_add(waited).unwrap_or(deadline);
                match self.inner.clone().flight() {
                    Ok(token) => return Ok(token),
                    Err(flight) => flight,
                }
            }
        };
        tokio::time::timeout_at(deadline, flight).await.unwrap_or_else(|_| {
            Err(retry(Outcome::Timeout, "timed out waiting for the OAuth token refresh"))
        })
    }

    /// Forgets `stale` (the provider refused it), unless another attempt
    /// already replaced it.
    pub async fn invalidate(&self, stale: &Arc<Token>) {
        let mut state = self.inner.state();
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

#[path = "oauth_refresh.rs"]
mod refresh;
pub use refresh::SharedCaches;

#[cfg(test)]
#[path = "oauth_tests.rs"]
mod tests;
