//! The scheduler: for each connection with free capacity, read what is due
//! from its partition of the due index, dispatch it, sleep until the next
//! due time or a wake-up. Reads are bounded by free capacity, so memory does
//! not grow with the backlog.

use super::cleanup::Cleanups;
use super::lane::Lane;
use super::worker;
use crate::clock;
use crate::gateway::runtime::{ConnectionRt, Runtime};
use crate::store::{DueKey, Store, StoreError};
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest the scheduler sleeps without a reason (a safety net: due times
/// and wake-ups normally end the sleep first).
const IDLE: Duration = Duration::from_secs(5);

/// A partition is scanned from its head at least this often (ms), and again
/// this long (ms) after a scan from the cursor came up short.
const HEAD_SCAN_EVERY_MS: u64 = 1_000;
const HEAD_SCAN_SHORT_MS: u64 = 50;

/// Where the last scan of a partition stopped. Scanning from the head on
/// every tick walked past every in-flight entry again (64 with the default
/// concurrency) for each dispatch; scanning on from the cursor skips them.
/// An entry can land behind the cursor (an ingest that took its due time
/// before a later one committed, a manual retry in the same millisecond):
/// the store's landed mark ([`Store::take_landed`]) drops such a cursor on
/// the next tick. The head is also scanned `HEAD_SCAN_SHORT_MS` after the
/// cursor runs out of due entries and every `HEAD_SCAN_EVERY_MS` under a
/// backlog that never runs out: a safety net, no longer the way such an
/// entry is found (it was, and under load it waited up to a second).
#[derive(Debug)]
struct Cursor {
    after: DueKey,
    head_scanned_at: u64,
    short_since: Option<u64>,
}

impl Cursor {
    /// Whether the cursor may skip the head scan. A reading before the
    /// last scan (the wall clock stepped back) is a reason to scan, not a
    /// reason to skip scans for the step's length.
    fn usable(&self, now: u64) -> bool {
        let within = |since: u64, span: u64| (since..since.saturating_add(span)).contains(&now);
        within(self.head_scanned_at, HEAD_SCAN_EVERY_MS)
            && self.short_since.is_none_or(|t| within(t, HEAD_SCAN_SHORT_MS))
    }
}

/// Deliveries with an attempt running right now, by event then rule (the
/// scheduler asks for every due entry it scans, so lookups don't allocate).
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashMap<u128, Vec<String>>>);

impl InFlight {
    /// True while an attempt of this delivery runs.
    pub fn contains(&self, event: u128, rule: &str) -> bool {
        self.0
            .lock()
            .is_ok_and(|m| m.get(&event).is_some_and(|rules| rules.iter().any(|r| r == rule)))
    }
    /// Marks an attempt of this delivery as running.
    pub(crate) fn insert(&self, event: u128, rule: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.entry(event).or_default().push(rule.to_string());
        }
    }
    pub(super) fn remove(&self, event: u128, rule: &str) {
        if let Ok(mut m) = self.0.lock()
            && let Some(rules) = m.get_mut(&event)
        {
            rules.retain(|r| r != rule);
            if rules.is_empty() {
                m.remove(&event);
            }
        }
    }
    /// True while an attempt of any of this event's deliveries runs.
    pub fn has_event(&self, event: u128) -> bool {
        self.0.lock().is_ok_and(|m| m.contains_key(&event))
    }
    /// How many attempts run now.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.values().map(Vec::len).sum())
    }
    /// True when none runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the API and the workers share with the scheduler.
#[derive(Debug)]
pub struct Shared {
    /// The store.
    pub store: Store,
    /// The config in force.
    pub runtime: Arc<ArcSwap<Runtime>>,
    /// Attempts running now.
    pub in_flight: InFlight,
    /// Wakes the scheduler (new events, manual retries, finished attempts, reloads).
    pub wake: Notify,
    /// Wakes the sequence worker (new enrolments).
    pub sequences_wake: Notify,
    /// Wakes the automation inbox worker (events for `event` automations).
    pub inbox_wake: Notify,
    /// The reload cleanups: the newest one runs, shutdown stops it.
    pub cleanups: Cleanups,
    /// Each connection's request budget (its lane's, and its discovery's).
    pub budgets: crate::adapters::limits::Budgets,
    /// The lanes in use, whose breakers `/metrics` reads.
    pub lanes: super::observe::Lanes,
}

/// The scheduler task's state.
#[derive(Debug)]
pub struct Engine {
    shared: Arc<Shared>,
    lanes: HashMap<String, Arc<Lane>>,
    cursors: HashMap<String, Cursor>,
    tasks: TaskTracker,
}

impl Engine {
    /// An engine over `store`, reading the config from `runtime`.
    pub fn new(store: Store, runtime: Arc<ArcSwap<Runtime>>) -> Self {
        let shared = Arc::new(Shared {
            store,
            runtime,
            in_flight: InFlight::default(),
            wake: Notify::new(),
            sequences_wake: Notify::new(),
            inbox_wake: Notify::new(),
            cleanups: Cleanups::default(),
            budgets: crate::adapters::limits::Budgets::default(),
            lanes: super::observe::Lanes::default(),
        });
        Engine { shared, lanes: HashMap::new(), cursors: HashMap::new(), tasks: TaskTracker::new() }
    }

