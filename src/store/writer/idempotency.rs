//! `Idempotency-Key`s: scoped to the credential that sent them and bound to
//! the body they were first sent with.
//!
//! A key row is `(workspace, "<key>\n<item>\n<scope>")` → (accepted at,
//! `[1][SHA-256 of the body][record JSON]`). A header value cannot hold a
//! line break (HTTP forbids control characters), nor can `item`, so the
//! split is unambiguous whatever the scope holds; and another credential,
//! or a bulk item against a single event, never meets the same row.
//!
//! Rows written before keys were scoped are `(workspace, "<key>")` (bulk
//! items `"<key>#<index>"`) → (accepted at, record JSON): no scope, no hash.
//! They live out their 24 h. One still answers a repeat, but only from the
//! credential that created its event (the record's `created_by`), and a
//! repeat naming another event type, resource or resource id is a conflict:
//! the payload cannot be compared, as the row never had its hash.
//!
//! A bulk request also has a row of its own, `"<key>\nbulk\n<scope>"` →
//! (accepted at, `[1][SHA-256 of the body][status, 2 bytes][reply]`),
//! written with its events and read before them. Item rows only exist for
//! the items that were stored, so alone they let a body with other items at
//! the other indexes through as a new request; this row refuses any other
//! body, and its reply answers a repeat byte for byte. Item rows are still
//! written and read: a store written before this row existed has only them.

use super::{IDEMPOTENCY_TTL_MS, Ingested, NewEvent, Prepared, Tables};
use crate::store::records::EventRecord;
use crate::store::tables::split_row;
use crate::store::{StoreError, decode};
use redb::ReadableTable;
use sha2::{Digest, Sha256};

/// The first byte of a row that holds its body's hash (a record's JSON,
/// all that older rows hold, starts with `{`).
const HASHED: u8 = 1;

/// An `Idempotency-Key` as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The header's value.
    pub key: String,
    /// The credential that sent it (`pk` for the workspace's publishable
    /// key, `mk:<access key>` for a machine key): keys never cross it.
    pub scope: String,
    /// The event's index in a bulk request; `None` for `POST /events`.
    pub item: Option<usize>,
    /// SHA-256 of the request body, byte for byte as received.
    pub body_sha256: [u8; 32],
}

impl IdempotencyKey {
    /// The key `key` sent by `scope` with the request body `body`.
    pub fn new(key: String, scope: String, body: &[u8]) -> Self {
        IdempotencyKey { key, scope, item: None, body_sha256: Sha256::digest(body).into() }
    }

    /// The same key for the bulk request's item `i`.
    pub fn item(&self, i: usize) -> Self {
        IdempotencyKey { item: Some(i), ..self.clone() }
    }

    /// The row of the bulk request as a whole.
    fn request_row_key(&self) -> String {
        format!("{}\nbulk\n{}", self.key, self.scope)
    }

    fn row_key(&self) -> String {
        match self.item {
            None => format!("{}\nevent\n{}", self.key, self.scope),
            Some(i) => format!("{}\nbulk {i}\n{}", self.key, self.scope),
        }
    }

    /// The row an earlier version wrote for this key.
    fn legacy_row_key(&self) -> String {
        match self.item {
            None => self.key.clone(),
            Some(i) => format!("{}#{i}", self.key),
        }
    }
}

/// A key reused with another body within its 24 h (the API's 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Idempotency-Key `{key}` was already used with a different request body in the last 24 h; \
     a retry must send the same body, a new request needs a new key"
)]
pub struct KeyConflict {
    /// The header's value.
    pub key: String,
}

/// A bulk request's answer, kept under its key for its repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkReply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body, byte for byte.
    pub body: Vec<u8>,
}

/// A bulk request sent with an `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    /// The workspace it was sent to.
    pub workspace: String,
    /// Its key, bound to the whole body.
    pub key: IdempotencyKey,
    /// Its answer if every event in it is new (kept for its repeats).
    pub reply: BulkReply,
}

/// What became of a bulk request's events.
#[derive(Debug)]
pub enum BulkOutcome {
    /// Each stored, or answered by its original ([`Ingested::duplicate`]).
    Stored(Vec<Ingested>),
    /// The request was seen before: its reply, and nothing stored.
    Replayed(BulkReply),
}

/// What the writer did with one request's events.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Per event: `None` stored, `Some(original)` an idempotent repeat.
    Events(Vec<Option<EventRecord>>),
    /// A repeat of a whole bulk request.
    Replay(BulkReply),
}

