//! Reads of events for the API, each on the snapshot `Store::read` gives.

use super::tables::*;
use super::{
    AttemptView, EventView, LIST_SCAN_BUDGET, ListFilter, Page, StoreError, decode,
    read_rule_events,
};

/// A page of [`super::Store::list`], from `txn`'s snapshot.
pub(super) fn list(
    txn: &redb::ReadTransaction,
    workspace: &str,
    filter: &ListFilter,
    cursor: Option<u128>,
    limit: usize,
    in_flight: &dyn Fn(u128, &str) -> bool,
) -> Result<Page, StoreError> {
    let events = txn.open_table(EVENT_ROWS)?;
    let rules = txn.open_table(RULE_EVENTS)?;
    let upper = cursor.unwrap_or(u128::MAX);
    let mut records = Vec::new();
    // Rows of other workspaces (a config directory serving several, or
    // left by an earlier config) count against the scan budget: events
    // have no per-workspace index, which would cost every ingest a
    // B-tree insert for a listing's sake. A busy workspace makes another
    // one's pages sparser, never wrong (the README says so).
    for (scanned, row) in events.range(..upper)?.rev().enumerate() {
        let (key, raw) = row?;
        let id = key.value();
        if records.len() == limit || scanned == LIST_SCAN_BUDGET {
            return Ok(Page { next_cursor: Some(cursor_after(&records, limit, id)), records });
        }
        let event = row_record(raw.value())?;
        if event.workspace != workspace {
            continue;
        }
        let view = EventView { event, rule_events: read_rule_events(&rules, id)? };
        if matches_filter(&view, filter, &|r| in_flight(id, r)) {
            records.push(view);
        }
    }
    Ok(Page { records, next_cursor: None })
}

/// The cursor is an exclusive upper bound: a full page continues below its
/// last record; a page cut short by the scan budget continues at the first
/// event it did not examine.
fn cursor_after(records: &[EventView], limit: usize, unexamined: u128) -> String {
    match records.last() {
        Some(last) if records.len() == limit => last.event.id.clone(),
        _ => uuid::Uuid::from_u128(unexamined.saturating_add(1)).to_string(),
    }
}

fn matches_filter(view: &EventView, f: &ListFilter, in_flight: &dyn Fn(&str) -> bool) -> bool {
    let e = &view.event;
    f.event.as_ref().is_none_or(|x| *x == e.event)
        && f.resource.as_ref().is_none_or(|x| *x == e.resource)
        && f.resource_id.as_ref().is_none_or(|x| Some(x) == e.resource_id.as_ref())
        && f.status.is_none_or(|s| view.status(in_flight) == s)
}

/// What an attempt reads (see [`super::Store::attempt_view`]).
pub(super) fn attempt_view(
    txn: &redb::ReadTransaction,
    id: u128,
    rule: &str,
) -> Result<Option<AttemptView>, StoreError> {
    let events = txn.open_table(EVENT_ROWS)?;
    let Some(raw) = events.get(id)? else { return Ok(None) };
    let Some(rule_event) = txn.open_table(RULE_EVENTS)?.get((id, rule))? else {
        return Ok(None);
    };
    let (record, payload) = split_row(raw.value())?;
    Ok(Some(AttemptView {
        event: decode(record)?,
        rule_event: decode(rule_event.value())?,
        payload: payload.to_vec(),
    }))
}
