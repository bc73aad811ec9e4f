//! The newest time the store has recorded, for the clock check at startup.

use super::tables::EVENT_ROWS;
use super::{Store, StoreError};
use redb::{ReadableDatabase, ReadableTable};

impl Store {
    /// The Unix ms in the newest event id (UUID v7 keys sort by time, so
    /// it is the last key), or `None` for an empty store.
    pub fn newest_stamp(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.get()?.begin_read()?;
        let last = txn.open_table(EVENT_ROWS)?.last()?.map(|(key, _)| key.value());
        Ok(last.and_then(uuid7_ms))
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

    #[test]
    fn ids_of_other_versions_have_no_time() {
        // A version 4 id whose top bits would read as a time far ahead.
        assert_eq!(uuid7_ms(0xffff_ffff_ffff_4fff_bfff_ffff_ffff_ffff), None);
        assert_eq!(uuid7_ms(Uuid::nil().as_u128()), None);
        let id = Uuid::parse_str(&id_at(1_800_000_000_456)).unwrap();
        assert_eq!(uuid7_ms(id.as_u128()), Some(1_800_000_000_456));
    }
}
