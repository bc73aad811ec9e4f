//! The token request of a [`TokenCache`](super::TokenCache): one at a time
//! per cache, in a task of its own that its callers cannot cancel, and
//! caches shared by the adapters of a connection's config versions.

use super::{AttemptReport, AttemptResult, ClientAuth, Flight, Grant, Inner, Outcome};
use super::{Instant, Reply, Token, parse};
use super::{REFRESH_TIMEOUT, State};
use crate::adapters::http::deadline;
use futures::FutureExt;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// The token caches of a gateway's connections, by `<workspace>/<connection>`
/// and a fingerprint of the OAuth credentials. A reload builds new adapters
/// while attempts on the old ones still run: with a cache each, both would
/// refresh with the same refresh token, and the provider, having rotated it
/// for the first, refuses the second for good. Like the request budgets,
/// the new config's adapter takes the live cache unless the credentials
/// changed (a cache of old credentials keeps its own token chain).
#[derive(Default)]
pub struct SharedCaches(std::sync::Mutex<HashMap<String, (String, Weak<Inner>)>>);

impl std::fmt::Debug for SharedCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCaches")
    }
}

impl SharedCaches {
    /// The live cache of `key` for `credentials`, or `fresh`, recorded as it.
    pub(super) fn share(&self, key: &str, credentials: String, fresh: Inner) -> Arc<Inner> {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Connections no longer configured (every adapter dropped) go.
        map.retain(|_, (_, cache)| cache.strong_count() > 0);
        if let Some((known, cache)) = map.get(key)
            && *known == credentials
            && let Some(live) = cache.upgrade()
        {
            return live;
        }
        let inner = Arc::new(fresh);
        map.insert(key.to_string(), (credentials, Arc::downgrade(&inner)));
        inner
    }
}

impl Inner {
    /// A fingerprint of everything the token request's outcome depends on.
    pub(super) fn credentials(&self, configured: &str) -> String {
        super::fingerprint(&format!(
            "{}\n{}\n{}\n{}\n{:?}\n{configured}",
            self.token_api.base(),
            self.path.join("/"),
            self.client_id,
            self.client_secret,
            self.client_auth,
        ))
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached token if still good, else the refresh in flight, if any.
    pub(super) fn cached_or_flight(&self) -> Result<Arc<Token>, Option<Flight>> {
        let state = self.state();
        match &state.token {
            Some(t) if Instant::now() < t.refresh_at => Ok(t.clone()),
            _ => Err(state.flight.clone()),
        }
    }

    /// The cached token if another caller refreshed it meanwhile, else the
    /// refresh in flight, started now if there is none.
    pub(super) fn flight(self: Arc<Self>) -> Result<Arc<Token>, Flight> {
        let mut state = self.state();
        if let Some(t) = &state.token
            && Instant::now() < t.refresh_at
        {
            return Ok(t.clone());
        }
        if let Some(flight) = &state.flight {
            return Err(flight.clone());
        }
        let grant = state.grant.clone();
        let task = {
            let inner = self.clone();
            let run = async move { inner.refresh(grant).await };
            match &self.persist {
                // A CLI waits for the store's refreshes before it exits.
                Some(p) => p.slot.store().refreshes().spawn(run),
                None => tokio::spawn(run),
            }
        };
        let flight = task
            .map(|done| {
                done.unwrap_or_else(|e| {
                    Err(retry(
                        Outcome::NetworkError,
                        &format!("the OAuth token refresh failed: {e}"),
                    ))
                })
            })
            .boxed()
            .shared();
        state.flight = Some(flight.clone());
        Err(flight)
    }

    /// One token request, to its end whoever still waits: the answer may
    /// carry a rotated refresh token, revoked the moment it was sent.
    async fn refresh(&self, grant: Grant) -> Result<Arc<Token>, AttemptReport> {
        let (result, grant) = self.exchange(grant).await;
        let mut state = self.state();
        state.grant = grant;
        state.flight = None;
        let token = Arc::new(result?);
        state.token = Some(token.clone());
        Ok(token)
    }

    /// Sends the grant (the persisted successor of `grant`'s refresh token,
    /// if there is one) and keeps a rotated refresh token; returns the token
    /// and the grant to use next.
    async fn exchange(&self, mut grant: Grant) -> (Result<Token, AttemptReport>, Grant) {
        let deadline = deadline(REFRESH_TIMEOUT);
        // Held until the rotated token is written: the gateway and a CLI
        // (or a cache of other credentials) never send the same token twice.
        let _lock = match &self.persist {
            Some(p) => match p.slot.lock(REFRESH_TIMEOUT).await {
                Ok(lock) => lock,
                Err(e) => return (Err(retry(Outcome::Timeout, &e.to_string())), grant),
            },
            None => None,
        };
        self.catch_up(&mut grant);
        let reply = match self.send(&grant, deadline).await {
            Ok(reply) => reply,
            Err(report) => return (Err(report), grant),
        };
        if reply.ok() {
            self.keep_rotated(&mut grant, &reply).await;
        }
        (parse(&reply), grant)
    }

    async fn send(&self, grant: &Grant, deadline: Instant) -> Result<Reply, AttemptReport> {
        let segments: Vec<&str> = self.path.iter().map(String::as_str).collect();
        // The redaction list was fixed at build time; a token rotated since
        // (or read back from the token file) must not leak through an error.
        let api = match grant {
            Grant::RefreshToken { refresh_token } => {
                self.token_api.clone().redacting(refresh_token)
            }
            Grant::AccountCredentials { .. } => self.token_api.clone(),
        };
        let mut form: Vec<(&str, &str)> = Vec::new();
        match grant {
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
        api.call(reqwest::Method::POST, &segments).form(&form, basic).send(deadline).await
    }

    /// Takes the persisted refresh token when another adapter of the same
    /// connection or another process (a CLI, the gateway) rotated it.
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

/// A retryable failure without an answer.
pub(super) fn retry(code: Outcome, message: &str) -> AttemptReport {
    let result = AttemptResult::Retry { code, after: None, message: message.to_string() };
    AttemptReport { result, http_status: None, response_excerpt: None }
}

#[cfg(test)]
#[path = "oauth_flight_tests.rs"]
mod tests;
