//! Hand-written JSON for what every ingest writes and answers: the event
//! record, its pending deliveries and the event in the response.
//!
//! serde_json escapes every key and every value byte by byte and writes each
//! string in three pieces; for these records that was 7 % of the server's
//! instructions per single event and 15 % per bulk event (callgrind). Here
//! keys are constants and a value needs one check before it is copied.
//! The output is byte for byte serde_json's (tests compare the two over
//! arbitrary records), so nothing on disk or on the wire changes, and every
//! reader keeps using serde.

use super::records::{EventRecord, RuleEventRecord, Status};
use crate::config::model::Outcome;

/// A JSON object being written into a buffer.
#[derive(Debug)]
pub struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Writes `"key":`; keys are constants that need no escaping.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(key.bytes().all(plain), "{key}");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A string member.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        push_str(self.key(key), value);
        self
    }

    /// A string member, or `null`.
    pub fn str_or_null(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => {
                self.key(key).extend_from_slice(b"null");
                self
            }
        }
    }

    /// A number member.
    pub fn num(&mut self, key: &'static str, value: u64) -> &mut Self {
        push_u64(self.key(key), value);
        self
    }

    /// A member whose value `write` appends (an object, an array, …).
    pub fn raw(&mut self, key: &'static str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        write(self.key(key));
        self
    }

    /// Closes the object.
    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Bytes serde_json copies as they are inside a string.
fn plain(b: u8) -> bool {
    b >= 0x20 && b != b'"' && b != b'\\'
}

/// Appends `s` as a JSON string, exactly as serde_json writes it.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    // No early exit, so the check compiles to a vector loop.
    let escapes = s.bytes().fold(false, |acc, b| acc | !plain(b));
    if escapes {
        // Rare (control characters, quotes, backslashes): serde_json's own
        // escaping. Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Appends `n` in decimal.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

impl EventRecord {
    /// Appends the record as serde_json would serialize it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut o = Obj::new(out);
        o.str("id", &self.id).str("workspace", &self.workspace).str("event", &self.event);
        o.str("resource", &self.resource);
        if let Some(r) = &self.resource_id {
            o.str("resource_id", r);
        }
        o.str("created_by", &self.created_by).num("created_at", self.created_at).end();
    }
}

impl RuleEventRecord {
    /// Appends the record as serde_json would serialize it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.json().write(out);
    }

    /// The record's fields, borrowed, for [`RuleEventJson::write`].
    pub(crate) fn json(&self) -> RuleEventJson<'_> {
        RuleEventJson {
            rule_id: &self.rule_id,
            connection: &self.connection,
            action: &self.action,
            conn_key: &self.conn_key,
            status: self.status,
            attempts: self.attempts,
            budget_start: self.budget_start,
            deferrals: self.deferrals,
            next_attempt_at: self.next_attempt_at,
            last_outcome: self.last_outcome,
            last_http_status: self.last_http_status,
            last_error: self.last_error.as_deref(),
            delivery_id: &self.delivery_id,
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
        }
    }
}

/// A [`RuleEventRecord`] with borrowed strings, so a new delivery's record
/// is encoded from the ingest request's fields without copying them into
/// an owned record first. The one writer of the record's JSON.
/// Its fields are [`RuleEventRecord`]'s, in the same order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RuleEventJson<'a> {
    pub(crate) rule_id: &'a str,
    pub(crate) connection: &'a str,
    pub(crate) action: &'a str,
    pub(crate) conn_key: &'a str,
    pub(crate) status: Status,
    pub(crate) attempts: u32,
    pub(crate) budget_start: u32,
    pub(crate) deferrals: u32,
    pub(crate) next_attempt_at: Option<u64>,
    pub(crate) last_outcome: Option<Outcome>,
    pub(crate) last_http_status: Option<u16>,
    pub(crate) last_error: Option<&'a str>,
    pub(crate) delivery_id: &'a str,
    pub(crate) created_at: u64,
    pub(crate) started_at: Option<u64>,
    pub(crate) completed_at: Option<u64>,
}

impl RuleEventJson<'_> {
    /// Appends the record as serde_json would serialize a [`RuleEventRecord`].
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let mut o = Obj::new(out);
        o.str("rule_id", self.rule_id).str("connection", self.connection);
        o.str("action", self.action).str("conn_key", self.conn_key);
        o.str("status", self.status.as_str());
        o.num("attempts", u64::from(self.attempts));
        o.num("budget_start", u64::from(self.budget_start));
        if self.deferrals > 0 {
            o.num("deferrals", u64::from(self.deferrals));
        }
        if let Some(at) = self.next_attempt_at {
            o.num("next_attempt_at", at);
        }
        if let Some(outcome) = self.last_outcome {
            o.str("last_outcome", outcome.as_str());
        }
        if let Some(status) = self.last_http_status {
            o.num("last_http_status", u64::from(status));
        }
        if let Some(e) = self.last_error {
            o.str("last_error", e);
        }
        o.str("delivery_id", self.delivery_id).num("created_at", self.created_at);
        if let Some(at) = self.started_at {
            o.num("started_at", at);
        }
        if let Some(at) = self.completed_at {
            o.num("completed_at", at);
        }
        o.end();
    }
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
