//! Delivery ids of `notify` actions and sequence steps, and which configured
//! step a pending delivery belongs to after a reload.
//!
//! An id is `<prefix><owner>:<index>:<fingerprint>`. The index alone is not
//! enough: a step inserted or reordered while a delivery is pending would
//! hand it to whatever now sits at that index (the welcome email posted to
//! Slack). The fingerprint is 16 hex chars: the first 8 hash the step's
//! connection and metadata (its content), the last 8 its connection and
//! action (its kind), so an id is resolved from itself alone: the cancel
//! pass after a reload sees only the due index, not the delivery record.

use crate::config::model::Metadata;
use sha2::{Digest, Sha256};

/// Hex chars in each half of a fingerprint.
const HALF: usize = 8;

/// Where one configured step delivers, with its fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    /// Connection name.
    pub connection: &'a str,
    /// Action and metadata.
    pub metadata: &'a Metadata,
    /// [`fingerprint`] of the two.
    pub fingerprint: &'a str,
}

/// Why a delivery id no longer names a step of the config in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Gone {
    /// The automation, sequence or step is not in the config any more.
    #[error("was removed from the config")]
    Removed,
    /// The automation is kept with `enabled: false`.
    #[error("was disabled in the config")]
    Disabled,
    /// A step with other content, connection or action took its place, and
    /// the original is nowhere else in the list.
    #[error(
        "was changed in the config (its place now delivers through another connection or action)"
    )]
    Changed,
}

/// The fingerprint of a step delivering `metadata` through `connection`.
pub fn fingerprint(connection: &str, metadata: &Metadata) -> String {
    // Metadata is a struct of scalars and strings, no maps: serde_json
    // writes its fields in declaration order, so equal steps hash equal.
    let content = serde_json::to_vec(metadata).unwrap_or_default();
    let mut out = hash(connection, &content);
    out.push_str(&hash(connection, metadata.action.as_bytes()));
    out
}

/// 8 hex chars of SHA-256 (stable across builds, unlike std's hasher).
fn hash(connection: &str, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(connection.as_bytes());
    h.update([0]);
    h.update(bytes);
    h.finalize().iter().take(HALF / 2).map(|b| format!("{b:02x}")).collect()
}

/// The delivery id of step `index` of `owner`.
pub fn delivery_id(prefix: &str, owner: &str, index: usize, fingerprint: &str) -> String {
    format!("{prefix}{owner}:{index}:{fingerprint}")
}

/// A delivery id without its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Automation id or sequence name (either may contain `:`).
    pub owner: &'a str,
    /// Position when the delivery was created.
    pub index: usize,
    /// `None` in ids written before fingerprints existed.
    pub fingerprint: Option<&'a str>,
}

/// Splits `<owner>:<index>:<fingerprint>`, or the older `<owner>:<index>`,
/// from the right, as owners may contain `:`. An older id could only look
/// like the new form with a 16-digit index.
pub fn parse(rest: &str) -> Option<Parsed<'_>> {
    let (head, last) = rest.rsplit_once(':')?;
    if is_fingerprint(last)
        && let Some((owner, n)) = head.rsplit_once(':')
        && let Ok(index) = n.parse()
    {
        return Some(Parsed { owner, index, fingerprint: Some(last) });
    }
    Some(Parsed { owner: head, index: last.parse().ok()?, fingerprint: None })
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 2 * HALF && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The step a delivery goes to now. `slot(i)` is the delivery at `i`
/// (`None` for a wait, a non-`notify` action or past the end), `len` how
/// many there are. In order: the step at the same index with the same
/// content; the first step anywhere with that content (it moved); the step
/// at the same index if it has the same connection and action (edited in
/// place, as rule metadata edits apply to pending deliveries). Older ids
/// without a fingerprint keep the positional lookup.
pub fn resolve<'a>(
    len: usize,
    slot: impl Fn(usize) -> Option<Slot<'a>>,
    id: Parsed<'_>,
) -> Result<Slot<'a>, Gone> {
    let here = slot(id.index);
    let Some(fp) = id.fingerprint else { return here.ok_or(Gone::Removed) };
    let (content, kind) = fp.split_at(HALF);
    if let Some(s) = here.filter(|s| s.fingerprint.starts_with(content)) {
        return Ok(s);
    }
    if let Some(s) = (0..len).filter_map(&slot).find(|s| s.fingerprint.starts_with(content)) {
        return Ok(s);
    }
    match here {
        Some(s) if s.fingerprint.ends_with(kind) => Ok(s),
        Some(_) => Err(Gone::Changed),
        None => Err(Gone::Removed),
    }
}

#[cfg(test)]
#[path = "targets_tests.rs"]
mod tests;
