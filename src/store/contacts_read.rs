//! Reads of contacts, enrolments, activity and the automation queues, each
//! on its own snapshot (never blocking the writer).

use super::contact_records::{ActivityRecord, ContactRecord, EnrollmentRecord};
use super::tables::*;
use super::writer::contacts::email_key;
use super::{Store, StoreError, decode};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

/// A page of a contact's activity, newest first.
#[derive(Debug, Clone)]
pub struct ActivityPage {
    /// Entries.
    pub records: Vec<ActivityRecord>,
    /// Pass back as `cursor` for older entries.
    pub next_cursor: Option<String>,
}

/// A page of the suppression list, oldest first.
#[derive(Debug, Clone)]
pub struct SuppressedPage {
    /// Suppressed contacts.
    pub records: Vec<ContactRecord>,
    /// Pass back as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

impl Store {
    /// A contact by id.
    pub fn contact(&self, id: u128) -> Result<Option<ContactRecord>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(CONTACTS)?;
        table.get(id)?.map(|raw| decode(raw.value())).transpose()
    }

    /// The id of the contact with this email (case-insensitive) in a workspace.
    pub fn contact_key_by_email(&self, ws: &str, email: &str) -> Result<Option<u128>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let index = txn.open_table(CONTACT_EMAILS)?;
        Ok(index.get((ws, email_key(email).as_str()))?.map(|v| v.value()))
    }

    /// A contact by email (case-insensitive) in a workspace.
    pub fn contact_by_email(
        &self,
        ws: &str,
        email: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        self.contact_via(CONTACT_EMAILS, ws, &email_key(email))
    }

    /// A contact by external id in a workspace.
    pub fn contact_by_external_id(
        &self,
        ws: &str,
        external_id: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        self.contact_via(CONTACT_EXTERNAL_IDS, ws, external_id)
    }

    /// A contact through one of the `(workspace, key) → id` indexes, read
    /// from one snapshot.
    fn contact_via(
        &self,
        index: TableDefinition<(&str, &str), u128>,
        ws: &str,
        key: &str,
    ) -> Result<Option<ContactRecord>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let Some(id) = txn.open_table(index)?.get((ws, key))?.map(|v| v.value()) else {
            return Ok(None);
        };
        let table = txn.open_table(CONTACTS)?;
        table.get(id)?.map(|raw| decode(raw.value())).transpose()
    }

    /// A contact's enrolments, by sequence name.
    pub fn enrollments(&self, contact: u128) -> Result<Vec<EnrollmentRecord>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(ENROLLMENTS)?;
        let mut out = Vec::new();
        for row in table.range((contact, "")..=(contact, "\u{10FFFF}"))? {
            out.push(decode(row?.1.value())?);
        }
        Ok(out)
    }

    /// A contact's activity, newest first, below `cursor` (an activity id).
    pub fn activity(
        &self,
        contact: u128,
        cursor: Option<u128>,
        limit: usize,
    ) -> Result<ActivityPage, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(ACTIVITY)?;
        let upper = cursor.unwrap_or(u128::MAX);
        let mut records = Vec::new();
        for row in table.range((contact, 0u128)..(contact, upper))?.rev() {
            if records.len() == limit {
                let next = records.last().map(|r: &ActivityRecord| r.id.clone());
                return Ok(ActivityPage { records, next_cursor: next });
            }
            records.push(decode(row?.1.value())?);
        }
        Ok(ActivityPage { records, next_cursor: None })
    }

    /// Contacts suppressed at or before `as_of`, oldest first, after `cursor`
    /// (`<unsubscribed at ms>:<contact id>`, as returned).
    pub fn suppressed(
        &self,
        ws: &str,
        as_of: u64,
        after: Option<(u64, u128)>,
        limit: usize,
    ) -> Result<SuppressedPage, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let index = txn.open_table(SUPPRESSED)?;
        let contacts = txn.open_table(CONTACTS)?;
        use std::ops::Bound::{Excluded, Included};
        let start = match after {
            Some((at, id)) => Excluded((ws, at, id)),
            None => Included((ws, 0, 0)),
        };
        let mut records = Vec::new();
        for row in index.range::<(&str, u64, u128)>((start, Included((ws, as_of, u128::MAX))))? {
            let (at, id) = {
                let k = row?.0;
                let (_, at, id) = k.value();
                (at, id)
            };
            if records.len() == limit {
                let next = records
                    .last()
                    .and_then(|c: &ContactRecord| Some(cursor(c.unsubscribed_at?, &c.id)));
                return Ok(SuppressedPage { records, next_cursor: next });
            }
            if let Some(raw) = contacts.get(id)?
                && let c @ ContactRecord { unsubscribed_at: Some(_), .. } = decode(raw.value())?
                && c.unsubscribed_at == Some(at)
            {
                records.push(c);
            }
        }
        Ok(SuppressedPage { records, next_cursor: None })
    }

    /// Sequence steps due by `now`, oldest first: (due, contact, sequence).
    pub fn sequence_due(
        &self,
        now: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u128, String)>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(SEQUENCE_DUE)?;
        let mut out = Vec::new();
        for row in table.range((0u64, 0u128, "")..=(now, u128::MAX, "\u{10FFFF}"))?.take(limit) {
            let (due, contact, seq) = {
                let k = row?.0;
                let (d, c, s) = k.value();
                (d, c, s.to_string())
            };
            out.push((due, contact, seq));
        }
        Ok(out)
    }

    /// When the next sequence step is due, if any.
    pub fn next_sequence_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(SEQUENCE_DUE)?;
        Ok(table.first()?.map(|(k, _)| k.value().0))
    }

    /// Events automations have not seen yet, oldest first.
    pub fn inbox(&self, limit: usize) -> Result<Vec<u128>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(AUTOMATION_INBOX)?;
        let mut out = Vec::new();
        for row in table.iter()?.take(limit) {
            out.push(row?.0.value());
        }
        Ok(out)
    }
}

/// The suppression-list cursor for a contact.
pub fn cursor(at: u64, id: &str) -> String {
    format!("{at}:{id}")
}
