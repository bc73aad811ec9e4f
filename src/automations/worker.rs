//! The two background tasks of automations: sequence steps that come due,
//! and ingested events that `event` automations (or contact upserts from
//! events) must see. Both read a durable queue in the store and do their
//! work in writer jobs, so a crash at any point only delays the work.

use super::contact::Upsert;
use super::engine::{Effects, EventFact, Fired, Run};
use super::sequences::{self, Grace, Job};
use super::service::{Who, upsert_in, wake};
use crate::api::contacts::standard_field;
use crate::clock;
use crate::config::automation::TriggerKind;
use crate::delivery::engine::Shared;
use crate::gateway::runtime::Runtime;
use crate::store::{StoreError, Tables};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Most items one writer job handles.
const BATCH: usize = 256;
/// Longest sleep without a wake-up (a safety net; wake-ups end it first).
const IDLE: Duration = Duration::from_secs(5);
/// Pause after a store error before trying again.
const BACKOFF: Duration = Duration::from_millis(500);

/// Runs due sequence steps until `shutdown`.
pub async fn sequences(shared: Arc<Shared>, shutdown: CancellationToken) {
    let (wake, shared) = (&shared.sequences_wake, &shared);
    drive("sequence steps", wake, &shutdown, || {
        let (now, rt) = (clock::now_ms(), shared.runtime.load_full());
        let grace = Grace { left: crate::delivery::route::grace_left(&rt) };
        let job = Job::new(rt, now, grace);
        async move {
            if sequence_tick(shared, job).await? {
                return Ok(None);
            }
            Ok(Some(match shared.store.next_sequence_due()? {
                Some(due) => Duration::from_millis(due.saturating_sub(now)).min(IDLE),
                None => IDLE,
            }))
        }
    })
    .await;
}

/// Calls `tick` until `shutdown`: again at once when it answers `None`
/// (more work queued), else after its pause, a wake-up or a store error's backoff.
async fn drive<F, Fut>(what: &str, wake: &Notify, shutdown: &CancellationToken, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Duration>, StoreError>>,
{
    loop {
        let sleep = match tick().await {
            Ok(None) => continue,
            Ok(Some(pause)) => pause,
            Err(e) => {
                tracing::warn!(error = %e, "{what} wait for the store");
                BACKOFF
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Runs one batch of due steps; `true` when there may be more (a full
/// batch, or one cut at the job's budget of deliveries).
async fn sequence_tick(shared: &Shared, mut job: Job) -> Result<bool, StoreError> {
    let due = shared.store.sequence_due(job.now, BATCH)?;
    if due.is_empty() {
        return Ok(false);
    }
    let full = due.len() == BATCH;
    let (effects, cut) = shared.store.writer().run(move |t| run_due(t, &mut job, &due)).await?;
    wake(shared, effects);
    metrics::counter!("meshes_sequence_steps_total").increment(effects.deliveries as u64);
    Ok(full || cut)
}

/// Advances each of `due` in turn until the job's budget is spent; also
/// says whether it was (what is left is still due, for the next job).
pub fn run_due(
    t: &mut Tables<'_>,
    job: &mut Job,
    due: &[(u64, u128, String)],
) -> Result<(Effects, bool), StoreError> {
    let mut total = Effects::default();
    for (at, contact, seq) in due {
        if job.left == 0 {
            return Ok((total, true));
        }
        add(&mut total, sequences::advance(t, job, (*contact, seq), *at)?);
    }
    Ok((total, job.left == 0))
}

fn add(total: &mut Effects, e: Effects) {
    total.deliveries += e.deliveries;
    total.enrolled += e.enrolled;
}

/// Feeds ingested events to automations until `shutdown`.
pub async fn inbox(shared: Arc<Shared>, shutdown: CancellationToken) {
    let wake = &shared.inbox_wake;
    drive("event automations", wake, &shutdown, || async {
        Ok(if inbox_tick(&shared).await? { None } else { Some(IDLE) })
    })
    .await;
}

async fn inbox_tick(shared: &Shared) -> Result<bool, StoreError> {
    let ids = shared.store.inbox(BATCH)?;
    if ids.is_empty() {
        return Ok(false);
    }
    let full = ids.len() == BATCH;
    let rt = shared.runtime.load_full();
    let now = clock::now_ms();
    let effects = shared
        .store
        .writer()
        .run(move |t| {
            let mut total = Effects::default();
            for id in ids {
                t.inbox_done(id)?;
                add(&mut total, on_event(t, &rt, id, now)?);
            }
            Ok(total)
        })
        .await?;
    wake(shared, effects);
    Ok(full)
}

/// One ingested event: upsert its contact if configured, then start the
/// `event` automations with the contact its `email` names (if any).
fn on_event(t: &mut Tables<'_>, rt: &Runtime, id: u128, now: u64) -> Result<Effects, StoreError> {
    let Some((event, payload)) = t.event_with_payload(id)? else { return Ok(Effects::default()) };
    let Some(ws) = rt.workspace(&event.workspace) else { return Ok(Effects::default()) };
    let upserts = ws.automations.upsert_from_events();
    let email = event_email(&payload, upserts, &event.id);
    let mut total = Effects::default();
    if upserts && let Some(email) = &email {
        let who = Who { external_id: None, email: Some(email.clone()) };
        match upsert_in(t, ws, now, &who, &from_payload(&payload), 0)? {
            Ok((_, e)) => add(&mut total, e),
            Err(e) => {
                tracing::info!(event = %event.id, error = %e, "contact not upserted from event")
            }
        }
    }
    let contact = match &email {
        Some(e) => t.contact_by_email(&ws.id, e)?,
        None => None,
    };
    let mut run = Run::new(t, ws, now, contact.clone(), contact);
    let mut f = Fired::new(TriggerKind::Event, Some(event.event.clone()), 0);
    f.event = Some(EventFact { name: event.event, properties: payload, id: Some(event.id) });
    run.fire(f);
    add(&mut total, run.finish()?.1);
    Ok(total)
}

/// The event's `email` if the contacts API would take it. One it would
/// refuse names no contact; when it would have created one, that is counted
/// (the event itself was accepted and is delivered as usual).
fn event_email(payload: &Value, upserts: bool, event: &str) -> Option<String> {
    let v = payload.get("email").filter(|v| !v.is_null())?;
    let checked = standard_field("email", v);
    if checked.is_err() && upserts {
        metrics::counter!("meshes_contact_upserts_from_events_refused_total").increment(1);
        // Not the value: it may be a megabyte of whatever the sender put there.
        tracing::debug!(
            event,
            "event email refused by the contacts API checks; no contact upserted"
        );
    }
    checked.ok()
}

/// The standard fields an event payload carries, each checked as the
/// contacts API checks it; one that fails is left out.
fn from_payload(payload: &Value) -> Upsert {
    let mut u = Upsert::default();
    for field in ["first_name", "last_name", "name", "phone"] {
        if let Some(v) = payload.get(field).filter(|v| standard_field(field, v).is_ok()) {
            u.fields.insert(field, v.clone());
        }
    }
    u
}
