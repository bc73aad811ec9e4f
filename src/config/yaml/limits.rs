//! A breached parser limit said as what it protects against, never as the
//! parser's own structure.

use super::{MAX_ALIAS_NODES, MAX_ANCHORED_NODES, MAX_SCALAR_BYTES};
use serde_saphyr::Error;
use serde_saphyr::budget::BudgetBreach;

/// The error under serde-saphyr's snippet and alias wrappers.
pub(super) fn innermost(mut e: &Error) -> &Error {
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = e {
        e = error;
    }
    e
}

/// The message for a breached limit; `None` for any other error.
pub(super) fn message(e: &Error, max_nodes: usize) -> Option<String> {
    Some(match innermost(e) {
        Error::Budget { breach, .. } => breach_text(breach, max_nodes),
        Error::AliasReplayLimitExceeded { .. } | Error::AliasExpansionLimitExceeded { .. } => {
            alias_bomb(MAX_ALIAS_NODES, "")
        }
        Error::AliasReplayStackDepthExceeded { max_depth, .. } => format!(
            "aliases nest more than {max_depth} deep (an anchor holding an alias of an anchor holding an alias …), the limit of one config file"
        ),
        _ => return None,
    })
}

fn alias_bomb(limit: usize, place: &str) -> String {
    format!(
        "aliases expand to more than {limit} nodes{place}, the limit of one config file: an alias (`*name`) copies its anchor's nodes, and anchors holding aliases of other anchors multiply them (an alias expansion bomb)"
    )
}

fn breach_text(breach: &BudgetBreach, max_nodes: usize) -> String {
    match breach {
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => format!(
            "the file is too large: more than {max_nodes} YAML nodes (mappings, sequences and scalars), the limit of one config file"
        ),
        BudgetBreach::RecordedAnchorEvents { .. } => format!(
            "anchored blocks (`&name`) hold more than {MAX_ANCHORED_NODES} nodes, aliases inside them counted expanded, the limit of one config file: an anchor holding aliases of other anchors multiplies them (an alias expansion bomb), and a block under an anchor is kept whole for its aliases"
        ),
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::RecordedAnchorBytes { .. } => format!(
            "the file holds more than {} MiB of text in its values (aliases counted each time they are used), the limit of one config file",
            MAX_SCALAR_BYTES / (1024 * 1024)
        ),
        BudgetBreach::Aliases { aliases } => {
            format!("more than {} aliases (`*name`), the limit of one config file", aliases - 1)
        }
        BudgetBreach::Anchors { anchors } => {
            format!("more than {} anchors (`&name`), the limit of one config file", anchors - 1)
        }
        BudgetBreach::Depth { depth } => format!(
            "mappings and sequences nest {depth} deep, more than the limit of one config file"
        ),
        BudgetBreach::MergeKeys { merge_keys } => format!(
            "more than {} merge keys (`<<`), the limit of one config file",
            merge_keys - 1
        ),
        _ => "the file exceeds a limit of the YAML parser (size, nesting or aliases), which bound what one config file may cost to read".to_string(),
    }
}
