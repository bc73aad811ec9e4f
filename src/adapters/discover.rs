//! Live action data: what a connection's account offers (lists, tags,
//! segments, templates, …) for rules' `metadata.id`, fetched through every
//! page and cached per connection for a short TTL.

use super::http::{Call, Reply, deadline};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a connection's discovered options are served from memory.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Bounds one whole discovery (all pages).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes read of one listing page (a page is the data itself, so the
/// delivery path's smaller read limit would cut big accounts' pages).
pub const PAGE_LIMIT: usize = 16 << 20;

/// Most pages fetched per listing: a provider that never stops paging
/// (a cursor that repeats) cannot loop forever.
pub const MAX_PAGES: usize = 200;

/// One thing a rule can point at.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ActionOption {
    /// What it is: `list`, `tag`, `group`, `segment`, `template`, `campaign`,
    /// `property`, `meeting`, `webinar`, `channel`.
    pub kind: String,
    /// The id to put in a rule's `metadata.id` (or the property name).
    pub id: String,
    /// The human name.
    pub name: String,
    /// Provider details (property options, status, counts); `null` when none.
    pub extra: Value,
}

impl ActionOption {
    /// An option without extra details.
    pub fn new(kind: &str, id: impl Into<String>, name: impl Into<String>) -> Self {
        ActionOption { kind: kind.into(), id: id.into(), name: name.into(), extra: Value::Null }
    }

    /// The same option with provider details.
    #[must_use]
    pub fn with_extra(mut self, extra: Value) -> Self {
        self.extra = extra;
        self
    }
}

/// Why discovery gave no options. Messages never carry a credential.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiscoverError {
    /// This integration (or this mode of it) has nothing to list.
    #[error("{0}")]
    Unsupported(String),
    /// The provider failed or answered something unusable.
    #[error("{0}")]
    Provider(String),
}

/// The result of a discovery.
pub type Discovered = Result<Vec<ActionOption>, DiscoverError>;

/// "not supported": the caller names the connection and its type.
pub fn unsupported() -> DiscoverError {
    DiscoverError::Unsupported(
        "this integration has no account data to list (nothing to choose for `metadata.id`)".into(),
    )
}

/// Sends a discovery call and requires a 2xx JSON answer.
pub async fn fetch(call: Call<'_>, until: Instant) -> Result<Value, DiscoverError> {
    json_of(call.read_limit(PAGE_LIMIT).send(until).await.map_err(failed)?)
}

/// A call that got no usable answer (timeout, network, token refresh).
pub fn failed(report: super::adapter::AttemptReport) -> DiscoverError {
    use super::adapter::AttemptResult;
    DiscoverError::Provider(match report.result {
        AttemptResult::Retry { message, .. }
        | AttemptResult::Deferred { message, .. }
        | AttemptResult::Permanent { message, .. } => message,
        AttemptResult::Delivered => "no answer".into(),
    })
}

/// The reply's JSON, or the provider's (redacted) error message.
pub fn json_of(reply: Reply) -> Result<Value, DiscoverError> {
    if !reply.ok() {
        return Err(DiscoverError::Provider(format!("the provider refused: {}", reply.message())));
    }
    reply.json.ok_or_else(|| {
        DiscoverError::Provider(format!(
            "the provider answered HTTP {} without a JSON body (or one over {} MiB)",
            reply.status,
            PAGE_LIMIT >> 20
        ))
    })
}

/// Runs `discovery` so that each request it sends waits for a turn of the
/// connection's `budget`, as a delivery's do: listing the account must not
/// use up the provider quota the deliveries need.
pub async fn paced(
    discovery: super::adapter::BoxFuture<'_, Discovered>,
    budget: Option<Arc<super::limits::RequestBudget>>,
) -> Discovered {
    match budget {
        Some(budget) => super::limits::paced(budget, false, discovery).await.0,
        None => discovery.await,
    }
}

/// A deadline for one discovery.
pub fn discovery_deadline() -> Instant {
    deadline(DISCOVERY_TIMEOUT)
}

