//! The contact operations behind the contacts API. Each one is a writer
//! job: the change, the automations it sets off and their activity log
//! commit together, and the answer comes only after the fsync.

use super::contact::{self, Upsert};
use super::engine::{Effects, EventFact, Fired, Run};
use crate::clock;
use crate::config::automation::TriggerKind;
use crate::delivery::engine::Shared;
use crate::gateway::runtime::WorkspaceRt;
use crate::store::{ContactRecord, StoreError, Tables, email_key};
use serde_json::Value;

/// Why a contact operation was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ContactError {
    /// 404: no such contact in this workspace.
    #[error("{0}")]
    NotFound(String),
    /// 409: the identifiers point at two different contacts.
    #[error("{0}")]
    Conflict(String),
    /// 400: the change would break a limit (`param`, message).
    #[error("{1}")]
    Invalid(String, String),
    /// 503.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a request names a contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Who {
    /// Matched first.
    pub external_id: Option<String>,
    /// Matched second (case-insensitive).
    pub email: Option<String>,
}

impl Who {
    fn describe(&self) -> String {
        match (&self.external_id, &self.email) {
            (Some(x), _) => format!("external_id `{x}`"),
            (None, Some(e)) => format!("email `{e}`"),
            (None, None) => "no identifier".into(),
        }
    }
}

/// Runs a contact job on the writer and wakes the workers it fed.
async fn job<T: Send + 'static>(
    shared: &Shared,
    ws: &str,
    f: impl for<'t> FnOnce(
        &mut Tables<'t>,
        &WorkspaceRt,
        u64,
    ) -> Result<Result<(T, Effects), ContactError>, StoreError>
    + Send
    + 'static,
) -> Result<T, ContactError> {
    let rt = shared.runtime.load_full();
    let ws = rt
        .workspace(ws)
        .cloned()
        .ok_or_else(|| ContactError::NotFound(format!("workspace `{ws}` is not served")))?;
    let now = clock::now_ms();
    let (value, effects) = shared.store.writer().run(move |t| f(t, &ws, now)).await??;
    wake(shared, effects);
    Ok(value)
}

/// Wakes the delivery engine and the sequence worker as needed.
pub fn wake(shared: &Shared, effects: Effects) {
    if effects.deliveries > 0 {
        shared.wake.notify_one();
    }
    if effects.enrolled > 0 {
        shared.sequences_wake.notify_one();
    }
}

/// Creates or updates a contact (matched by `external_id`, then `email`);
/// returns it and whether it was created.
pub async fn upsert(
    shared: &Shared,
    ws: &str,
    who: Who,
    u: Upsert,
) -> Result<(ContactRecord, bool), ContactError> {
    job(shared, ws, move |t, ws, now| upsert_in(t, ws, now, &who, &u, 0)).await
}

/// A job's answer: a domain refusal inside, a store failure outside.
pub type JobResult<T> = Result<Result<(T, Effects), ContactError>, StoreError>;

/// Upserts inside a transaction (the API and events with an `email`).
pub fn upsert_in(
    t: &mut Tables<'_>,
    ws: &WorkspaceRt,
    now: u64,
    who: &Who,
    u: &Upsert,
    depth: u32,
) -> JobResult<(ContactRecord, bool)> {
    if let Some(refused) = custom_refused(u) {
        return Ok(Err(refused));
    }
    let found = match find(t, &ws.id, who)? {
        Ok(found) => found,
        Err(e) => return Ok(Err(e)),
    };
    let created = found.is_none();
    let original = found.clone();
    let mut c = found.unwrap_or_else(|| {
        ContactRecord::new(uuid::Uuid::now_v7().to_string(), ws.id.clone(), now)
    });
    let (changes, added) = contact::apply(&mut c, &identified(u, who, original.as_ref()));
    if let Some(refused) = over_cap(&c, original.as_ref()) {
        return Ok(Err(refused));
    }
    let mut run = Run::new(t, ws, now, Some(c), original);
    if created {
        run.fire(Fired::new(TriggerKind::ContactCreated, None, depth));
        // A new contact's tags still fire `tag_added`; nothing about it was "updated".
        for tag in added {
            run.fire(Fired::new(TriggerKind::TagAdded, Some(tag), depth));
        }
    } else {
        run.fire_changes(changes, depth);
    }
    let (stored, effects) = run.finish()?;
    Ok(stored
        .map(|c| ((c, created), effects))
        .ok_or_else(|| ContactError::NotFound("contact".into())))
}

