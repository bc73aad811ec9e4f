//! The newest time the store has recorded, for the clock check at startup.

use super::tables::{ACTIVITY_BY_TIME, CONTACTS, EVENT_ROWS};
use super::{Store, StoreError};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};

impl Store {
    /// The newest Unix ms in the ids of events, contacts and contact
    /// activity (UUID v7 keys sort by time, so each table's is its last
    /// key), or `None` for an empty store. Not events alone: a store may
    /// hold only contacts and sequences (a sequence that starts with a
    /// wait creates no event), whose steps wait on the same wall clock.
    /// Activity is written with every automation run and sequence step.
    pub fn newest_stamp(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let last = |t: TableDefinition<u128, &[u8]>| -> Result<Option<u128>, StoreError> {
            Ok(txn.open_table(t)?.last()?.map(|(key, _)| key.value()))
        };
        let activity = txn.open_table(ACTIVITY_BY_TIME)?.last()?.map(|(key, _)| key.value().0);
        let ids = [last(EVENT_ROWS)?, last(CONTACTS)?, activity];
        Ok(ids.into_iter().flatten().filter_map(uuid7_ms).max())
    }
}

/// The time in a UUID v7; any other version has no time in its top bits.
fn uuid7_ms(id: u128) -> Option<u64> {
    let version = uuid::Uuid::from_u128(id).get_version_num();
    (version == 7).then(|| u64::try_from(id >> 80).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::new_event;
    use uuid::{NoContext, Timestamp, Uuid};

    /// A UUID v7 minted at `ms`.
    fn id_at(ms: u64) -> String {
        Uuid::new_v7(Timestamp::from_unix(NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000))
            .to_string()
    }

    #[tokio::test]
    async fn the_newest_stamp_is_the_time_of_the_newest_event_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.newest_stamp().unwrap(), None, "empty store");
        let (old, new) = (1_700_000_000_123, 1_800_000_000_456);
        let events = [new, old].map(|ms| {
            let mut e = new_event("ws", "a", &[("r1", "hook")], 1_000, None);
            e.record.id = id_at(ms);
            e
        });
        store.writer().ingest(events.into(), 1_000).await.unwrap();
        assert_eq!(store.newest_stamp().unwrap(), Some(new));
        store.close().await;
    }

    /// A store with no events, only a contact and its activity (a sequence
    /// that starts with a wait): their ids date it.
    #[tokio::test]
    async fn contacts_and_activity_date_a_store_without_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (created, ran) = (1_800_000_000_000, 1_800_000_060_000);
        let contact = crate::store::ContactRecord::new(id_at(created), "ws".into(), 1);
        let mut entry = activity(id_at(ran));
        let key = uuid::Uuid::parse_str(&contact.id).unwrap().as_u128();
        let put = contact.clone();
        store.writer().run(move |t| t.put_contact(&put, None)).await.unwrap();
        assert_eq!(store.newest_stamp().unwrap(), Some(created), "the contact alone");
        store.writer().run(move |t| t.add_activity(key, &entry)).await.unwrap();
        assert_eq!(store.newest_stamp().unwrap(), Some(ran), "its newer activity");
        // An older activity entry does not move it back.
        entry = activity(id_at(created - 5_000));
        store.writer().run(move |t| t.add_activity(key, &entry)).await.unwrap();
        assert_eq!(store.newest_stamp().unwrap(), Some(ran));
        store.close().await;
    }

    fn activity(id: String) -> crate::store::ActivityRecord {
        crate::store::ActivityRecord {
            id,
            at: 1,
            kind: "sequence_step".into(),
            automation: None,
            sequence: Some("s".into()),
            step: Some(0),
            trigger: None,
            condition: None,
            condition_error: None,
            actions: Vec::new(),
            depth: 0,
            note: None,
        }
    }

    #[test]
    fn ids_of_other_versions_have_no_time() {
        // A version 4 id whose top bits would read as a time far ahead.
        assert_eq!(uuid7_ms(0xffff_ffff_ffff_4fff_bfff_ffff_ffff_ffff), None);
        assert_eq!(uuid7_ms(Uuid::nil().as_u128()), None);
        let id = Uuid::parse_str(&id_at(1_800_000_000_456)).unwrap();
        assert_eq!(uuid7_ms(id.as_u128()), Some(1_800_000_000_456));
    }
}