/// Text at `at` (a key, or a JSON pointer when it starts with `/`;
/// numbers rendered), or empty.
pub fn text(v: &Value, at: &str) -> String {
    let found = if at.starts_with('/') { v.pointer(at) } else { v.get(at) };
    match found {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The array at `pointer` (empty if absent).
pub fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// Options of `kind` from the array at `pointer`, reading `id` and `name` keys.
pub fn options(v: &Value, pointer: &str, kind: &str, id: &str, name: &str) -> Vec<ActionOption> {
    items(v, pointer)
        .iter()
        .map(|i| ActionOption::new(kind, text(i, id), text(i, name)))
        .filter(|o| !o.id.is_empty())
        .collect()
}

/// "too many pages" once [`MAX_PAGES`] is reached.
pub fn too_many_pages(what: &str) -> DiscoverError {
    DiscoverError::Provider(format!("{what}: more than {MAX_PAGES} pages, stopped"))
}

/// One connection's discovered options, kept for a TTL, fetched by one
/// caller at a time.
#[derive(Debug, Default)]
pub struct Cache {
    entry: Mutex<Option<(Instant, Arc<Vec<ActionOption>>)>>,
    /// Held while a fetch runs; the last fetch's number and result.
    flight: tokio::sync::Mutex<Option<(u64, Fetched)>>,
    /// Fetches finished so far (the last one's number).
    finished: AtomicU64,
}

type Fetched = Result<Arc<Vec<ActionOption>>, DiscoverError>;

impl Cache {
    /// The cached options if fetched less than `ttl` before `now`, else
    /// the result of `fetch` (cached when it succeeds; failures are not).
    ///
    /// Callers arriving while a fetch runs wait for it and share its result,
    /// a failure included: a cold cache under N requests costs the provider
    /// one listing, not N (each up to [`MAX_PAGES`] pages of [`PAGE_LIMIT`]).
    pub async fn get_or_fetch<F>(&self, now: Instant, ttl: Duration, fetch: F) -> Fetched
    where
        F: std::future::Future<Output = Discovered>,
    {
        if let Some(hit) = self.fresh(now, ttl) {
            return Ok(hit);
        }
        let seen = self.finished.load(Ordering::Acquire);
        let mut last = self.flight.lock().await;
        if let Some((n, result)) = last.as_ref()
            && *n > seen
        {
            return result.clone();
        }
        // A caller that gives up (its request dropped) releases the lock
        // without a result: the next waiter fetches.
        let result = fetch.await.map(Arc::new);
        if let (Ok(options), Ok(mut slot)) = (&result, self.entry.lock()) {
            *slot = Some((now, options.clone()));
        }
        let n = self.finished.load(Ordering::Acquire) + 1;
        *last = Some((n, result.clone()));
        self.finished.store(n, Ordering::Release);
        result
    }

    fn fresh(&self, now: Instant, ttl: Duration) -> Option<Arc<Vec<ActionOption>>> {
        let slot = self.entry.lock().ok()?;
        let (at, options) = slot.as_ref()?;
        (now.saturating_duration_since(*at) < ttl).then(|| options.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cache_serves_within_the_ttl_and_refetches_after() {
        let cache = Cache::default();
        let ttl = Duration::from_secs(300);
        let t0 = Instant::now();
        let one = || async { Ok(vec![ActionOption::new("list", "1", "One")]) };
        let two = || async { Ok(vec![ActionOption::new("list", "2", "Two")]) };
        assert_eq!(cache.get_or_fetch(t0, ttl, one()).await.unwrap()[0].id, "1");
        // Within the TTL the second fetch is never awaited.
        let later = t0 + Duration::from_secs(299);
        assert_eq!(cache.get_or_fetch(later, ttl, two()).await.unwrap()[0].id, "1");
        let expired = t0 + ttl;
        assert_eq!(cache.get_or_fetch(expired, ttl, two()).await.unwrap()[0].id, "2");
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_its_failure() {
        let cache = Cache::default();
        let ttl = Duration::from_secs(300);
        let calls = AtomicU64::new(0);
        let gate = tokio::sync::Notify::new();
        let fetch = |result: Discovered| async {
            calls.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            result
        };
        let failure = || Err(DiscoverError::Provider("HTTP 500".into()));
        // `join_all` polls every caller before the gate opens: the first
        // holds the fetch, the other nine wait for it.
        let callers = (0..10).map(|_| cache.get_or_fetch(Instant::now(), ttl, fetch(failure())));
        let (results, ()) =
            tokio::join!(futures::future::join_all(callers), async { gate.notify_one() });
        let refused = DiscoverError::Provider("HTTP 500".into());
        assert!(results.iter().all(|r| r.as_ref().err() == Some(&refused)), "{results:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // The failure is not cached: a caller after it fetches again.
        let ok = Ok(vec![ActionOption::new("tag", "t", "T")]);
        let later = cache.get_or_fetch(Instant::now(), ttl, fetch(ok));
        let (found, ()) = tokio::join!(later, async { gate.notify_one() });
        assert_eq!(found.unwrap().len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn each_discovery_request_waits_for_a_turn_of_the_budget() {
        use crate::adapters::limits::{RequestBudget, request_turn};
        use crate::config::model::RateLimit;
        let limit =
            RateLimit { requests: 2, per: crate::config::duration::Duration::from_millis(2_000) };
        let budget = Arc::new(RequestBudget::new(&limit).unwrap());
        let t0 = Instant::now();
        // Four requests (what `Call::send` does per page): a burst of two,
        // then one a second.
        let pages = Box::pin(async {
            let mut at = Vec::new();
            for _ in 0..4 {
                request_turn().await;
                at.push(Instant::now().duration_since(t0).as_millis());
            }
            Ok(vec![ActionOption::new(
                "list",
                at.iter().map(u128::to_string).collect::<Vec<_>>().join(","),
                "",
            )])
        });
        let found = paced(pages, Some(budget.clone())).await.unwrap();
        assert_eq!(found[0].id, "0,0,1000,2000");
        // A delivery asking now waits behind them.
        assert_eq!(budget.wait_now(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = Cache::default();
        let ttl = Duration::from_secs(300);
        let t0 = Instant::now();
        let fail = async { Err(DiscoverError::Provider("HTTP 500".into())) };
        assert!(cache.get_or_fetch(t0, ttl, fail).await.is_err());
        let ok = async { Ok(vec![ActionOption::new("tag", "t", "T")]) };
        assert_eq!(cache.get_or_fetch(t0, ttl, ok).await.unwrap().len(), 1);
    }
}