/// What an earlier use of an event's key says.
enum Earlier {
    /// None within the TTL: the event is new.
    None,
    /// The same request: its original answers.
    Replay(EventRecord),
    /// The key was used for another request.
    Conflict,
}

impl Tables<'_> {
    /// Stores a request's events (see [`Tables::ingest_all`]); a bulk
    /// request's own key row is checked first and written with them.
    pub(super) fn ingest_request(
        &mut self,
        events: &[Prepared],
        bulk: Option<&BulkRequest>,
        now: u64,
    ) -> Result<Result<Outcome, KeyConflict>, StoreError> {
        let Some(b) = bulk else { return Ok(self.ingest_all(events, now)?.map(Outcome::Events)) };
        if let Some(earlier) = self.earlier_request(b, now)? {
            return Ok(earlier.map(Outcome::Replay));
        }
        let out = match self.ingest_all(events, now)? {
            Ok(out) => out,
            Err(conflict) => return Ok(Err(conflict)),
        };
        // An event answered from an item row of an earlier version makes
        // the reply another one than `b.reply`: those rows answer instead.
        if !out.is_empty() && out.iter().all(Option::is_none) {
            let reply = &b.reply;
            let mut value = Vec::with_capacity(1 + 32 + 2 + reply.body.len());
            value.push(HASHED);
            value.extend_from_slice(&b.key.body_sha256);
            value.extend_from_slice(&reply.status.to_be_bytes());
            value.extend_from_slice(&reply.body);
            self.put_row(&b.workspace, &b.key.request_row_key(), &value, now)?;
        }
        Ok(Ok(Outcome::Events(out)))
    }

    /// The reply of an unexpired bulk request under the same key: `Ok`
    /// for the same body, a conflict for another.
    fn earlier_request(
        &self,
        b: &BulkRequest,
        now: u64,
    ) -> Result<Option<Result<BulkReply, KeyConflict>>, StoreError> {
        let Some(value) = self.live_row(&b.workspace, &b.key.request_row_key(), now)? else {
            return Ok(None);
        };
        request_row(b, &value).map(Some)
    }

    /// Stores a request's events, or answers with each one's original; a
    /// key reused with another body refuses the whole request, checked
    /// before anything is written (undoing writes would mean rebuilding
    /// the whole batch's transaction).
    pub(super) fn ingest_all(
        &mut self,
        events: &[Prepared],
        now: u64,
    ) -> Result<Result<Vec<Option<EventRecord>>, KeyConflict>, StoreError> {
        let mut earlier = Vec::with_capacity(events.len());
        for p in events {
            match self.earlier(&p.event, now)? {
                Earlier::Conflict => return Ok(Err(conflict(&p.event))),
                e => earlier.push(e),
            }
        }
        let mut out = Vec::with_capacity(events.len());
        for (p, e) in events.iter().zip(earlier) {
            out.push(match e {
                Earlier::Replay(original) => Some(original),
                // Alone, nothing else in the request can have taken its key.
                _ if events.len() == 1 => self.store_event(p, now).map(|()| None)?,
                _ => self.ingest(p, now)?,
            });
        }
        Ok(Ok(out))
    }

    /// Stores one event; `Some(original)` when its key already names an
    /// unexpired event (then nothing is written). A conflict here is a key
    /// repeated with different bodies within one request (not something
    /// the API sends): it fails that request alone.
    pub(super) fn ingest(
        &mut self,
        p: &Prepared,
        now: u64,
    ) -> Result<Option<EventRecord>, StoreError> {
        match self.earlier(&p.event, now)? {
            Earlier::Replay(original) => Ok(Some(original)),
            Earlier::Conflict => Err(StoreError::Invalid(conflict(&p.event).to_string())),
            Earlier::None => self.store_event(p, now).map(|()| None),
        }
    }

    /// Writes the event's key, keeping the record: all a replay answers, so
    /// the key outlives the event (a retention under 24 h).
    pub(super) fn remember_key(&mut self, p: &Prepared, now: u64) -> Result<(), StoreError> {
        let Some(k) = &p.event.idempotency_key else { return Ok(()) };
        let ws = p.event.record.workspace.as_str();
        let record = split_row(&p.row)?.0;
        let mut value = Vec::with_capacity(1 + 32 + record.len());
        value.push(HASHED);
        value.extend_from_slice(&k.body_sha256);
        value.extend_from_slice(record);
        self.put_row(ws, &k.row_key(), &value, now)
    }

    fn put_row(
        &mut self,
        ws: &str,
        row_key: &str,
        value: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        self.idempotency.insert((ws, row_key), (now, value))?;
        self.idempotency_by_time.insert((now, ws, row_key), ())?;
        Ok(())
    }

    fn earlier(&self, e: &NewEvent, now: u64) -> Result<Earlier, StoreError> {
        let Some(k) = &e.idempotency_key else { return Ok(Earlier::None) };
        let ws = e.record.workspace.as_str();
        if let Some(value) = self.live_row(ws, &k.row_key(), now)? {
            let (hash, record) = value.split_at_checked(33).ok_or_else(corrupt)?;
            if hash[0] != HASHED {
                return Err(corrupt());
            }
            if hash[1..] != k.body_sha256 {
                return Ok(Earlier::Conflict);
            }
            return Ok(Earlier::Replay(decode(record)?));
        }
        let Some(value) = self.live_row(ws, &k.legacy_row_key(), now)? else {
            return Ok(Earlier::None);
        };
        let original: EventRecord = decode(&value)?;
        let new = &e.record;
        Ok(if original.created_by != new.created_by {
            Earlier::None
        } else if (&original.event, &original.resource, &original.resource_id)
            == (&new.event, &new.resource, &new.resource_id)
        {
            Earlier::Replay(original)
        } else {
            Earlier::Conflict
        })
    }

    /// The value of a key row accepted less than 24 h ago.
    fn live_row(&self, ws: &str, row_key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(found) = self.idempotency.get((ws, row_key))? else { return Ok(None) };
        let (at, value) = found.value();
        Ok((now.saturating_sub(at) < IDEMPOTENCY_TTL_MS).then(|| value.to_vec()))
    }

    /// Forgets idempotency keys older than the TTL (a key re-used after it
    /// was overwritten points elsewhere now: leave that mapping alone).
    pub(super) fn prune_idempotency(
        &mut self,
        now: u64,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let cutoff = now.saturating_sub(IDEMPOTENCY_TTL_MS);
        let mut expired: Vec<(u64, String, String)> = Vec::new();
        for row in self.idempotency_by_time.range((0u64, "", "")..(cutoff, "", ""))? {
            let (k, _) = row?;
            let (t, ws, key) = k.value();
            expired.push((t, ws.to_string(), key.to_string()));
            if expired.len() == limit {
                break;
            }
        }
        for (t, ws, key) in &expired {
            self.idempotency_by_time.remove((*t, ws.as_str(), key.as_str()))?;
            let current = self.idempotency.get((ws.as_str(), key.as_str()))?.map(|v| v.value().0);
            if current == Some(*t) {
                self.idempotency.remove((ws.as_str(), key.as_str()))?;
            }
        }
        Ok(expired.len())
    }
}