/// The upsert with the request's identifiers as fields to store. An email
/// that matches the stored one case-insensitively keeps the stored
/// spelling: matching by email never rewrites it (events name contacts by
/// email with the public key, and could otherwise respell any address).
/// Only an email with another key, given beside the external id that
/// matched, changes it.
fn identified(u: &Upsert, who: &Who, found: Option<&ContactRecord>) -> Upsert {
    let mut u = u.clone();
    if let Some(x) = &who.external_id {
        u.fields.insert("external_id", Value::String(x.clone()));
    }
    if let Some(e) = &who.email {
        u.fields.insert("email", Value::String(e.clone()));
    }
    let stored = found.and_then(|c| c.email.as_deref()).map(email_key);
    let asked = u.fields.get("email").and_then(Value::as_str).map(email_key);
    if stored.is_some() && stored == asked {
        u.fields.remove("email");
    }
    u
}

/// Refuses custom fields no contact may hold, whoever asks: a reserved
/// name or a value over [`contact::MAX_CUSTOM_VALUE_BYTES`] (`null`, which
/// removes a key, always passes).
fn custom_refused(u: &Upsert) -> Option<ContactError> {
    u.custom_fields.iter().find_map(|(key, value)| {
        let why = contact::custom_refused(key, value)?;
        Some(ContactError::Invalid(format!("custom_fields.{key}"), why))
    })
}

/// Per request the API caps keys and tags; this caps what many requests
/// add up to, so one contact's record cannot grow without bound. Only what
/// the request adds is refused: a contact already past a cap (automations
/// before the caps existed could put it there) still takes other changes.
fn over_cap(c: &ContactRecord, before: Option<&ContactRecord>) -> Option<ContactError> {
    let fields = c.custom_fields.len();
    let adds_key =
        || c.custom_fields.keys().any(|k| before.is_none_or(|b| !b.custom_fields.contains_key(k)));
    if fields > contact::MAX_CUSTOM_FIELDS && adds_key() {
        return Some(ContactError::Invalid(
            "custom_fields".into(),
            format!(
                "the contact would have {fields} custom fields; at most {} are kept (set unused ones to null)",
                contact::MAX_CUSTOM_FIELDS
            ),
        ));
    }
    if let Some(why) = contact::record_refused(c, before) {
        return Some(ContactError::Invalid("custom_fields".into(), why));
    }
    let tags = c.tags.len();
    let had = before.map_or(0, |b| b.tags.len());
    (tags > contact::MAX_TAGS_PER_CONTACT && tags > had).then(|| {
        ContactError::Invalid(
            "tag_names".into(),
            format!(
                "the contact would have {tags} tags; at most {} are kept (remove unused ones with DELETE /contacts/{{id}}/tags/{{name}})",
                contact::MAX_TAGS_PER_CONTACT
            ),
        )
    })
}

/// Finds the contact a request names; `Err` when the two identifiers name
/// two different contacts.
fn find(
    t: &mut Tables<'_>,
    ws: &str,
    who: &Who,
) -> Result<Result<Option<ContactRecord>, ContactError>, StoreError> {
    let by_ext = match &who.external_id {
        Some(x) => t.contact_by_external_id(ws, x)?,
        None => None,
    };
    let by_email = match &who.email {
        Some(e) => t.contact_by_email(ws, e)?,
        None => None,
    };
    Ok(match (by_ext, by_email) {
        (Some(a), Some(b)) if a.id != b.id => Err(ContactError::Conflict(format!(
            "email `{}` belongs to contact {}, not to the contact with {} ({})",
            who.email.as_deref().unwrap_or_default(),
            b.id,
            who.describe(),
            a.id
        ))),
        (Some(a), _) => Ok(Some(a)),
        (None, Some(b)) if who.external_id.is_some() && b.external_id.is_some() => {
            Err(ContactError::Conflict(format!(
                "email `{}` belongs to contact {} whose external_id is `{}`, not `{}`",
                who.email.as_deref().unwrap_or_default(),
                b.id,
                b.external_id.as_deref().unwrap_or_default(),
                who.external_id.as_deref().unwrap_or_default()
            )))
        }
        (None, b) => Ok(b),
    })
}

/// Loads a contact of this workspace for a change, or `NotFound`.
fn existing(
    t: &mut Tables<'_>,
    ws: &str,
    id: u128,
) -> Result<Result<ContactRecord, ContactError>, StoreError> {
    Ok(match t.contact(id)? {
        Some(c) if c.workspace == ws => Ok(c),
        _ => Err(ContactError::NotFound(format!(
            "no contact `{}` in this workspace",
            uuid::Uuid::from_u128(id)
        ))),
    })
}

/// Adds tags (add-only); fires `tag_added` for each new one.
pub async fn add_tags(
    shared: &Shared,
    ws: &str,
    id: u128,
    tags: Vec<String>,
) -> Result<ContactRecord, ContactError> {
    edit(shared, ws, id, move |c, changes| {
        contact::add_tags(c, &tags, changes);
    })
    .await
}

