//! Contact, enrolment and activity writes, for automation jobs running in
//! the writer's transaction ([`super::Handle::run`]).

use super::{Ingested, NewEvent, Prepared, Tables, encode};
use crate::store::contact_records::{ActivityRecord, ContactRecord, EnrollmentRecord};
use crate::store::tables::*;
use crate::store::{StoreError, decode, event_key};
use redb::{ReadableTable, Table};

pub(crate) struct ContactTables<'t> {
    contacts: Table<'t, u128, &'static [u8]>,
    emails: Table<'t, (&'static str, &'static str), u128>,
    external: Table<'t, (&'static str, &'static str), u128>,
    enrollments: Table<'t, (u128, &'static str), &'static [u8]>,
    sequence_due: Table<'t, (u64, u128, &'static str), ()>,
    activity: Table<'t, (u128, u128), &'static [u8]>,
    activity_by_time: Table<'t, (u128, u128), ()>,
    suppressed: Table<'t, (&'static str, u64, u128), ()>,
    inbox: Table<'t, u128, ()>,
}

/// Emails match case-insensitively.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

fn key(id: &str) -> Result<u128, StoreError> {
    event_key(id).ok_or_else(|| StoreError::Invalid(format!("`{id}` is not a UUID")))
}

impl<'t> Tables<'t> {
    fn c(&mut self) -> Result<&mut ContactTables<'t>, StoreError> {
        if self.contacts.is_none() {
            let t = self.txn;
            self.contacts = Some(ContactTables {
                contacts: t.open_table(CONTACTS)?,
                emails: t.open_table(CONTACT_EMAILS)?,
                external: t.open_table(CONTACT_EXTERNAL_IDS)?,
                enrollments: t.open_table(ENROLLMENTS)?,
                sequence_due: t.open_table(SEQUENCE_DUE)?,
                activity: t.open_table(ACTIVITY)?,
                activity_by_time: t.open_table(ACTIVITY_BY_TIME)?,
                suppressed: t.open_table(SUPPRESSED)?,
                inbox: t.open_table(AUTOMATION_INBOX)?,
            });
        }
        self.contacts.as_mut().ok_or_else(|| StoreError::Unavailable("contact tables".into()))
    }

    /// A contact by id.
    pub fn contact(&mut self, id: u128) -> Result<Option<ContactRecord>, StoreError> {
        match self.c()?.contacts.get(id)? {
            Some(raw) => Ok(Some(decode(raw.value())?)),
            None => Ok(None),
        }
    }

    /// A contact by email (case-insensitive).
    pub fn contact_by_email(
        &mut self,
        ws: &str,
        email: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let id = self.c()?.emails.get((ws, email_key(email).as_str()))?.map(|v| v.value());
        id.map_or(Ok(None), |id| self.contact(id))
    }

    /// A contact by external id.
    pub fn contact_by_external_id(
        &mut self,
        ws: &str,
        external_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let id = self.c()?.external.get((ws, external_id))?.map(|v| v.value());
        id.map_or(Ok(None), |id| self.contact(id))
    }

    /// Stores a contact, keeping the email, external-id and suppression
    /// indexes in step with `old` (its previous version, if any).
    pub fn put_contact(
        &mut self,
        c: &ContactRecord,
        old: Option<&ContactRecord>,
    ) -> Result<(), StoreError> {
        let id = key(&c.id)?;
        let ws = c.workspace.as_str();
        let t = self.c()?;
        t.contacts.insert(id, encode(c).as_slice())?;
        let old_email = old.and_then(|o| o.email.as_deref()).map(email_key);
        let new_email = c.email.as_deref().map(email_key);
        if old_email != new_email {
            if let Some(e) = &old_email {
                t.emails.remove((ws, e.as_str()))?;
            }
            if let Some(e) = &new_email {
                t.emails.insert((ws, e.as_str()), id)?;
            }
        }
        let old_ext = old.and_then(|o| o.external_id.as_deref());
        if old_ext != c.external_id.as_deref() {
            if let Some(e) = old_ext {
                t.external.remove((ws, e))?;
            }
            if let Some(e) = &c.external_id {
                t.external.insert((ws, e.as_str()), id)?;
            }
        }
        let old_sup = old.and_then(|o| o.unsubscribed_at);
        if old_sup != c.unsubscribed_at {
            if let Some(at) = old_sup {
                t.suppressed.remove((ws, at, id))?;
            }
            if let Some(at) = c.unsubscribed_at {
                t.suppressed.insert((ws, at, id), ())?;
            }
        }
        Ok(())
    }

    /// A contact's enrolment in a sequence.
    pub fn enrollment(
        &mut self,
        contact: u128,
        sequence: &str,
    ) -> Result<Option<EnrollmentRecord>, StoreError> {
        match self.c()?.enrollments.get((contact, sequence))? {
            Some(raw) => Ok(Some(decode(raw.value())?)),
            None => Ok(None),
        }
    }

    /// Stores an enrolment and moves its due entry (`old_due` is the one it had).
    pub fn put_enrollment(
        &mut self,
        contact: u128,
        e: &EnrollmentRecord,
        old_due: Option<u64>,
    ) -> Result<(), StoreError> {
        let t = self.c()?;
        let seq = e.sequence.as_str();
        t.enrollments.insert((contact, seq), encode(e).as_slice())?;
        if old_due != e.due {
            if let Some(due) = old_due {
                t.sequence_due.remove((due, contact, seq))?;
            }
            if let Some(due) = e.due {
                t.sequence_due.insert((due, contact, seq), ())?;
            }
        }
        Ok(())
    }

    /// Appends to a contact's activity log.
    pub fn add_activity(&mut self, contact: u128, a: &ActivityRecord) -> Result<(), StoreError> {
        let id = key(&a.id)?;
        let t = self.c()?;
        t.activity.insert((contact, id), encode(a).as_slice())?;
        t.activity_by_time.insert((id, contact), ())?;
        Ok(())
    }

    /// Deletes up to `limit` activity entries recorded before `before` (the
    /// events' retention applies to the log that explains them).
    pub(crate) fn prune_activity(
        &mut self,
        before: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let bound = uuid7_bound(before);
        let t = self.c()?;
        let mut old = Vec::new();
        for row in t.activity_by_time.range((0u128, 0u128)..(bound, 0u128))?.take(limit) {
            old.push(row?.0.value());
        }
        for (id, contact) in &old {
            t.activity_by_time.remove((*id, *contact))?;
            t.activity.remove((*contact, *id))?;
        }
        Ok(old.len())
    }

    /// Stores an event with its deliveries, as ingest does (no idempotency
    /// check: automation events are created once, inside this transaction).
    pub fn insert_event(&mut self, event: NewEvent, now: u64) -> Result<Ingested, StoreError> {
        let p = Prepared::new(event);
        let original = self.ingest(&p, now)?;
        Ok(p.answer(original))
    }

    /// An event and its parsed payload (for automations reading the inbox).
    pub fn event_with_payload(
        &mut self,
        id: u128,
    ) -> Result<Option<(crate::store::EventRecord, serde_json::Value)>, StoreError> {
        let Some(raw) = self.events.get(id)? else { return Ok(None) };
        let (record, payload) = crate::store::tables::split_row(raw.value())?;
        let payload = serde_json::from_slice(payload).unwrap_or(serde_json::Value::Null);
        Ok(Some((decode(record)?, payload)))
    }

    /// Marks an event as seen by automations.
    pub fn inbox_done(&mut self, event: u128) -> Result<(), StoreError> {
        self.c()?.inbox.remove(event)?;
        Ok(())
    }

    /// Queues an event for automations.
    pub fn inbox_push(&mut self, event: u128) -> Result<(), StoreError> {
        self.c()?.inbox.insert(event, ())?;
        Ok(())
    }

    /// Whether automations have yet to see an event.
    pub(super) fn in_inbox(&mut self, event: u128) -> Result<bool, StoreError> {
        Ok(self.c()?.inbox.get(event)?.is_some())
    }
}