fn conflict(e: &NewEvent) -> KeyConflict {
    KeyConflict { key: e.idempotency_key.as_ref().map(|k| k.key.clone()).unwrap_or_default() }
}

fn corrupt() -> StoreError {
    StoreError::Corrupt("idempotency key row: bad layout".into())
}

/// A bulk request's key row, read against the request `b`: its reply when
/// the body is the same, a conflict when not.
fn request_row(
    b: &BulkRequest,
    value: &[u8],
) -> Result<Result<BulkReply, KeyConflict>, StoreError> {
    let (head, body) = value.split_at_checked(35).ok_or_else(corrupt)?;
    if head[0] != HASHED {
        return Err(corrupt());
    }
    if head[1..33] != b.key.body_sha256 {
        return Ok(Err(KeyConflict { key: b.key.key.clone() }));
    }
    let status = u16::from_be_bytes([head[33], head[34]]);
    Ok(Ok(BulkReply { status, body: body.to_vec() }))
}

impl crate::store::Store {
    /// [`Tables::earlier_request`] in a read transaction: for a keyed bulk
    /// request with nothing to store, which needs no commit to be answered.
    pub fn earlier_bulk(
        &self,
        b: &BulkRequest,
        now: u64,
    ) -> Result<Option<Result<BulkReply, KeyConflict>>, StoreError> {
        use redb::ReadableDatabase as _;
        let txn = self.db.get()?.begin_read()?;
        let table = txn.open_table(crate::store::tables::IDEMPOTENCY_REPLIES)?;
        let row_key = b.key.request_row_key();
        let Some(found) = table.get((b.workspace.as_str(), row_key.as_str()))? else {
            return Ok(None);
        };
        let (at, value) = found.value();
        if now.saturating_sub(at) >= IDEMPOTENCY_TTL_MS {
            return Ok(None);
        }
        request_row(b, value).map(Some)
    }
}