    /// The handle the API uses.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs until `shutdown`; then stops dispatching and gives running
    /// attempts up to `drain` to finish and be recorded. What has not been
    /// attempted stays pending on disk for the next start.
    pub async fn run(mut self, shutdown: CancellationToken, drain: Duration) {
        loop {
            let wake_at = match self.tick() {
                Ok(at) => at,
                Err(e) => {
                    tracing::error!(error = %e, "delivery scheduler cannot read the store; retrying in 1 s");
                    clock::now_ms() + 1_000
                }
            };
            let sleep = Duration::from_millis(wake_at.saturating_sub(clock::now_ms()));
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.shared.wake.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.tasks.close();
        if tokio::time::timeout(drain, self.tasks.wait()).await.is_err() {
            tracing::warn!(
                running = self.shared.in_flight.len(),
                "shutdown: attempts still running after the drain timeout stay pending"
            );
        }
    }

    /// One pass over every connection; returns when to look again (Unix ms).
    fn tick(&mut self) -> Result<u64, StoreError> {
        self.tick_at(clock::now_ms())
    }

    /// [`Engine::tick`] at `now` (Unix ms): tests pass their own time.
    pub(super) fn tick_at(&mut self, now: u64) -> Result<u64, StoreError> {
        let rt = self.shared.runtime.load_full();
        let mut wake_at = crate::clock::after(now, IDLE);
        let live: HashSet<&str> = rt.connections().map(|c| c.conn_key.as_str()).collect();
        self.lanes.retain(|k, _| live.contains(k.as_str()));
        self.shared.lanes.retain(&live);
        self.shared.budgets.retain(|k| live.contains(k));
        // A cursor at or past an entry committed since the last tick would
        // pass over it: read that partition from its head instead.
        let landed = self.shared.store.take_landed().unwrap_or(u64::MAX);
        self.cursors.retain(|k, c| live.contains(k.as_str()) && c.after.due < landed);
        for conn in rt.connections() {
            let lane = self.lane(conn);
            if let Some(t) = lane.reopens_at().filter(|t| *t > now) {
                wake_at = wake_at.min(t);
                continue;
            }
            let cap = lane.capacity(now);
            if cap == 0 {
                continue;
            }
            let short = self.dispatch_due(conn, &lane, now, cap)?;
            let next = if short { self.shared.store.next_due(&conn.conn_key)? } else { None };
            if let Some(t) = next.filter(|t| *t > now) {
                wake_at = wake_at.min(t);
            }
        }
        Ok(wake_at)
    }

    pub(super) fn lane(&mut self, conn: &ConnectionRt) -> Arc<Lane> {
        if let Some(lane) = self.lanes.get(&conn.conn_key).filter(|l| l.settings == conn.lane) {
            return lane.clone();
        }
        let budget = self.shared.budgets.get(&conn.conn_key, conn.lane.rate_limit.as_ref());
        let lane = Arc::new(match self.lanes.get(&conn.conn_key) {
            Some(old) => old.resized(conn.lane.clone(), budget),
            None => Lane::with_budget(conn.lane.clone(), budget),
        });
        self.lanes.insert(conn.conn_key.clone(), lane.clone());
        self.shared.lanes.track(&conn.conn_key, lane.clone());
        lane
    }

    /// Dispatches up to `cap` due entries of `conn`; true when fewer were due.
    fn dispatch_due(
        &mut self,
        conn: &ConnectionRt,
        lane: &Arc<Lane>,
        now: u64,
        cap: usize,
    ) -> Result<bool, StoreError> {
        let key = conn.conn_key.as_str();
        let after = self.cursors.get(key).filter(|c| c.usable(now)).map(|c| &c.after);
        let from_head = after.is_none();
        let in_flight = &self.shared.in_flight;
        let due =
            self.shared.store.due_after(key, after, now, cap, &|e, r| in_flight.contains(e, r))?;
        let short = due.len() < cap;
        let mut last = None;
        for due_key in due {
            if !self.dispatch(due_key.clone(), lane) {
                break; // no slot after all: the cursor must not pass this entry
            }
            last = Some(due_key);
        }
        let cursor = match (self.cursors.remove(key), last) {
            (Some(c), None) => Some(c),
            (Some(c), Some(after)) => Some(Cursor { after, ..c }),
            (None, Some(after)) => Some(Cursor { after, head_scanned_at: now, short_since: None }),
            (None, None) => None,
        };
        if let Some(mut c) = cursor {
            if from_head {
                c.head_scanned_at = now;
                c.short_since = None;
            }
            c.short_since = if short { c.short_since.or(Some(now)) } else { None };
            self.cursors.insert(key.to_string(), c);
        }
        Ok(short)
    }

    fn dispatch(&self, key: DueKey, lane: &Arc<Lane>) -> bool {
        let Some(slots) = lane.slots() else { return false };
        self.shared.in_flight.insert(key.event, &key.rule);
        let shared = self.shared.clone();
        let lane = lane.clone();
        self.tasks.spawn(async move { worker::run(shared, lane, key, slots).await });
        true
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "engine_unreadable_tests.rs"]
mod unreadable_tests;

#[cfg(test)]
#[path = "engine_panic_tests.rs"]
mod panic_tests;

#[cfg(test)]
#[path = "engine_grace_tests.rs"]
mod grace_tests;