/// Removes a tag (no error when it was not there).
pub async fn remove_tag(
    shared: &Shared,
    ws: &str,
    id: u128,
    tag: String,
) -> Result<ContactRecord, ContactError> {
    edit(shared, ws, id, move |c, changes| {
        contact::remove_tag(c, &tag, changes);
    })
    .await
}

/// Suppresses a contact (`unsubscribed`, `bounced`, `complained`): email
/// steps and email notifications skip it from now on, and those already
/// queued are canceled at their next attempt (the delivery worker reads
/// the suppression then).
pub async fn unsubscribe(
    shared: &Shared,
    ws: &str,
    id: u128,
    reason: String,
) -> Result<ContactRecord, ContactError> {
    // Held until the write commits: the writer hands the job's result back
    // (or drops it, when this request is gone) only after its fsync. The
    // time is read under the stamps' lock, so no list read can settle past
    // it before it is held.
    let pending = shared.store.stamps.hold_now();
    let now = pending.at();
    let edited = edit_holding(shared, ws, id, pending, move |c, changes| {
        if c.unsubscribed_at.is_none() {
            c.unsubscribed_at = Some(now);
            c.suppression = Some(reason.clone());
            changes.insert(
                "unsubscribed".into(),
                contact::Change { from: Value::Bool(false), to: Value::Bool(true) },
            );
        }
    });
    edited.await.map(|(c, _released)| c)
}

/// Lifts a suppression (the contact opted back in): email steps and email
/// notifications reach it again. Fires `contact_updated` with
/// `changes.unsubscribed` from true to false; a no-op when not suppressed.
pub async fn resubscribe(
    shared: &Shared,
    ws: &str,
    id: u128,
) -> Result<ContactRecord, ContactError> {
    edit(shared, ws, id, move |c, changes| {
        if c.unsubscribed_at.take().is_some() {
            c.suppression = None;
            changes.insert(
                "unsubscribed".into(),
                contact::Change { from: Value::Bool(true), to: Value::Bool(false) },
            );
        }
    })
    .await
}

async fn edit(
    shared: &Shared,
    ws: &str,
    id: u128,
    change: impl FnOnce(&mut ContactRecord, &mut contact::Changes) + Send + 'static,
) -> Result<ContactRecord, ContactError> {
    edit_holding(shared, ws, id, (), change).await.map(|(c, ())| c)
}

/// [`edit`], with `hold` returned beside the contact: it lives until the
/// write has committed.
async fn edit_holding<H: Send + 'static>(
    shared: &Shared,
    ws: &str,
    id: u128,
    hold: H,
    change: impl FnOnce(&mut ContactRecord, &mut contact::Changes) + Send + 'static,
) -> Result<(ContactRecord, H), ContactError> {
    job(shared, ws, move |t, ws, now| {
        let c = match existing(t, &ws.id, id)? {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let mut edited = c.clone();
        let mut changes = contact::Changes::new();
        change(&mut edited, &mut changes);
        if let Some(refused) = over_cap(&edited, Some(&c)) {
            return Ok(Err(refused));
        }
        let mut run = Run::new(t, ws, now, Some(edited), Some(c));
        run.fire_changes(changes, 0);
        let (stored, effects) = run.finish()?;
        let found = stored.map(|c| ((c, hold), effects));
        Ok(found.ok_or_else(|| ContactError::NotFound("contact".into())))
    })
    .await
}

/// Records a custom event for a known contact and runs `custom_event`
/// automations; `NotFound` for an unknown contact.
pub async fn track(
    shared: &Shared,
    ws: &str,
    who: Who,
    event_name: String,
    properties: Value,
) -> Result<ContactRecord, ContactError> {
    job(shared, ws, move |t, ws, now| {
        let c = match find(t, &ws.id, &who)? {
            Ok(Some(c)) => c,
            Ok(None) => {
                return Ok(Err(ContactError::NotFound(format!(
                    "no contact with {}",
                    who.describe()
                ))));
            }
            Err(e) => return Ok(Err(e)),
        };
        let mut run = Run::new(t, ws, now, Some(c.clone()), Some(c));
        let mut f = Fired::new(TriggerKind::CustomEvent, Some(event_name.clone()), 0);
        f.event = Some(EventFact { name: event_name, properties, id: None });
        run.fire(f);
        let (stored, effects) = run.finish()?;
        Ok(stored.map(|c| (c, effects)).ok_or_else(|| ContactError::NotFound("contact".into())))
    })
    .await
}

/// A contact by id, if it belongs to the workspace.
pub fn get(shared: &Shared, ws: &str, id: u128) -> Result<Option<ContactRecord>, StoreError> {
    Ok(shared.store.contact(id)?.filter(|c| c.workspace == ws))
}
